"""The three producer clients behind one ``InstrumentedProducer``: how each sends, flushes, closes.

The client is recognised once, from the producer's class (its module, without importing any
client), and failing that from its methods, so wrappers around a client (a proxy from the stock
OpenTelemetry instrumentation, a test double) work too:

- kafka-python: ``send(topic, value=, key=, headers=, partition=, timestamp_ms=)`` returns a
  future; serializers live in ``producer.config``.
- confluent-kafka: ``produce(topic, value, key, partition=, on_delivery=, timestamp=,
  headers=)`` returns None; delivery is reported to ``on_delivery`` from ``poll()``/``flush()``.
  A ``SerializingProducer`` keeps its serializers in ``_key_serializer``/``_value_serializer``.
- aiokafka: ``async send(...)`` (same arguments as kafka-python) resolves to a future;
  ``flush()`` and ``stop()`` are coroutines; serializers in ``_key_serializer``/``_value_serializer``.
"""

from __future__ import annotations

import enum
import inspect
from collections.abc import Callable
from typing import Any

KAFKA_PYTHON_MODULES = ("kafka",)
CONFLUENT_MODULES = ("confluent_kafka", "cimpl")
AIOKAFKA_MODULES = ("aiokafka",)


class Client(enum.Enum):
    """Which Kafka client a producer is."""

    KAFKA_PYTHON = "kafka-python"
    CONFLUENT = "confluent-kafka"
    AIOKAFKA = "aiokafka"


def detect_client(producer: Any) -> Client:
    """The client ``producer`` belongs to.

    Raises:
        TypeError: when it is none of kafka-python's, confluent-kafka's or aiokafka's producers.
    """
    for cls in type(producer).__mro__:
        root = (cls.__module__ or "").split(".", 1)[0]
        if root in KAFKA_PYTHON_MODULES:
            return Client.KAFKA_PYTHON
        if root in CONFLUENT_MODULES:
            return Client.CONFLUENT
        if root in AIOKAFKA_MODULES:
            return Client.AIOKAFKA
    # A wrapper (stock OpenTelemetry's ProxiedProducer, a test double): judge by its methods.
    if callable(getattr(producer, "produce", None)):
        return Client.CONFLUENT
    send = getattr(producer, "send", None)
    if callable(send):
        return Client.AIOKAFKA if inspect.iscoroutinefunction(send) else Client.KAFKA_PYTHON
    raise TypeError(
        "producer must be a kafka.KafkaProducer, a confluent_kafka.Producer or an "
        f"aiokafka.AIOKafkaProducer, got {type(producer).__name__}"
    )


def has_serializers(producer: Any, client: Client) -> tuple[bool, bool]:
    """(value serializer configured, key serializer configured) on the producer."""
    if client is Client.KAFKA_PYTHON:
        config = getattr(producer, "config", None) or {}
        return config.get("value_serializer") is not None, config.get("key_serializer") is not None
    return (
        getattr(producer, "_value_serializer", None) is not None,
        getattr(producer, "_key_serializer", None) is not None,
    )


#: send(topic, value, key, headers, partition, timestamp_ms, on_delivery) -> the client's return
RawSend = Callable[[str, Any, Any, Any, "int | None", "int | None", Any], Any]

_STOCK_INSTRUMENTATION = "opentelemetry.instrumentation."


def client_call(producer: Any, client: Client) -> Callable[..., Any]:
    """The client's own ``produce`` (confluent-kafka) or ``send``, past the stock instrumentation.

    The stock OpenTelemetry instrumentations of the three clients wrap that call (wrapt
    wrappers on the class, or confluent-kafka's ``ProxiedProducer``) and write a second
    ``traceparent`` with their own span beside ours. A message must carry one: for what we
    send, our PRODUCER span stands in for theirs, so we call what they wrap. Other wrappers
    (the application's own, test doubles) are called as they are.
    """
    if client is Client.CONFLUENT:
        if _is_stock(type(producer)) and callable(getattr(producer, "original_producer", None)):
            producer = producer.original_producer()
        call = producer.produce
    else:
        call = producer.send
    # wrapt's bound wrapper keeps the wrapped method in __wrapped__, its wrapper in _self_wrapper.
    while _is_stock(getattr(call, "_self_wrapper", None)) and hasattr(call, "__wrapped__"):
        call = call.__wrapped__
    return call


def _is_stock(obj: Any) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and module.startswith(_STOCK_INSTRUMENTATION)


def raw_send(call: Callable[..., Any], client: Client) -> RawSend:
    """The one call that hands a message with its headers to the client (``call``: see above)."""
    if client is Client.CONFLUENT:
        produce = call

        def send_confluent(topic: str, value: Any, key: Any, headers: Any, partition: int | None,
                           timestamp_ms: int | None, on_delivery: Any) -> Any:
            # produce() takes no None for partition or timestamp: leave out what is not given.
            kwargs: dict[str, Any] = {"value": value, "key": key, "headers": headers}
            if partition is not None:
                kwargs["partition"] = partition
            if timestamp_ms is not None:
                kwargs["timestamp"] = timestamp_ms
            if on_delivery is not None:
                kwargs["on_delivery"] = on_delivery
            return produce(topic, **kwargs)

        return send_confluent

    send = call
    name = client.value

    def send_kafka(topic: str, value: Any, key: Any, headers: Any, partition: int | None,
                   timestamp_ms: int | None, on_delivery: Any) -> Any:
        if on_delivery is not None:
            raise TypeError(
                f"on_delivery is confluent-kafka's; with {name}, add a callback to what send returns"
            )
        return send(topic, value=value, key=key, headers=headers, partition=partition,
                    timestamp_ms=timestamp_ms)

    return send_kafka
