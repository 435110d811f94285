"""Every user-facing lookup returns exactly the saga its text names, whatever characters it holds.

Text parameters are bound in one place (``sagascope.store.params``); chDB reads scalar values
in ClickHouse's escaped text format, so an unescaped ``\\'`` lost its backslash (and found a
different saga), ``\\N`` read as empty and a newline was refused. Checked on both backends:
embedded chDB and clickhouse-connect against the loopback ClickHouse-speaking server.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from seeding import message_row

from sagascope.queries import SagaFilter, SagaQueries
from sagascope.store import ClickHouseStore, Store, ensure_schema
from tests.collector.chdb_http import ChdbHttpServer

_db_counter = itertools.count()

#: Characters that broke, or could break, a text parameter on its way into a query.
_TRICKY = "\\'\"`\n\t\r\0\x01\x1b\x7f{}:%_[]()=,;#-*/ N\u2028\u00e9\u4e2d\U0001f600"

_texts = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(alphabet=_TRICKY, min_size=1, max_size=40),
    st.sampled_from(["\\'", "\\N", "a\\'b", "x\ny", "\t", "{saga:String}", "' OR 1=1 --", "\\"]),
    # 10 KB texts: a tricky run repeated (Hypothesis draws at most a few KB at once).
    st.builds(
        lambda run, size: (run * (size // len(run) + 1))[:size],
        st.text(alphabet=_TRICKY + "ab", min_size=1, max_size=64), st.integers(10_000, 10_240),
    ),
).filter(lambda text: text.strip() != "")


@pytest.fixture(scope="module")
def loopback(chdb_path: str) -> Iterator[ChdbHttpServer]:
    with ChdbHttpServer(chdb_path) as server:
        yield server


@pytest.fixture(params=["chdb", "server-loopback"])
def backend(request: pytest.FixtureRequest, store: Store, loopback: ChdbHttpServer) -> Iterator[Store]:
    if request.param == "chdb":
        yield store
        return
    server_store = ClickHouseStore(f"{loopback.url}/exact_{os.getpid()}_{next(_db_counter)}")
    ensure_schema(server_store)
    yield server_store
    server_store.command(f"DROP DATABASE IF EXISTS {server_store.database}")
    server_store.close()


def _saga_rows(saga_id: str, saga_type: str, message_id: str, trace_id: str, customer: str,
               start: datetime) -> list[dict[str, Any]]:
    return [
        message_row(
            saga_id=saga_id, saga_type=saga_type, type="OrderPlaced", source="orders",
            event_time=start, message_id=message_id, trace_id=trace_id,
            payload={"customer": customer}, topic="exact",
        ),
        message_row(
            saga_id=saga_id, saga_type=saga_type, type="OrderCompleted", source="orders",
            event_time=start + timedelta(seconds=1), saga_status="completed",
            causation_id=message_id, trace_id=trace_id, topic="exact",
        ),
    ]


def _decoy(text: str, texts: tuple[str, ...]) -> str:
    """What a misreading binding turns the text into (backslashes dropped, blanks trimmed), but
    never one of the real saga's texts: a decoy saga id equal to the real message id would
    rightly win that lookup."""
    decoy = text.replace("\\", "").strip() or text + "-decoy"
    while decoy == text or decoy in texts:
        decoy += "\\"
    return decoy


@settings(
    max_examples=int(os.environ.get("SAGASCOPE_EXACT_EXAMPLES", "25")), deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)
@given(saga_id=_texts, saga_type=_texts, message_id=_texts, trace_id=_texts, customer=_texts)
def test_every_lookup_returns_exactly_the_saga_its_text_names(
    backend: Store, saga_id: str, saga_type: str, message_id: str, trace_id: str, customer: str
) -> None:
    for table in ("messages", "saga_state"):
        backend.command(f"TRUNCATE TABLE IF EXISTS {table}")
    start = datetime(2025, 3, 1, tzinfo=UTC)
    rows = _saga_rows(saga_id, saga_type, message_id, trace_id, customer, start)
    texts = (saga_id, saga_type, message_id, trace_id, customer)
    decoys = tuple(_decoy(t, texts) for t in texts)
    decoy_id = decoys[0]
    rows += _saga_rows(*decoys, start + timedelta(minutes=1))
    backend.insert("messages", rows)
    queries = SagaQueries(backend)

    for key, matched_by in ((saga_id, "saga_id"), (message_id, "message_id"), (trace_id, "trace_id")):
        if key in (saga_id, message_id, trace_id)[: ("saga_id", "message_id", "trace_id").index(matched_by)]:
            continue  # an earlier id with the same text wins, as documented
        flow = queries.flow(key)  # what the dashboard's search and `sagascope flow` call
        assert flow.saga_id == saga_id, (matched_by, key)
        assert flow.matched_by == matched_by
        assert {m.saga_id for m in flow.messages} == {saga_id}
        assert len(flow.messages) == 2
        assert json.loads(flow.messages[0].payload) == {"customer": customer}

    assert [s.saga_id for s in queries.sagas(SagaFilter(saga_type=saga_type))] == [saga_id]
    assert [
        s.saga_id for s in queries.sagas(SagaFilter(saga_type=saga_type, status="completed"))
    ] == [saga_id]
    assert [s.saga_id for s in queries.sagas(SagaFilter(attribute=("customer", customer)))] == [saga_id]
    assert queries.summaries([saga_id]).keys() == {saga_id}
    assert decoy_id != saga_id and queries.flow(decoy_id).saga_id == decoy_id

