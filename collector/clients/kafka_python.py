"""The collector's consumer on kafka-python (the default client).

With decoding processes, every fetched record batch of a decoded topic is handed over whole
(``record_batches.hand_over_batches``): kafka-python does group membership, fetching, positions
and commits, and never parses a record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

from sagascope.collector.assignment import AssignmentHandler, Partition, partitions_of
from sagascope.collector.exceptions import BrokerError
from sagascope.collector.record_batches import hand_over_batches

log = logging.getLogger(__name__)

#: KafkaConsumer settings that concern the group, left out of the topic watcher's client.
_GROUP_SETTINGS = frozenset({
    "group_id", "enable_auto_commit", "auto_offset_reset", "max_poll_interval_ms",
    "max_poll_records", "session_timeout_ms", "heartbeat_interval_ms",
})


class KafkaPythonFactory:
    """kafka-python consumers for the collector.

    Args:
        group_config: the group's settings (``group_id``, timeouts, ``client_id``), in
            kafka-python's names.
        extra_config: further ``KafkaConsumer`` arguments (tests, TLS, SASL); they win.
        raw_topic: topics whose record batches come whole (``RawBatch``, parsed by the
            collector); None: kafka-python's own records.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_config: Mapping[str, Any],
        extra_config: Mapping[str, Any],
        raw_topic: Callable[[str], bool] | None,
    ) -> None:
        self.config: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers.split(","),
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            # Give up on an unreachable broker soon, so the retry loop can see stop requests.
            "bootstrap_timeout_ms": 5000,
            **group_config,
            **extra_config,
        }
        self._raw_topic = raw_topic

    def open_consumer(self) -> KafkaPythonConsumer:
        try:
            consumer = KafkaConsumer(**self.config)
        except KafkaError as exc:
            raise BrokerError(str(exc)) from exc
        if self._raw_topic is not None:
            hand_over_batches(consumer, self._raw_topic)
        return KafkaPythonConsumer(consumer, int(self.config.get("fetch_max_wait_ms", 500)))

    def open_lister(self) -> tuple[Callable[[], Collection[str]], Callable[[], None]]:
        config = {k: v for k, v in self.config.items() if k not in _GROUP_SETTINGS}
        config["client_id"] = f"{self.config.get('client_id', 'sagascope-collector')}-topics"
        config["enable_auto_commit"] = False  # no group: else kafka-python warns it disables it
        try:
            client = KafkaConsumer(**config)
        except KafkaError as exc:
            raise BrokerError(str(exc)) from exc

        def topics() -> Collection[str]:
            try:
                return client.topics()
            except KafkaError as exc:
                raise BrokerError(str(exc)) from exc

        return topics, client.close


def _tps(partitions: Collection[Partition]) -> list[TopicPartition]:
    return [TopicPartition(p.topic, p.partition) for p in partitions]


class KafkaPythonConsumer:
    """A ``KafkaConsumer`` behind the collector's ``ConsumerClient`` interface."""

    def __init__(self, consumer: KafkaConsumer, fetch_wait_ms: int) -> None:
        self._consumer = consumer
        self.fetch_wait_ms = fetch_wait_ms

    def subscribe(self, topics: list[str], handler: AssignmentHandler) -> None:
        self._consumer.subscribe(topics=topics, listener=_Listener(handler))

    def poll(self, timeout_s: float, max_records: int) -> Mapping[Partition, list[Any]]:
        try:
            # With record batches handed over whole, max_records counts batches: a poll may
            # overshoot by up to what one fetch returned.
            fetched = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise BrokerError(str(exc)) from exc
        # A TopicPartition is a (topic, partition) tuple: equal to, and hashed as, a Partition.
        return fetched

    def pause(self, partitions: Collection[Partition]) -> None:
        if partitions:
            self._consumer.pause(*_tps(partitions))

    def resume(self, partitions: Collection[Partition]) -> None:
        if partitions:
            self._consumer.resume(*_tps(partitions))

    def paused(self) -> set[Partition]:
        return set(partitions_of(self._consumer.paused()))

    def assignment(self) -> set[Partition]:
        return set(partitions_of(self._consumer.assignment()))

    def seek(self, partition: Partition, offset: int) -> None:
        self._consumer.seek(TopicPartition(*partition), offset)

    def seek_to_start(self, partition: Partition, start_from: str) -> None:
        tp = TopicPartition(*partition)
        if start_from == "latest":
            self._consumer.seek_to_end(tp)
        else:
            self._consumer.seek_to_beginning(tp)

    def position(self, partition: Partition) -> int | None:
        return self._consumer.position(TopicPartition(*partition), timeout_ms=100)

    def highwater(self, partition: Partition) -> int | None:
        return self._consumer.highwater(TopicPartition(*partition))

    def commit(self, offsets: Mapping[Partition, int], *, on_error: Callable[[Exception], None]) -> None:
        # Not waited for: the store, not Kafka, says where partitions resume, so a commit is
        # an optimisation, and a round trip per batch was measured to stall the loop.
        def done(_offsets: Any, result: Any) -> None:
            if isinstance(result, Exception):
                on_error(result)

        request = {TopicPartition(*p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        try:
            self._consumer.commit_async(request, callback=done)
        except Exception as exc:  # the store is the truth: a failed commit loses nothing
            on_error(exc)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class _Listener(ConsumerRebalanceListener):
    """Runs on kafka-python's IO thread, so no blocking consumer calls (commit, position)
    happen in it, only subscription-state ones (seek, pause)."""

    def __init__(self, handler: AssignmentHandler) -> None:
        self._handler = handler

    def on_partitions_revoked(self, revoked: Collection[Any]) -> None:
        self._handler.revoked(partitions_of(revoked))

    def on_partitions_lost(self, lost: Collection[Any]) -> None:
        self._handler.lost(partitions_of(lost))

    def on_partitions_assigned(self, assigned: Collection[Any]) -> None:
        self._handler.assigned(partitions_of(assigned))
