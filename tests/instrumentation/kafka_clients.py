"""Reading records back with confluent-kafka and aiokafka by assignment (no consumer group),
and counting what a topic holds."""

from __future__ import annotations

import asyncio
import time
from typing import Any


def confluent_producer(bootstrap_servers: str) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": bootstrap_servers, "linger.ms": 1,
                     "log_level": 3})


def read_confluent(bootstrap_servers: str, topic: str, n: int, timeout_s: float = 30.0) -> list[Any]:
    """The first n messages of partition 0 of topic, as confluent_kafka.Message."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap_servers, "group.id": "read-back",
                         "enable.auto.commit": False, "log_level": 3})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        messages: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(messages) < n and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
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
        deadline = time.monotonic() + timeout_s
        while len(records) < n and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
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
