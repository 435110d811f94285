"""The loop form of handling: ``for record in handled(consumer)``, one record's handling at a time.

Each record gets what ``with handling(record)`` gives (its CONSUMER span, its saga made
current), from the moment the loop receives it until the loop asks for the next one or ends;
instrumenting a consumer loop is then one changed line, with nothing re-indented.

What a loop cannot see: the iterator hears from the loop body only through ``next()``. A
``break``, a ``return`` and an exception leaving the body all reach it the same way, as its
closing (in CPython as the loop is left, since only the loop holds the iterator; elsewhere when
the iterator is collected). A record whose handling ends so has its span ended without an error
status, and an outcome it marked that no send carried is not sent (the body may have failed),
with a warning. Where an exception must mark the span, ``with handling(record)`` sees it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import TracerProvider

from sagascope.instrumentation._handler import (
    _HandlerScope,
    _Instrumentation,
    awaited,
    instrumentation_for,
)
from sagascope.instrumentation._records import reader_for
from sagascope.instrumentation._saga import finish_in_background

log = logging.getLogger(__name__)

#: ``iter(poll, _NEVER)`` polls for ever: no message is this object.
_NEVER = object()


def handled(
    records: Any,
    *,
    service: str | None = None,
    consumer_group: str | None = None,
    tracer_provider: TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
    poll_timeout_s: float | None = None,
) -> Handled:
    """Iterate ``records`` handling each one in turn, as ``with handling(record)`` would::

        for record in handled(consumer, service="payment"):        # kafka-python
            ...  # what is sent here joins the record's saga
        async for record in handled(consumer, service="payment"):  # aiokafka
            ...
        for msg in handled(consumer, poll_timeout_s=1.0):           # confluent-kafka
            if msg is None or msg.error():   # what poll() returned, unchanged
                continue
            ...

    ``records`` is anything that yields consumed records: a kafka-python ``KafkaConsumer``, an
    aiokafka ``AIOKafkaConsumer`` (``async for``), or a batch (``poll()``'s or ``getmany()``'s
    list of one partition). A ``confluent_kafka.Consumer`` has no iterator: with
    ``poll_timeout_s`` the loop is ``poll(poll_timeout_s)`` called for ever, and yields what each
    call returns, None on a timeout and error messages included, untouched and not traced, so
    the loop body stays as it was and still checks its stop flag after every timeout.

    A record's handling ends when the loop asks for the next record (then an outcome marked
    with ``saga_outcome`` that no send carried is sent, awaited under ``async for``) or when the
    loop runs out. Leaving the loop inside the body (``break``, ``return``, an exception) ends
    it too, but the iterator cannot tell an exception from a ``break``: the span is ended with
    no error status and a pending outcome is not sent. Use ``with handling(record)`` where an
    exception must mark the span.

    Args:
        records: the consumer, or a batch of its records.
        service, consumer_group, tracer_provider, propagator: as for :func:`handling`.
        poll_timeout_s: for a ``confluent_kafka.Consumer`` only: the timeout of each ``poll``.

    Raises:
        TypeError: ``records`` yields nothing, or ``poll_timeout_s`` is missing for a consumer
            that only polls, or given for one that iterates.
    """
    iterable = hasattr(records, "__iter__") or hasattr(records, "__aiter__")
    if poll_timeout_s is None and not iterable:
        if hasattr(records, "poll"):
            raise TypeError(f"handled({type(records).__name__}): a consumer that only polls "
                            "needs poll_timeout_s, the timeout of each poll")
        raise TypeError(f"handled() needs a consumer or records, not {type(records).__name__}")
    if poll_timeout_s is not None and iterable:
        raise TypeError(f"handled({type(records).__name__}): poll_timeout_s is for a "
                        "confluent_kafka.Consumer; this one is iterated directly")
    instrumentation = instrumentation_for(service, consumer_group, tracer_provider, propagator)
    return Handled(instrumentation, records, poll_timeout_s)


class Handled:
    """What :func:`handled` returns: iterate it with ``for``, or ``async for`` (aiokafka)."""

    __slots__ = ("_instrumentation", "_poll_timeout_s", "_records")

    def __init__(
        self, instrumentation: _Instrumentation, records: Any, poll_timeout_s: float | None
    ) -> None:
        self._instrumentation = instrumentation
        self._records = records
        self._poll_timeout_s = poll_timeout_s

    def __iter__(self) -> Iterator[Any]:
        # A new generator each time, held by the loop alone: leaving the loop closes it.
        current = _CurrentRecord(self._instrumentation)
        if self._poll_timeout_s is not None:
            poll = functools.partial(self._records.poll, self._poll_timeout_s)
            return _handle_each(current, iter(poll, _NEVER), _is_polled_message)
        if not hasattr(self._records, "__iter__"):
            raise TypeError(f"{type(self._records).__name__} is iterated with async for")
        return _handle_each(current, self._records, _is_anything)

    def __aiter__(self) -> AsyncIterator[Any]:
        if not hasattr(self._records, "__aiter__"):
            raise TypeError(f"{type(self._records).__name__} is iterated with for, not async for")
        return _AsyncHandleEach(_CurrentRecord(self._instrumentation), self._records.__aiter__())


class _CurrentRecord:
    """The record a loop is handling, if any: the handling of one record ends as the next begins."""

    __slots__ = ("_instrumentation", "_scope")

    def __init__(self, instrumentation: _Instrumentation) -> None:
        self._instrumentation = instrumentation
        self._scope: _HandlerScope | None = None

    def begin(self, record: Any) -> None:
        reader = reader_for(record)
        if reader is None:
            log.warning("handled: %s is not a consumed record; not traced", type(record).__name__)
            return
        self._scope = self._instrumentation.enter_record(record, reader)

    def succeeded(self) -> Any:
        """The body is done with the record: end its handling; the outcome marker's send, if any."""
        scope, self._scope = self._scope, None
        return scope.close(True) if scope is not None else None

    def left(self) -> None:
        """The loop was left inside the body: by a break, a return or an exception."""
        scope, self._scope = self._scope, None
        if scope is None:
            return
        saga = scope.saga
        if saga.status is not None and not saga.status_sent:
            log.warning(
                "saga %r: outcome %r not sent: the loop was left while handling its record "
                "(a break, a return or an exception; a loop cannot tell which); "
                "with handling(record) sends it unless the block raises",
                saga.saga_id, saga.status,
            )
        scope.close(False)


