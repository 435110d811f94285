"""Hot-path ids and times follow the contract's formats."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime

from sagascope.instrumentation import contract as c
from sagascope.instrumentation._ids import (
    current_tick,
    message_id_at,
    new_span_id,
    tick_at,
    uuid7_tick,
)

UUID7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_message_ids_are_uuid7_carrying_their_millisecond() -> None:
    ms = 1_763_800_000_123
    mid = message_id_at(ms)
    assert UUID7.match(mid)
    assert int(mid.replace("-", "")[:12], 16) == ms


def test_message_ids_are_unique_and_sort_by_time() -> None:
    ids = [message_id_at(1_000 + i // 100) for i in range(5000)]
    assert len(set(ids)) == len(ids)
    assert [i[:13] for i in ids] == sorted(i[:13] for i in ids)


def test_the_ticks_ce_time_is_the_contract_format_across_seconds() -> None:
    now_ms = time.time_ns() // 1_000_000
    for ms in (now_ms, now_ms + 1, now_ms + 999, now_ms + 1000, 0, 1_763_800_000_999):
        header, value = tick_at(ms)[3]
        text = value.decode()
        assert header == c.CE_TIME
        assert text == c.format_time(ms / 1000)
        assert c.parse_time(text) == datetime.fromtimestamp(ms / 1000, UTC)


def test_span_ids_are_non_zero_64_bit() -> None:
    ids = {new_span_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(0 < i < 2**64 for i in ids)


def test_ids_of_one_millisecond_count_up_from_a_random_start() -> None:
    ms = 1_763_800_000_123
    prefix, counter = uuid7_tick(ms)
    ids = [(b"%s%012x" % (prefix, next(counter))).decode() for _ in range(1000)]
    assert all(UUID7.match(i) for i in ids)
    assert all(int(i.replace("-", "")[:12], 16) == ms for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # Another producer (or process) in the same millisecond draws its own start.
    other_prefix, other = uuid7_tick(ms)
    assert (other_prefix, next(other)) != (prefix, int(ids[0][-12:], 16))


def test_the_counter_never_outgrows_its_twelve_digits() -> None:
    for _ in range(200):
        _, counter = uuid7_tick(0)
        assert next(counter) < 2**47  # leaves 2**47 ids a millisecond before 12 hex digits


def test_a_forked_child_does_not_count_on_from_its_parent() -> None:
    ms = time.time_ns() // 1_000_000
    tick_at(ms)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report whether the parent's tick is gone
        os.write(write, b"%d" % current_tick[0][0])
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 64) == b"-1"
    assert current_tick[0][0] == ms
