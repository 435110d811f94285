"""The same store contract on every backend: chDB, clickhouse-connect against a loopback
ClickHouse-speaking server (chDB behind HTTP), and a real ClickHouse server when
SAGASCOPE_TEST_CLICKHOUSE_URL (or --clickhouse-url) names one."""

from __future__ import annotations

import itertools
import os
from datetime import UTC, datetime

import pytest
from chdb_http import ChdbHttpServer

from sagascope.collector.writer import stored_positions
from sagascope.store import ClickHouseStore, StoreError, ensure_schema

_db_counter = itertools.count()


@pytest.fixture(scope="module")
def loopback(chdb_path):
    with ChdbHttpServer(chdb_path) as srv:
        yield srv


@pytest.fixture(params=["chdb", "clickhouse-connect-loopback", "clickhouse-server"])
def any_store(request, store, loopback):
    """A store with the schema, on each backend."""
    if request.param == "chdb":
        yield store
        return
    if request.param == "clickhouse-connect-loopback":
        url = f"{loopback.url}/cc_{os.getpid()}_{next(_db_counter)}"
    else:
        base = request.config.getoption("--clickhouse-url")
        if not base:
            pytest.skip(
                "no ClickHouse server: set SAGASCOPE_TEST_CLICKHOUSE_URL or --clickhouse-url"
            )
        url = base
    s = ClickHouseStore(
        url,
        None
        if request.param != "clickhouse-server"
        else f"sagascope_test_{os.getpid()}_{next(_db_counter)}",
    )
    ensure_schema(s)
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")
    s.close()


MESSAGE = {
    "topic": "orders",
    "partition": 3,
    "offset": 41,
    "kafka_time": "1763800000.123",
    "event_time": "1763800000.100",
    "ingest_time": "1763800001.000",
    "kafka_key": "k",
    "trace_id": "t" * 32,
    "span_id": "s" * 16,
    "saga_id": "order-1",
    "saga_type": "order",
    "message_id": "m1",
    "causation_id": "",
    "kind": "event",
    "type": "OrderPlaced",
    "source": "orders",
    "step": "place",
    "saga_status": "",
    "compensates": "",
    "headers": {"ce_id": "m1", "x": 'it\'s "quoted" \\ é'},
    "payload": '{"a":1}',
    "payload_size": 7,
    "payload_sha256": "a" * 64,
    "payload_truncated": False,
    "correlation": "headers",
    "parse_error": "",
    "chain_hash": "b" * 64,
}


def test_schema_is_idempotent(any_store):
    ensure_schema(any_store)
    ensure_schema(any_store)
    tables = set(
        any_store.query(
            "SELECT name FROM system.tables WHERE database = {db:String}",
            {"db": any_store.database},
        ).column("name")
    )
    assert {"messages", "spans", "alerts", "progress"} <= tables


def test_a_message_row_round_trips_with_its_types(any_store):
    any_store.insert("messages", [MESSAGE])
    (row,) = any_store.query("SELECT * FROM messages").dicts()
    assert row["kafka_time"] == datetime(2025, 11, 22, 8, 26, 40, 123000, tzinfo=UTC)
    assert row["headers"] == MESSAGE["headers"]
    assert row["payload_truncated"] is False
    assert row["chain_hash"] == "b" * 64
    assert (row["partition"], row["offset"]) == (3, 41)


def test_parameters_of_each_type_bind_server_side(any_store):
    any_store.insert("messages", [MESSAGE, {**MESSAGE, "offset": 42, "topic": "it's"}])
    result = any_store.query(
        "SELECT topic, offset FROM messages WHERE topic IN {topics:Array(String)} "
        "AND offset >= {start:UInt64} AND kafka_time < {before:DateTime64(3)} "
        "AND saga_id = {saga:String} ORDER BY offset",
        {
            "topics": ["it's", "nope"],
            "start": 42,
            "saga": "order-1",
            "before": datetime(2030, 1, 1, tzinfo=UTC),
        },
    )
    assert result.rows == [("it's", 42)]


