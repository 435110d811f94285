"""`sagascope verify`: contiguous offsets and the per-partition hash chain, on a real chDB store."""

from __future__ import annotations

import json

import pytest
from collector_helpers import make_record

from sagascope.cli import main
from sagascope.collector.assignment import PartitionState
from sagascope.collector.batch import Batch, add_records
from sagascope.collector.decode.correlate import Correlator
from sagascope.collector.decode.redact import Redactor
from sagascope.collector.decode.rows import DecodeContext
from sagascope.collector.writer import progress_rows, write_batch
from sagascope.store import verify

CTX = DecodeContext(Correlator(), Redactor(), 65536)


def store_offsets(store, offsets, topic="audit", partition=0, state=None, link=0) -> PartitionState:
    """Store records at these offsets as the collector does (decode, chain, insert), in one
    batch; ``link`` records per poll (one link of the chain each), all in one poll if 0."""
    state = state or PartitionState(topic, partition, None, "")
    batch = Batch()
    records = [
        make_record(
            json.dumps({"n": o}).encode(),
            topic=topic,
            partition=partition,
            offset=o,
            headers=[("ce_sagaid", f"s{o % 3}".encode())],
        )
        for o in offsets
    ]
    step = link or len(records) or 1
    for i in range(0, len(records), step):
        add_records(batch, state, records[i : i + step], CTX, spans=False)
    write_batch(store, batch)
    state.promote()
    return state


def mutate(store, sql: str) -> None:
    store.command(sql + " SETTINGS mutations_sync = 2")


def run_verify_cli(store, capsys, *extra):
    code = main(["verify", "--store-path", store.path, "--database", store.database, *extra])
    return code, capsys.readouterr().out


def test_an_untouched_trail_verifies(store, capsys):
    state = store_offsets(store, range(0, 6))
    store_offsets(store, range(6, 12), state=state)
    store_offsets(store, range(0, 4), partition=1)
    report = verify(store)
    assert report.ok and report.rows == 16
    code, out = run_verify_cli(store, capsys)
    assert code == 0
    assert "audit trail complete and unedited" in out


def test_a_deleted_row_is_reported_as_deleted(store, capsys):
    store_offsets(store, range(10))
    mutate(store, "ALTER TABLE messages DELETE WHERE offset = 4")
    (p,) = verify(store).partitions
    assert p.deleted == [(4, 4)] and not p.lost and not p.edited
    code, out = run_verify_cli(store, capsys)
    assert code == 1
    assert "deleted offsets 4-4" in out


def test_an_edited_row_is_reported_as_edited(store, capsys):
    store_offsets(store, range(10), link=5)
    mutate(store, "ALTER TABLE messages UPDATE payload = '{\"n\": 999}' WHERE offset = 7")
    (p,) = verify(store).partitions
    # One hash per link: the edit is placed within its link (offsets 5-9), not to the row.
    assert p.edited == [(5, 9)] and not p.deleted and not p.lost
    code, out = run_verify_cli(store, capsys, "--json")
    assert code == 1
    assert json.loads(out)["partitions"][0]["edited"] == [[5, 9]]


def test_only_the_last_row_of_each_link_carries_a_chain_hash(store):
    store_offsets(store, range(10), link=4)
    rows = store.query("SELECT offset, notEmpty(chain_hash) FROM messages ORDER BY offset").rows
    assert [o for o, has in rows if has] == [3, 7, 9]


def test_an_edit_that_forges_a_chain_hash_still_breaks_the_next_link(store):
    store_offsets(store, range(10))
    mutate(
        store,
        "ALTER TABLE messages UPDATE type = 'forged', chain_hash = repeat('0', 64) WHERE offset = 3",
    )
    (p,) = verify(store).partitions
    assert p.edited == [(0, 3), (4, 9)]


def test_an_edited_elided_header_bit_is_detected(store):
    store_offsets(store, range(6))
    assert store.query("SELECT min(headers_elided) FROM messages").scalar() > 0
    mutate(store, "ALTER TABLE messages UPDATE headers_elided = 0 WHERE offset = 2")
    (p,) = verify(store).partitions
    assert p.edited == [(0, 5)]