def _is_anything(record: Any) -> bool:
    return True


def _is_polled_message(message: Any) -> bool:
    # confluent-kafka's poll(): None on a timeout; an error (e.g. end of a partition) is a
    # Message with error() set. Neither is a record to handle.
    return message is not None and message.error() is None


def _handle_each(
    current: _CurrentRecord, records: Iterable[Any], is_record: Callable[[Any], bool]
) -> Iterator[Any]:
    try:
        for record in records:
            if is_record(record):
                current.begin(record)
            yield record
            finish_in_background(current.succeeded())
    finally:
        current.left()  # still handling: GeneratorExit at the yield


class _AsyncHandleEach:
    """``async for``: an async generator would be closed by the event loop in another task,
    too late to restore this task's context; this iterator is collected as the loop is left,
    in the loop's own task (CPython), and ends the record's handling there."""

    __slots__ = ("_current", "_records")

    def __init__(self, current: _CurrentRecord, records: AsyncIterator[Any]) -> None:
        self._current = current
        self._records = records

    def __aiter__(self) -> _AsyncHandleEach:
        return self

    async def __anext__(self) -> Any:
        await awaited(self._current.succeeded())
        record = await self._records.__anext__()
        self._current.begin(record)
        return record

    def __del__(self) -> None:
        self._current.left()
