"""The collector's consumer on confluent-kafka (librdkafka), ``collector.client = confluent-kafka``.

librdkafka fetches and parses in C; each record then costs a ``Message`` object and one
tuple here, handed to the decoding processes as it is (``ParsedRecords``). Its rebalance
callbacks run inside ``consume()``, on the loop's thread, so the collector's handler may use
the consumer freely in them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from sagascope.collector.assignment import AssignmentHandler, Partition
from sagascope.collector.exceptions import BrokerError
from sagascope.collector.record_batches import DamagedBatch, ParsedRecords

log = logging.getLogger(__name__)

#: Group settings in the collector's (kafka-python) names -> librdkafka property names.
_PROPERTY = {
    "group_id": "group.id",
    "client_id": "client.id",
    "max_poll_interval_ms": "max.poll.interval.ms",
    "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms",
}
#: Consume errors that mean a record batch is damaged (see ConfluentConsumer._consume_error).
_DAMAGE = frozenset({KafkaError._BAD_MSG, KafkaError._BAD_COMPRESSION})
_GROUP_PROPERTIES = frozenset({
    "group.id", "enable.auto.commit", "auto.offset.reset", "max.poll.interval.ms",
    "session.timeout.ms", "heartbeat.interval.ms", "on_commit", "enable.auto.offset.store",
    "partition.assignment.strategy", "group.instance.id", "check.crcs",
})


class ConfluentFactory:
    """confluent-kafka consumers for the collector.

    Args:
        group_config: the group's settings, in the collector's (kafka-python) names.
        extra_config: further librdkafka properties (tests, TLS, SASL); they win.
    """

    def __init__(
        self, bootstrap_servers: str, group_config: Mapping[str, Any], extra_config: Mapping[str, Any]
    ) -> None:
        self.config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Without it librdkafka hands over a damaged record's bytes as if they were sent.
            "check.crcs": True,
            "auto.offset.reset": "earliest",
            **{_PROPERTY[k]: v for k, v in group_config.items() if k in _PROPERTY},
            **extra_config,
        }
        # librdkafka refuses a poll interval below the session timeout (kafka-python does not).
        if "max.poll.interval.ms" in self.config and "session.timeout.ms" in self.config:
            self.config["max.poll.interval.ms"] = max(
                self.config["max.poll.interval.ms"], self.config["session.timeout.ms"]
            )

    def open_consumer(self) -> ConfluentConsumer:
        config = dict(self.config)
        consumer_holder: list[ConfluentConsumer] = []

        def committed(err: Any, _partitions: Any) -> None:
            if err is not None and consumer_holder:
                consumer_holder[0].commit_failed(KafkaException(err))

        config["on_commit"] = committed
        try:
            consumer = Consumer(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise BrokerError(f"cannot create the confluent-kafka consumer: {exc}") from exc
        wrapped = ConfluentConsumer(consumer, int(config.get("fetch.wait.max.ms", 500)))
        consumer_holder.append(wrapped)
        return wrapped

    def open_lister(self) -> tuple[Callable[[], Collection[str]], Callable[[], None]]:
        config = {k: v for k, v in self.config.items() if k not in _GROUP_PROPERTIES}
        config["client.id"] = f"{self.config.get('client.id', 'sagascope-collector')}-topics"
        try:
            admin = AdminClient(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise BrokerError(str(exc)) from exc

        def topics() -> Collection[str]:
            try:
                return list(admin.list_topics(timeout=5).topics)
            except KafkaException as exc:
                raise BrokerError(str(exc)) from exc

        return topics, lambda: None


def _tps(partitions: Collection[Partition]) -> list[TopicPartition]:
    return [TopicPartition(p.topic, p.partition) for p in partitions]


def _partitions(tps: Collection[TopicPartition]) -> list[Partition]:
    return [Partition(tp.topic, tp.partition) for tp in tps]


class ConfluentConsumer:
    """A confluent-kafka ``Consumer`` behind the collector's ``ConsumerClient`` interface."""

    def __init__(self, consumer: Consumer, fetch_wait_ms: int) -> None:
        self._consumer = consumer
        self.fetch_wait_ms = fetch_wait_ms
        self._paused: set[Partition] = set()
        self._on_commit_error: Callable[[Exception], None] | None = None
        #: While a rebalance assigns partitions: their offsets sought so far (see on_assign).
        self._assigning: dict[Partition, int] | None = None
        self._assigning_set: set[Partition] = set()
        #: Next offset of each partition, as far as this consumer knows (see _consume_error).
        self._next: dict[tuple[str, int], int] = {}

    def subscribe(self, topics: list[str], handler: AssignmentHandler) -> None:
        def on_assign(consumer: Consumer, tps: list[TopicPartition]) -> None:
            # librdkafka cannot seek a partition it has not started fetching ("Erroneous
            # state"): while the handler positions the new partitions, their pauses and seeks
            # are collected, then the partitions are assigned at those offsets and paused.
            self._assigning = {}
            self._assigning_set = set(_partitions(tps))
            try:
                handler.assigned(_partitions(tps))
                offsets = self._assigning
            finally:
                self._assigning = None
                self._assigning_set = set()
            consumer.assign([
                TopicPartition(tp.topic, tp.partition, offsets[Partition(tp.topic, tp.partition)])
                if Partition(tp.topic, tp.partition) in offsets else tp
                for tp in tps
            ])
            paused = [p for p in _partitions(tps) if p in self._paused]
            if paused:
                consumer.pause(_tps(paused))

        def on_revoke(consumer: Consumer, tps: list[TopicPartition]) -> None:
            handler.revoked(_partitions(tps))
            self._forget(tps)

        def on_lost(consumer: Consumer, tps: list[TopicPartition]) -> None:
            handler.lost(_partitions(tps))
            self._forget(tps)

        try:
            self._consumer.subscribe(topics, on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
        except KafkaException as exc:
            raise BrokerError(str(exc)) from exc

    def poll(self, timeout_s: float, max_records: int) -> Mapping[Partition, list[Any]]:
        try:
            messages = self._consumer.consume(
                num_messages=max(1, min(max_records, 100_000)), timeout=timeout_s
            )
        except KafkaException as exc:
            raise BrokerError(str(exc)) from exc
        # One tuple per record, in the decoding processes' Fields order, grouped by
        # partition: the loop's whole per-record cost (no record objects, no conversions).
        by_partition: dict[tuple[str, int], list[Any]] = {}
        get = by_partition.get
        damaged: set[tuple[str, int]] = set()
        for m in messages:
            if m.error() is not None:
                self._consume_error(m, by_partition, damaged)
                continue
            where: Any = (m.topic(), m.partition())  # both set on a message without error
            fields = get(where)
            if fields is None:
                fields = by_partition[where] = []
            elif where in damaged:
                continue  # read before the seek past the damage: read again after it
            kind, timestamp = m.timestamp()
            fields.append((
                m.offset(), timestamp if kind else None, m.key(), m.value(), m.headers() or [],
            ))
        for (topic, partition), fields in by_partition.items():
            if fields and type(fields[-1]) is not DamagedBatch:
                self._next[(topic, partition)] = fields[-1][0] + 1
        return {
            Partition(topic, partition): [ParsedRecords(topic, partition, fields)]
            for (topic, partition), fields in by_partition.items()
            if fields
        }

    def _consume_error(
        self, message: Any, by_partition: dict[tuple[str, int], list[Any]],
        damaged: set[tuple[str, int]],
    ) -> None:
        """Log an error; a damaged batch becomes a damaged offset of its partition.

        librdkafka (``check.crcs``) reports a batch failing its CRC or not parsing at the
        fetch position, without its bytes, and fetches it again forever. So the position
        becomes a row carrying the error (as with kafka-python, nothing is skipped silently)
        and the partition is moved past it; the next offsets of the same batch come back
        the same way, one by one.
        """
        error = message.error()
        if error.code() not in _DAMAGE or message.topic() is None or message.partition() is None:
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consume error: %s", error)
            return
        where = (message.topic(), message.partition())
        fields = by_partition.setdefault(where, [])
        if where in damaged:
            return  # the same damage again before the seek took effect
        reported = message.offset()
        position = max(-1 if reported is None else reported, self._next.get(where, -1))
        if fields and type(fields[-1]) is not DamagedBatch:
            position = max(position, fields[-1][0] + 1)
        if position < 0:
            log.error("damaged batch in %s[%d] at no known offset: %s", *where, error)
            return
        log.error("damaged record batch in %s[%d] at offset %d: %s", *where, position, error)
        fields.append(DamagedBatch(
            f"record batch at offset {position} failed its CRC check or does not parse "
            f"(librdkafka: {error.str()})", position, position,
        ))
        damaged.add(where)
        self._next[where] = position + 1
        self.seek(Partition(*where), position + 1)

    def _forget(self, tps: list[TopicPartition]) -> None:
        """Partitions gone from this consumer: their pause and known position with them."""
        self._paused.difference_update(_partitions(tps))
        for tp in tps:
            self._next.pop((tp.topic, tp.partition), None)

    def pause(self, partitions: Collection[Partition]) -> None:
        self._paused.update(partitions)
        assigned = [p for p in partitions if self._assigning is None or p not in self._assigning_set]
        if assigned:
            self._consumer.pause(_tps(assigned))

    def resume(self, partitions: Collection[Partition]) -> None:
        self._paused.difference_update(partitions)
        assigned = [p for p in partitions if self._assigning is None or p not in self._assigning_set]
        if assigned:
            self._consumer.resume(_tps(assigned))

    def paused(self) -> set[Partition]:
        return self._paused & self.assignment()

    def assignment(self) -> set[Partition]:
        return set(_partitions(self._consumer.assignment()))

    def seek(self, partition: Partition, offset: int) -> None:
        self._next[(partition.topic, partition.partition)] = offset
        if self._assigning is not None and partition in self._assigning_set:
            self._assigning[partition] = offset  # applied by the assign() that follows
            return
        try:
            self._consumer.seek(TopicPartition(partition.topic, partition.partition, offset))
        except KafkaException as exc:
            where = f"{partition.topic}[{partition.partition}]"
            raise BrokerError(f"cannot seek {where} to {offset}: {exc}") from exc

    def seek_to_start(self, partition: Partition, start_from: str) -> None:
        # Resolved to an offset here (librdkafka reports no position before the first
        # record, and progress needs one); librdkafka's logical offset if the broker does not
        # answer (auto.offset.reset covers an offset retention removed meanwhile).
        tp = TopicPartition(partition.topic, partition.partition)
        offset: int | None = None
        try:
            low, high = self._consumer.get_watermark_offsets(tp, timeout=5.0, cached=False)
            offset = high if start_from == "latest" else low
        except KafkaException as exc:
            log.warning("no watermarks of %s[%d] (%s): starting at %s", *partition, exc, start_from)
        if offset is None or offset < 0:
            self._next.pop((partition.topic, partition.partition), None)
            offset = OFFSET_END if start_from == "latest" else OFFSET_BEGINNING
            if self._assigning is not None and partition in self._assigning_set:
                self._assigning[partition] = offset
            else:
                self._consumer.seek(TopicPartition(partition.topic, partition.partition, offset))
            return
        self.seek(partition, int(offset))

    def position(self, partition: Partition) -> int | None:
        (tp,) = self._consumer.position([TopicPartition(partition.topic, partition.partition)])
        if tp.offset < 0:  # nothing consumed yet: where it was sought, if known
            return self._next.get((partition.topic, partition.partition))
        return int(tp.offset)

    def highwater(self, partition: Partition) -> int | None:
        tp = TopicPartition(partition.topic, partition.partition)
        _low, high = self._consumer.get_watermark_offsets(tp, cached=True)
        return None if high is None or high < 0 else int(high)

    def commit(self, offsets: Mapping[Partition, int], *, on_error: Callable[[Exception], None]) -> None:
        self._on_commit_error = on_error
        request = [TopicPartition(p.topic, p.partition, o) for p, o in offsets.items()]
        try:
            self._consumer.commit(offsets=request, asynchronous=True)
        except KafkaException as exc:  # the store is the truth: a failed commit loses nothing
            on_error(exc)

    def commit_failed(self, exc: Exception) -> None:
        if self._on_commit_error is not None:
            self._on_commit_error(exc)

    def close(self) -> None:
        self._consumer.close()

