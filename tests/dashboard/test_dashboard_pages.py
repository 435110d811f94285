"""Every page rendered by AppTest over a seeded chDB store: the expected numbers and rows show."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pandas as pd
from streamlit.testing.v1 import AppTest

TRIP_FLOW = "trip-booking"
Seeded = Any  # tests/dashboard/conftest.py: Seeded(store, now, ids, skewed_types, message_id)


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


#: A column that identifies each table of the pages.
_TABLE_COLUMNS = {
    "audit_trail": "caused by",
    "stuck_table": "stuck after",
    "failures_table": "example",
    "compensations_table": "step undone",
    "variants_table": "path",
    "transitions_table": "from",
    "open_alerts": "opened",
}


def table(at: AppTest, name: str) -> pd.DataFrame:
    """The page's table ``name`` (found by a column only it has)."""
    frames = [f.value for f in at.dataframe]
    if name == "resolved_alerts":
        found = [f for f in frames if "resolution" in f.columns]
    else:
        found = [f for f in frames if _TABLE_COLUMNS[name] in f.columns]
    if not found:
        raise AssertionError(f"no table {name!r} on the page")
    return found[0]


def texts(at: AppTest) -> str:
    parts: list[Any] = [m.value for m in at.markdown]
    for kind in (at.info, at.warning, at.success, at.error, at.caption):
        parts.extend(e.value for e in kind)
    return "\n".join(str(p) for p in parts)


# ---- Overview ---------------------------------------------------------------------------


def test_overview_counts_sagas_by_status(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store)
    shown = metrics(at)
    assert shown["Sagas"] == "8"
    assert shown["Running"] == "1"
    assert shown["Stalled"] == "1"
    assert shown["Completed"] == "3"  # order-completed, order-skewed, trip-1
    assert shown["Failed or undone"] == "3"
    # failed + compensating + compensated (3) among sagas with an outcome (6)
    assert shown["Failure rate"] == "50.0%"


def test_overview_shows_cycle_times_per_saga_type(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store)
    stats = at.dataframe[0].value
    by_type = dict(zip(stats["saga type"], stats["finished"], strict=True))
    assert by_type == {"all types": 5, "order-fulfillment": 4, TRIP_FLOW: 1}
    trip = stats[stats["saga type"] == TRIP_FLOW].iloc[0]
    assert trip["p50"] == "4.00 s"  # BookFlight -> FlightBooked 3 s -> TripConfirmed 1 s


def test_saga_type_filter_narrows_every_number(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store)
    at.selectbox(key="saga_type").select(TRIP_FLOW).run()
    shown = metrics(at)
    assert shown["Sagas"] == "1"
    assert shown["Completed"] == "1"


def test_time_range_filter_excludes_old_sagas(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store)
    at.selectbox(key="time_range").select("Last 15 minutes").run()
    # Ranges end at the newest data: only the running and compensating sagas (seconds old)
    # and the trip (started 15 min before the seeding, its first message a second later).
    assert metrics(at)["Sagas"] == "3"


# ---- Flow explorer ----------------------------------------------------------------------


def test_deep_link_opens_the_saga_in_causal_order(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga="order-skewed")
    assert at.text_input(key="flow_key").value == "order-skewed"
    audit = table(at, "audit_trail")
    # StockReserved's clock runs 30 s behind, yet it shows after ReserveStock, its cause.
    assert list(audit["type"]) == seeded.skewed_types
    assert list(audit["#"]) == list(range(1, len(seeded.skewed_types) + 1))
    assert "completed" in texts(at)


def test_search_by_order_id_shows_flow_and_sets_the_link(seeded: Seeded,
                                                         open_page: Any) -> None:
    at = open_page("flow", seeded.store)
    assert "Search an order" in texts(at)
    at.text_input(key="flow_key").input(seeded.ids["compensated"])
    at.button[0].click().run()
    assert not at.exception
    assert at.query_params["saga"] in (seeded.ids["compensated"], [seeded.ids["compensated"]])
    audit = table(at, "audit_trail")
    assert list(audit["type"])[:2] == ["OrderPlaced", "ReserveStock"]
    assert list(audit["type"])[-1] == "StockReleased"
    assert audit["headers"].str.contains("ce_sagaid").all()
    # The compensation pairing of this saga: payment and reserve-stock undone.
    pairs = at.dataframe[0].value
    assert set(pairs["undoes step"]) == {"payment", "reserve-stock"}


def test_search_by_message_id_finds_its_saga(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga=seeded.message_id)
    assert "found by message id" in texts(at)
    assert len(table(at, "audit_trail")) == 11


def test_unknown_id_gives_a_friendly_message(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga="order-does-not-exist")
    assert at.warning[0].value.startswith("No saga, trace or message matches")
    assert not at.dataframe


def test_sql_looking_input_is_only_a_search_string(seeded: Seeded, open_page: Any) -> None:
    before = seeded.store.query("SELECT count() FROM messages").scalar()
    at = open_page("flow", seeded.store, saga="x' OR 1=1; DROP TABLE messages; --")
    assert "No saga, trace or message matches" in at.warning[0].value
    assert seeded.store.query("SELECT count() FROM messages").scalar() == before


# ---- Stuck sagas ------------------------------------------------------------------------


