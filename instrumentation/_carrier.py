"""OpenTelemetry propagator Getter/Setter over Kafka's ``[(key, bytes)]`` header list."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.propagators.textmap import Getter, Setter

KafkaHeaders = Sequence[tuple[str, bytes | None]]


class KafkaHeadersGetter(Getter[KafkaHeaders]):
    """Reads header values as text; undecodable bytes become replacement characters."""

    def get(self, carrier: KafkaHeaders, key: str) -> list[str] | None:
        values = [
            value.decode("utf-8", errors="replace")
            for item_key, value in carrier or ()
            if item_key == key and value is not None
        ]
        return values or None

    def keys(self, carrier: KafkaHeaders) -> list[str]:
        return [key for key, _ in carrier or ()]


class KafkaHeadersSetter(Setter[list[tuple[str, bytes]]]):
    """Appends ``(key, utf-8 bytes)``, replacing an earlier header of the same key."""

    def set(self, carrier: list[tuple[str, bytes]], key: str, value: str) -> None:
        carrier[:] = [item for item in carrier if item[0] != key]
        carrier.append((key, value.encode("utf-8")))


kafka_getter = KafkaHeadersGetter()
kafka_setter = KafkaHeadersSetter()
