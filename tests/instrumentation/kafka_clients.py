"""Reading records back with confluent-kafka and aiokafka by assignment (no consumer group),
and counting what a topic holds."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from waiting import collect


def confluent_producer(bootstrap_servers: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 1,
                     "log_level": 3})


def good_message(message: Any) -> list[Any]:
    """A confluent_kafka poll's message as a list: empty for none or an error event."""
    return [message] if message is not None and message.error() is None else []


def read_confluent(bootstrap_servers: str, topic: str, n: int, timeout_s: float = 30.0) -> list[Any]:
    """The first n messages of partition 0 of topic, as confluent_kafka.Message."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "read-back",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages = collect(lambda: good_message(consumer.poll(0.2)), n, timeout_s)
        assert len(messages) >= n, f"read {len(messages)} of {n} messages from {topic}"
        return messages[:n]
    finally:
        consumer.close()


async def read_aiokafka(bootstrap_servers: str, topic: str, n: int,
                        timeout_s: float = 30.0) -> list[Any]:
    """The first n records of partition 0 of topic, as aiokafka ConsumerRecords."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        records: list[Any] = []

        async def read() -> None:
            while len(records) < n:
                for batch in (await consumer.getmany(timeout_ms=200)).values():
                    records.extend(batch)

        with contextlib.suppress(TimeoutError):  # waiting.collect, the asyncio way
            await asyncio.wait_for(read(), timeout_s)
        assert len(records) >= n, f"read {len(records)} of {n} records from {topic}"
        return records[:n]
    finally:
        await consumer.stop()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def records_in(bootstrap_servers: str, topic: str) -> int:
    """How many records partition 0 of ``topic`` holds (its end offset)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers)
    try:
        partition = TopicPartition(topic, 0)
        return int(consumer.end_offsets([partition])[partition])
    finally:
        consumer.close()
