"""Reading a consumed record of any client: kafka-python, confluent-kafka or aiokafka.

kafka-python's ``ConsumerRecord`` (a named tuple) and aiokafka's ``ConsumerRecord`` (a
dataclass) expose ``topic``, ``partition``, ``offset``, ``key`` and ``headers`` as attributes;
confluent-kafka's ``Message`` exposes them as methods, and its ``headers()`` is a list or None.
The reader is chosen once per record type and cached, without importing any client.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

#: (topic, partition, offset, key, headers) of one record; headers as Kafka's (key, bytes) pairs.
RecordFields = tuple[str, int, int, Any, Sequence[tuple[str, bytes | None]]]
RecordReader = Callable[[Any], RecordFields]

_FIELDS = ("topic", "partition", "offset", "key", "headers")
_read_attributes: RecordReader = attrgetter(*_FIELDS)


def _read_methods(message: Any) -> RecordFields:
    # confluent_kafka.Message: every field is a method; headers() is None when there are none.
    return (
        message.topic(), message.partition(), message.offset(), message.key(),
        message.headers() or (),
    )


_readers: dict[type, RecordReader | None] = {}


def reader_for(candidate: Any) -> RecordReader | None:
    """The reader for ``candidate``'s type, or None when it is not a consumed record."""
    kind = type(candidate)
    try:
        return _readers[kind]
    except KeyError:
        pass
    reader: RecordReader | None = None
    if all(hasattr(candidate, name) for name in _FIELDS):
        methods = [callable(getattr(candidate, name)) for name in _FIELDS]
        if all(methods):
            reader = _read_methods
        elif not any(methods):
            reader = _read_attributes
    if len(_readers) < 1000:  # types are few; a bound keeps a pathological caller harmless
        _readers[kind] = reader
    return reader


def find_record(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, RecordReader] | None:
    """The first argument that is a consumed record, with its reader (``fn(record)`` or a method)."""
    for arg in args:
        reader = _readers.get(type(arg)) or reader_for(arg)
        if reader is not None:
            return arg, reader
    for arg in kwargs.values():
        reader = reader_for(arg)
        if reader is not None:
            return arg, reader
    return None