def test_rows_chained_one_by_one_before_links_still_verify(store):
    """Rows stored by the per-row chain (every row sealed) are links of one row."""
    state = PartitionState("audit", 0, None, "")
    for o in range(5):
        store_offsets(store, [o], state=state)
    assert store.query("SELECT countIf(notEmpty(chain_hash)) FROM messages").scalar() == 5
    assert verify(store).ok


def test_a_missing_offset_is_reported_as_a_loss(store, capsys):
    state = store_offsets(store, range(5))
    store_offsets(store, range(7, 10), state=state)  # 5 and 6 never reached the collector
    (p,) = verify(store).partitions
    assert p.lost == [(5, 6)] and not p.deleted and not p.edited
    code, out = run_verify_cli(store, capsys)
    assert code == 1 and "lost offsets 5-6 (never stored" in out


def test_rows_deleted_from_the_end_show_against_progress(store):
    state = store_offsets(store, range(8))
    store.insert("progress", progress_rows("g", "c", [state], {("audit", 0): 8}, 0))
    mutate(store, "ALTER TABLE messages DELETE WHERE offset >= 6")
    (p,) = verify(store).partitions
    assert p.deleted == [(6, 7)]


def test_a_duplicated_offset_is_reported(store):
    store_offsets(store, range(5))
    store.command("INSERT INTO messages SELECT * FROM messages WHERE offset = 2")
    (p,) = verify(store).partitions
    assert p.duplicates == [2] and not p.edited


def test_verify_can_be_limited_to_topics(store):
    store_offsets(store, range(3), topic="orders")
    store_offsets(store, range(3), topic="payments")
    mutate(store, "ALTER TABLE messages DELETE WHERE topic = 'payments' AND offset = 1")
    assert verify(store, "orders").ok
    assert not verify(store, "pay.*").ok


@pytest.mark.parametrize("first", [0, 5])
def test_the_chain_starts_where_the_collector_started(store, first):
    store_offsets(store, range(first, first + 3))
    assert verify(store).ok


def test_offsets_before_the_first_collected_one_were_never_stored(store, capsys):
    """A collector that began at offset 5 (start_from, or retention): 0-4 are no loss."""
    state = store_offsets(store, range(5, 10))
    store.insert("progress", progress_rows("g", "c", [state], {("audit", 0): 10}, 0))
    (p,) = verify(store).partitions
    assert p.ok and p.never_stored == (0, 4)
    code, out = run_verify_cli(store, capsys)
    assert code == 0
    assert "offsets 0-4 never stored" in out and "deleted" not in out


def test_a_partition_positioned_but_never_stored_is_not_a_deletion(store, capsys):
    """Progress of a partition the collector started at offset 32 and stored nothing of."""
    state = PartitionState("audit", 0, 32, "", start_offset=32)
    store.insert("progress", progress_rows("g", "c", [state], {("audit", 0): 32}, 0))
    assert verify(store).ok
    code, out = run_verify_cli(store, capsys)
    assert code == 0 and "deleted" not in out


def test_rows_deleted_from_the_start_of_a_late_partition_are_deleted(store):
    state = store_offsets(store, range(5, 15), link=5)
    store.insert("progress", progress_rows("g", "c", [state], {("audit", 0): 15}, 0))
    mutate(store, "ALTER TABLE messages DELETE WHERE offset < 10")
    (p,) = verify(store).partitions
    assert p.deleted == [(5, 9)] and not p.edited and not p.lost
    assert p.never_stored == (0, 4)


def test_every_row_deleted_shows_against_progress_from_where_collection_began(store):
    state = store_offsets(store, range(5, 10))
    store.insert("progress", progress_rows("g", "c", [state], {("audit", 0): 10}, 0))
    mutate(store, "ALTER TABLE messages DELETE WHERE offset >= 0")
    (p,) = verify(store).partitions
    assert p.deleted == [(5, 9)] and p.never_stored == (0, 4)