def test_stuck_sagas_lists_the_stalled_saga_with_its_step(seeded: Seeded,
                                                           open_page: Any) -> None:
    at = open_page("stuck", seeded.store)
    assert metrics(at)["Stuck sagas"] == "1"
    stuck = table(at, "stuck_table")
    row = stuck.iloc[0]
    assert row["saga"] == "/flow_explorer?saga=order-stalled"
    assert row["stuck after"] == "payment"
    assert row["last message"] == "RetrievePayment"
    assert "RetrievePayment" in row["waiting for"]
    assert row["threshold"] == "5 min 00 s"
    assert row["silent"].startswith(("59 min", "1 h"))


# ---- Failures & compensations -----------------------------------------------------------


def test_failures_by_step_service_and_error(seeded: Seeded, open_page: Any) -> None:
    at = open_page("failures", seeded.store)
    assert metrics(at)["Failure messages"] == "3"
    failures = table(at, "failures_table")
    errors = dict(zip(failures["error"], failures["count"], strict=True))
    assert errors == {"address unknown": 2, "card declined": 1}
    assert set(failures["service"]) == {"payment", "shipping"}


def test_compensation_pairing_flags_missing_undos(seeded: Seeded, open_page: Any) -> None:
    at = open_page("failures", seeded.store)
    pairs = table(at, "compensations_table")
    compensating = pairs[pairs["saga"].str.endswith("order-compensating")]
    # The refund was asked for; the stock reservation was never released.
    assert dict(zip(compensating["step undone"], compensating["state"], strict=True)) == {
        "payment": "ok", "reserve-stock": "missing"}
    done = pairs[pairs["saga"].str.endswith("order-compensated")]
    assert set(done["state"]) == {"ok"}
    assert pairs["state"].iloc[0] == "missing"  # problems first
    assert metrics(at)["Missing undos"] == "1"
    assert metrics(at)["Steps undone"] == "3"


# ---- Process map ------------------------------------------------------------------------


def test_process_map_counts_transitions_and_variants(seeded: Seeded, open_page: Any) -> None:
    at = open_page("process_map", seeded.store)
    assert metrics(at)["Sagas"] == "8"
    variants = table(at, "variants_table")
    assert variants.iloc[0]["sagas"] == 2  # order-completed and order-skewed
    assert variants.iloc[0]["path"].startswith("OrderPlaced → ReserveStock → StockReserved")
    transitions = table(at, "transitions_table")
    first = transitions[(transitions["from"] == "OrderPlaced")
                        & (transitions["to"] == "ReserveStock")]
    assert int(first["count"].iloc[0]) == 7


def test_process_map_by_step(seeded: Seeded, open_page: Any) -> None:
    at = open_page("process_map", seeded.store)
    at.segmented_control(key="process_map_by").set_value("Step").run()
    transitions = table(at, "transitions_table")
    assert "reserve-stock" in set(transitions["from"])


# ---- Alerts -----------------------------------------------------------------------------


def _alert(alert_id: str, state: str, saga_id: str, seeded: Seeded) -> dict[str, Any]:
    since = seeded.now - timedelta(hours=1)
    return {
        "alert_id": alert_id, "state": state, "saga_id": saga_id,
        "saga_type": "order-fulfillment", "step": "payment",
        "waiting_for": "PaymentReceived (reply to RetrievePayment)", "since": since,
        "threshold_s": 300.0, "opened_at": since + timedelta(minutes=5),
        "resolved_at": seeded.now if state == "resolved" else None,
        "resolution": "moved on" if state == "resolved" else "",
        "link": f"http://127.0.0.1:8501/flow_explorer?saga={saga_id}",
        "updated_at": seeded.now,
    }


def test_alerts_lists_open_and_resolved(seeded: Seeded, empty_store: Any,
                                        open_page: Any) -> None:
    empty_store.insert("alerts", [
        _alert("a1", "open", "order-stalled", seeded),
        _alert("a2", "resolved", "order-1", seeded),
    ])
    at = open_page("alerts", empty_store)
    assert metrics(at) == {"Open": "1", "Recently resolved": "1"}
    assert list(table(at, "open_alerts")["saga"]) == ["/flow_explorer?saga=order-stalled"]
    resolved = table(at, "resolved_alerts")
    assert list(resolved["resolution"]) == ["moved on"]


# ---- empty store ------------------------------------------------------------------------


def test_every_page_says_the_store_is_empty(empty_store: Any, open_page: Any) -> None:
    for page in ("overview", "stuck", "failures", "process_map"):
        at = open_page(page, empty_store)
        assert "No saga messages stored yet" in texts(at), page
    at = open_page("flow", empty_store, saga="order-1")
    assert "No saga messages stored yet" in texts(at)
    at = open_page("alerts", empty_store)
    assert "No open alerts" in texts(at)


def test_unreachable_store_is_a_message_not_a_traceback(open_page: Any) -> None:
    from sagascope.embedded import free_port
    from sagascope.settings import Settings, StoreSettings

    down = Settings(store=StoreSettings(url=f"http://127.0.0.1:{free_port()}/sagascope"))
    for page in ("overview", "alerts"):
        at = open_page(page, None, settings=down)
        assert "The store cannot be reached right now" in texts(at), page