def test_injection_through_a_parameter_is_just_a_value(any_store):
    any_store.insert("messages", [MESSAGE])
    hostile = "x' OR 1=1 --"
    assert (
        any_store.query(
            "SELECT count() FROM messages WHERE saga_id = {s:String}", {"s": hostile}
        ).scalar()
        == 0
    )


def test_a_replayed_insert_with_the_same_dedup_token_is_stored_once(any_store):
    any_store.insert("messages", [MESSAGE], dedup_token="orders/3/41-41")
    any_store.insert("messages", [MESSAGE], dedup_token="orders/3/41-41")
    any_store.insert("messages", [{**MESSAGE, "offset": 42}], dedup_token="orders/3/42-42")
    assert any_store.query("SELECT count() FROM messages").scalar() == 2


def test_stored_positions_resume_after_the_highest_offset(any_store):
    any_store.insert("messages", [MESSAGE, {**MESSAGE, "offset": 40, "chain_hash": "c" * 64}])
    assert stored_positions(any_store, [("orders", 3), ("orders", 4)]) == {
        ("orders", 3): (42, "b" * 64)
    }


def test_bad_identifiers_are_refused(any_store):
    with pytest.raises(StoreError, match="invalid identifier"):
        any_store.insert("messages; DROP TABLE x", [MESSAGE])
    with pytest.raises(StoreError, match="invalid identifier"):
        any_store.query("SELECT 1", {"bad name": 1})


def test_sql_errors_surface_as_store_errors(any_store):
    with pytest.raises(StoreError):
        any_store.query("SELECT no_such_column FROM messages")


def test_the_request_clickhouse_connect_sends(loopback):
    """Parameters travel as param_<name> next to the SQL, never inlined into it."""
    s = ClickHouseStore(f"{loopback.url}/cc_req_{os.getpid()}")
    ensure_schema(s)
    before = len(loopback.requests)
    s.query(
        "SELECT count() FROM messages WHERE topic IN {topics:Array(String)} AND offset = {o:UInt64}",
        {"topics": ["a'b", "c"], "o": 7},
    )
    s.insert("messages", [MESSAGE], dedup_token="tok-1")
    query, insert = loopback.requests[before:]
    assert "{topics:Array(String)}" in query.query and "a'b" not in query.query
    assert query.params == {"topics": "['a\\'b', 'c']", "o": "7"}
    assert query.query.rstrip().endswith("FORMAT JSONCompact")
    assert query.settings["date_time_output_format"] == "iso"
    assert query.settings["database"] == s.database
    assert insert.query.startswith("INSERT INTO messages (`topic`, `partition`, `offset`")
    assert insert.query.endswith("FORMAT JSONEachRow")
    assert insert.settings["insert_deduplication_token"] == "tok-1"
    assert insert.body.startswith(b'{"topic":"orders","partition":3,"offset":41,')
    s.command(f"DROP DATABASE {s.database}")


def test_a_read_only_server_store_refuses_writes_and_asks_readonly(loopback):
    db = f"cc_ro_{os.getpid()}"
    ClickHouseStore(f"{loopback.url}/{db}")  # creates the database
    ro = ClickHouseStore(f"{loopback.url}/{db}", read_only=True)
    with pytest.raises(StoreError, match="read-only"):
        ro.insert("messages", [MESSAGE])
    before = len(loopback.requests)
    assert ro.query("SELECT 1").scalar() == 1
    assert loopback.requests[before].settings["readonly"] == "2"


def test_an_unreachable_server_is_store_unavailable(loopback):
    from sagascope.embedded import free_port
    from sagascope.store import StoreUnavailable

    with pytest.raises(StoreUnavailable, match="cannot reach ClickHouse"):
        ClickHouseStore(f"http://default:@127.0.0.1:{free_port()}/x?connect_timeout=1")


def test_a_bad_url_names_the_problem():
    with pytest.raises(StoreError, match="scheme"):
        ClickHouseStore("ftp://host/db")
