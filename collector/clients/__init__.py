"""The Kafka clients the collector can consume with, behind one small interface.

``collector.client`` picks one: ``kafka-python`` (the default; record batches handed to the
decoding processes whole) or ``confluent-kafka`` (librdkafka). Both speak :class:`Partition`
and raise :class:`BrokerError`; the collector's loop does not know which one it drives.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from sagascope.collector.assignment import AssignmentHandler, Partition

__all__ = ["CLIENTS", "ClientFactory", "ConsumerClient", "client_factory"]

#: Values of the ``collector.client`` setting.
CLIENTS = ("kafka-python", "confluent-kafka")


class ConsumerClient(Protocol):
    """A group consumer, as the collector's loop uses it (one thread, the loop's)."""

    #: How long a fetch may wait at the broker (a highwater mark may be this old).
    fetch_wait_ms: int

    def subscribe(self, topics: list[str], handler: AssignmentHandler) -> None: ...

    def poll(self, timeout_s: float, max_records: int) -> Mapping[Partition, list[Any]]:
        """Fetched items by partition: records, or whole record batches (``RawBatch``)."""

    def pause(self, partitions: Collection[Partition]) -> None: ...

    def resume(self, partitions: Collection[Partition]) -> None: ...

    def paused(self) -> set[Partition]: ...

    def assignment(self) -> set[Partition]: ...

    def seek(self, partition: Partition, offset: int) -> None: ...

    def seek_to_start(self, partition: Partition, start_from: str) -> None:
        """Fetch from the oldest retained record (``earliest``) or the log end (``latest``),
        never from the group's committed offset."""

    def position(self, partition: Partition) -> int | None: ...

    def highwater(self, partition: Partition) -> int | None: ...

    def commit(self, offsets: Mapping[Partition, int], *, on_error: Callable[[Exception], None]) -> None:
        """Commit without waiting; ``on_error`` hears of a failure (a commit is an optimisation:
        the store says where partitions resume)."""

    def close(self) -> None: ...


class ClientFactory(Protocol):
    """Opens the loop's consumer and, for the topic watcher, a topic lister."""

    def open_consumer(self) -> ConsumerClient: ...

    def open_lister(self) -> tuple[Callable[[], Collection[str]], Callable[[], None]]: ...


def client_factory(
    client: str,
    bootstrap_servers: str,
    group_config: Mapping[str, Any],
    extra_config: Mapping[str, Any],
    raw_topic: Callable[[str], bool] | None,
) -> ClientFactory:
    """The factory of the named client (``collector.client``)."""
    if client == "confluent-kafka":
        from sagascope.collector.clients.confluent import ConfluentFactory

        return ConfluentFactory(bootstrap_servers, group_config, extra_config)
    from sagascope.collector.clients.kafka_python import KafkaPythonFactory

    return KafkaPythonFactory(bootstrap_servers, group_config, extra_config, raw_topic)
