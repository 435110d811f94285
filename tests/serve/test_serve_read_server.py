"""The owner's read server speaks ClickHouse's HTTP interface as clickhouse-connect uses it,
for a read-only token (in this process, over the tests' own chDB session)."""

from __future__ import annotations

from collections.abc import Iterator

import clickhouse_connect
import pytest

from sagascope.store import ChdbStore
from sagascope.store.serving import READ_ONLY, ChdbHttpServer

TOKEN = "read-token"


@pytest.fixture
def client(store: ChdbStore) -> Iterator[clickhouse_connect.driver.Client]:
    store.insert("messages", [{"topic": "orders", "partition": 0, "offset": 7, "saga_id": "o-1"}])
    with ChdbHttpServer(store, tokens={TOKEN: READ_ONLY}) as server:
        yield clickhouse_connect.get_client(host="127.0.0.1", port=server.port, username="x",
                                            password=TOKEN, database=store.database)


def test_a_long_parameter_sent_as_a_form_field_binds(
    client: clickhouse_connect.driver.Client,
) -> None:
    long_id = "o-" + "9" * 8000  # over clickhouse-connect's 4 KB: sent as multipart form data
    rows = client.query("SELECT count() FROM messages WHERE saga_id IN ({a:String}, {b:String})",
                        parameters={"a": long_id, "b": "o-1"}).result_rows
    assert rows == [(1,)]


def test_arrow_and_dataframe_reads_answer_in_their_format(
    client: clickhouse_connect.driver.Client,
) -> None:
    table = client.query_arrow("SELECT topic, offset FROM messages")
    assert table.to_pydict() == {"topic": ["orders"], "offset": [7]}
    frame = client.query_df("SELECT saga_id FROM messages")
    assert list(frame["saga_id"]) == ["o-1"]
