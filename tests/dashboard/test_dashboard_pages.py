"""Every page rendered by AppTest over a seeded chDB store: the expected numbers and rows show."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pandas as pd
from page_tables import form_options, html_forms, html_tables, link_hrefs, tile_links, tile_values
from streamlit.testing.v1 import AppTest

TRIP_FLOW = "trip-booking"
Seeded = Any  # tests/dashboard/conftest.py: Seeded(store, now, ids, skewed_types, message_id)


def metrics(at: AppTest) -> dict[str, str]:
    return tile_values(at)


def sidebar(at: AppTest) -> str:
    """The sidebar's links, as the page drew them."""
    return "\n".join(str(m.value) for m in at.sidebar.markdown)


#: A column that identifies each table of the pages.
_TABLE_COLUMNS = {
    "audit_trail": "caused by",
    "flow_compensations": "undoes step",
    "cycle_times": "finished",
    "stalled_table": "stalled after",
    "saga_list": "current step",
    "steps_table": "stalled now",
    "failures_table": "example",
    "compensations_table": "step undone",
    "variants_table": "path",
    "transitions_table": "from",
    "time_table": "handling p50",
    "slowest_handlings": "waited in Kafka",
}


def table(at: AppTest, name: str) -> pd.DataFrame:
    """The page's table ``name`` (a data grid or a plain table, found by a column only it
    has)."""
    frames = [f.value for f in at.dataframe] + html_tables(at)
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
    assert shown["Failed"] == "1"
    assert shown["Compensated"] == "1"
    # failed + compensating + compensated (3) among sagas with an outcome (6)
    assert shown["Failure rate"] == "50%"


def test_overview_shows_cycle_times_per_saga_type(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store)
    stats = table(at, "cycle_times")
    by_type = dict(zip(stats["saga type"], stats["finished"], strict=True))
    assert by_type == {"all types": 5, "order-fulfillment": 4, TRIP_FLOW: 1}
    trip = stats[stats["saga type"] == TRIP_FLOW].iloc[0]
    assert trip["p50"] == "4.00 s"  # BookFlight -> FlightBooked 3 s -> TripConfirmed 1 s


def test_overview_status_bars_open_the_saga_list(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store, range="all", type="order-fulfillment")
    bars = [m.value for m in at.markdown if "Sagas by status" in str(m.value)]
    assert 'href="sagas?status=failed&amp;type=order-fulfillment&amp;range=all"' in bars[0]


def test_overview_tiles_open_the_saga_list_they_count(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store, range="all", type="order-fulfillment")
    opens = tile_links(at)
    assert opens["Failed"] == "sagas?status=failed&type=order-fulfillment&range=all"
    assert opens["Sagas"] == "sagas?type=order-fulfillment&range=all"
    assert "Failure rate" not in opens  # a share, not a list


def test_saga_type_filter_narrows_every_number(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store, type=TRIP_FLOW)
    shown = metrics(at)
    assert shown["Sagas"] == "1"
    assert shown["Completed"] == "1"


def test_sidebar_links_keep_the_pages_other_parameters(seeded: Seeded, open_page: Any) -> None:
    at = open_page("sagas", seeded.store, status="failed", range="all", sort="saga_id")
    links = sidebar(at)
    assert link_hrefs(links, "Last 15 minutes") == ["?status=failed&range=15m&sort=saga_id"]
    assert link_hrefs(links, TRIP_FLOW) == [f"?status=failed&range=all&sort=saga_id&type={TRIP_FLOW}"]
    # The current choice is marked, not a link; the default range leaves the URL.
    assert link_hrefs(links, "All time") == []
    assert 'aria-current="true">All time<' in links
    assert link_hrefs(links, "Last hour") == ["?status=failed&sort=saga_id"]


def test_the_fixed_range_link_pins_the_window_shown(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store, range="15m")
    (fixed,) = link_hrefs(sidebar(at), "Fixed")
    anchor = seeded.store.query("SELECT max(kafka_time) FROM messages").scalar()
    since = (anchor - timedelta(minutes=15)).strftime("%Y-%m-%d+%H%%3A%M")
    assert f"since={since}" in fixed and "range=fixed" in fixed and "until=" in fixed


def test_the_live_link_pauses_the_refresh(seeded: Seeded, open_page: Any,
                                          monkeypatch: Any) -> None:
    from sagascope.dashboard import chrome

    checks: list[str] = []
    asked = chrome.data_as_of
    monkeypatch.setattr(chrome, "data_as_of", lambda: checks.append("asked") or asked())
    at = open_page("overview", seeded.store, range="all")
    assert link_hrefs(sidebar(at), "Pause live refresh") == ["?range=all&live=0"]
    live_checks = len(checks)
    checks.clear()
    paused = open_page("overview", seeded.store, range="all", live="0")
    assert link_hrefs(sidebar(paused), "Resume live refresh") == ["?range=all"]
    assert "Live refresh paused" in sidebar(paused)
    # Live, the refresh fragment checks the watermark as well as the page's own read (each
    # of the two runs of open_page); paused, only the page reads it.
    assert len(checks) < live_checks


def test_time_range_filter_excludes_old_sagas(seeded: Seeded, open_page: Any) -> None:
    at = open_page("overview", seeded.store, range="15m")
    # Ranges end at the newest data: only the running and compensating sagas (seconds old)
    # and the trip (started 15 min before the seeding, its first message a second later).
    assert metrics(at)["Sagas"] == "3"


# ---- Flow explorer ----------------------------------------------------------------------


def test_deep_link_opens_the_saga_in_causal_order(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga="order-skewed")
    assert html_forms(at)[0]["saga"] == "order-skewed"  # the search box shows it
    audit = table(at, "audit_trail")
    # StockReserved's clock runs 30 s behind, yet it shows after ReserveStock, its cause.
    assert list(audit["type"]) == seeded.skewed_types
    assert list(audit["#"]) == list(range(1, len(seeded.skewed_types) + 1))
    assert "completed" in texts(at)


def test_every_message_opens_in_place_with_its_headers_and_payload(seeded: Seeded,
                                                                   open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga=seeded.ids["compensated"])
    details = next(str(m.value) for m in at.markdown if 'class="sg-messages"' in str(m.value))
    summaries = re.findall(r"<summary>#(\d+) ([^ <]+) ", details)
    audit = table(at, "audit_trail")
    assert [(int(n), kind) for n, kind in summaries] == list(zip(audit["#"], audit["type"],
                                                                  strict=True))
    assert details.count('<b>Headers</b><div class="sg-pre">') == len(audit)
    assert "ce_sagaid" in details and "\n\n" not in details  # one Markdown HTML block
    assert not at.selectbox  # no widget to pick a message


def test_search_by_order_id_shows_flow_and_sets_the_link(seeded: Seeded,
                                                         open_page: Any) -> None:
    at = open_page("flow", seeded.store, range="all")
    assert "Search an order" in texts(at)
    # The search box is a plain form: what a browser sends when the id is typed in it.
    sent = {**html_forms(at)[0], "saga": seeded.ids["compensated"]}
    assert sent == {"range": "all", "saga": seeded.ids["compensated"]}
    at = open_page("flow", seeded.store, **sent)
    assert at.query_params["saga"] in (seeded.ids["compensated"], [seeded.ids["compensated"]])
    audit = table(at, "audit_trail")
    assert list(audit["type"])[:2] == ["OrderPlaced", "ReserveStock"]
    assert list(audit["type"])[-1] == "StockReleased"
    assert audit["headers"].str.contains("ce_sagaid").all()
    # The compensation pairing of this saga: payment and reserve-stock undone.
    pairs = table(at, "flow_compensations")
    assert set(pairs["undoes step"]) == {"payment", "reserve-stock"}
    assert dict(zip(pairs["undo"], pairs["completed by"], strict=True)) == {
        "RefundPayment": "PaymentRefunded", "ReleaseStock": "StockReleased"}
    assert set(pairs["state"]) == {"completed"}


def test_search_by_message_id_finds_its_saga(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga=seeded.message_id)
    assert "found by message id" in texts(at)
    assert len(table(at, "audit_trail")) == 11


def test_search_by_a_full_traceparent_finds_its_trace(seeded: Seeded, open_page: Any) -> None:
    row = seeded.store.query(
        "SELECT trace_id, span_id FROM messages WHERE saga_id = 'order-compensated' LIMIT 1"
    ).rows[0]
    at = open_page("flow", seeded.store, saga=f"00-{row[0]}-{row[1]}-01")
    assert "found by trace id" in texts(at)
    assert len(table(at, "audit_trail")) == 11


def test_a_fixed_range_in_the_link_counts_only_its_window(seeded: Seeded,
                                                         open_page: Any) -> None:
    # Sagas active in the 5 minutes after the 30-minute-old ones began: those three only.
    since = seeded.now - timedelta(minutes=31)
    until = seeded.now - timedelta(minutes=26)
    at = open_page("overview", seeded.store, range="fixed",
                   since=since.strftime("%Y-%m-%d %H:%M:%S"),
                   until=until.strftime("%Y-%m-%d %H:%M:%S"))
    assert metrics(at)["Sagas"] == "3"  # order-completed, -failed, -compensated
    assert at.query_params["since"] == since.strftime("%Y-%m-%d %H:%M:%S")


def test_unknown_id_gives_a_friendly_message(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga="order-does-not-exist")
    assert at.warning[0].value.startswith("No saga, trace or message matches")
    assert not at.dataframe


def test_sql_looking_input_is_only_a_search_string(seeded: Seeded, open_page: Any) -> None:
    before = seeded.store.query("SELECT count() FROM messages").scalar()
    at = open_page("flow", seeded.store, saga="x' OR 1=1; DROP TABLE messages; --")
    assert "No saga, trace or message matches" in at.warning[0].value
    assert seeded.store.query("SELECT count() FROM messages").scalar() == before


# ---- Stalled sagas ----------------------------------------------------------------------


def test_stalled_sagas_lists_the_stalled_saga_with_its_step(seeded: Seeded,
                                                             open_page: Any) -> None:
    at = open_page("stalled", seeded.store)
    assert metrics(at)["Stalled sagas"] == "1"
    row = table(at, "stalled_table").iloc[0]
    assert row["saga"] == "order-stalled"
    assert row["stalled after"] == "payment"
    assert row["last message"] == "RetrievePayment"
    assert "RetrievePayment" in row["waiting for"]
    assert row["threshold"] == "5 min 00 s"
    assert row["silent"].startswith(("59 min", "1 h"))


def test_a_stalled_flow_says_why(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga="order-stalled")
    why = texts(at)
    assert "Stalled after step payment" in why
    assert "reply to RetrievePayment" in why
    assert "alerts.default\\_threshold\\_s" in why or "alerts.default_threshold_s" in why
    assert "5 min 00 s" in why


def test_a_failed_flow_gives_its_failure_reason(seeded: Seeded, open_page: Any) -> None:
    at = open_page("flow", seeded.store, saga="order-failed")
    assert "Failed at step payment" in texts(at)
    assert "card declined" in texts(at)


# ---- Sagas ------------------------------------------------------------------------------


def test_saga_list_filters_by_status_from_the_url(seeded: Seeded, open_page: Any) -> None:
    at = open_page("sagas", seeded.store, status="failed", range="all")
    assert list(table(at, "saga_list")["saga"]) == ["order-failed"]
    assert "**1 sagas** match" in texts(at)


def test_saga_list_filters_by_id_prefix_and_attribute(seeded: Seeded, open_page: Any) -> None:
    at = open_page("sagas", seeded.store, id_prefix="order-compens", range="all")
    assert set(table(at, "saga_list")["saga"]) == {"order-compensated", "order-compensating"}
    # The parameter's name in links made before the filters were a form.
    at = open_page("sagas", seeded.store, prefix="order-compens", range="all")
    assert set(table(at, "saga_list")["saga"]) == {"order-compensated", "order-compensating"}
    assert at.query_params["id_prefix"] in ("order-compens", ["order-compens"])
    at = open_page("sagas", seeded.store, attr="error=card declined", range="all")
    assert list(table(at, "saga_list")["saga"]) == ["order-failed"]


def test_saga_list_rows_open_their_flow_with_the_sidebar_filters(seeded: Seeded,
                                                               open_page: Any) -> None:
    at = open_page("sagas", seeded.store, status="failed", range="all", type="order-fulfillment")
    row = table(at, "saga_list").iloc[0]
    assert row["link"] == "/flow_explorer?saga=order-failed&range=all&type=order-fulfillment"


def test_saga_list_sorts_and_counts_exactly(seeded: Seeded, open_page: Any) -> None:
    at = open_page("sagas", seeded.store, sort="saga_id", order="asc", range="all")
    ids = list(table(at, "saga_list")["saga"])
    assert ids == sorted(ids) and len(ids) == 8
    assert "**8 sagas** match" in texts(at)


def test_saga_list_filters_are_one_form_keeping_the_other_parameters(seeded: Seeded,
                                                                     open_page: Any) -> None:
    at = open_page("sagas", seeded.store, status="failed", sort="saga_id", range="all",
                   cause="x", cause_type="t", cause_step="s", cause_service="v")
    # What "Apply" sends untouched: the chosen filters, the sidebar's range and the failure
    # cause (kept until cleared).
    assert html_forms(at) == [{
        "range": "all", "cause": "x", "cause_type": "t", "cause_step": "s",
        "cause_service": "v", "status": "failed", "at": "", "step": "", "service": "",
        "attr": "", "id_prefix": "", "sort": "saga_id", "order": "desc"}]
    assert form_options(at, "status")[:2] == ["", "running"]
    assert "payment" in form_options(at, "step") and "orders" in form_options(at, "service")
    shown = "\n".join(str(e.value) for e in at.html)
    assert link_hrefs(shown, "Clear filters") == ["?range=all"]
    # No widget: each widget type loads its own scripts on a first visit.
    assert not at.selectbox and not at.text_input and not at.button


def test_saga_list_pages_are_previous_and_next_links() -> None:
    from sagascope.dashboard.views.sagas import _page_links

    current = {"status": "failed", "page": "2"}
    middle = _page_links(current, 2, 3)
    assert link_hrefs(middle, "‹ Previous") == ["?status=failed"]
    assert link_hrefs(middle, "Next ›") == ["?status=failed&page=3"]
    assert _page_links({}, 1, 1) == ""


# ---- Failures & compensations -----------------------------------------------------------


def test_stalled_sagas_step_bars_and_rows_lead_to_the_sagas(seeded: Seeded,
                                                             open_page: Any) -> None:
    at = open_page("stalled", seeded.store, range="all")
    bars = [m.value for m in at.markdown if "Stalled after step" in str(m.value)]
    assert 'href="sagas?status=stalled&amp;at=payment&amp;range=all"' in bars[0]
    row = table(at, "stalled_table").iloc[0]
    assert row["link"] == "/flow_explorer?saga=order-stalled&range=all"


def test_failures_count_sagas_by_their_cause(seeded: Seeded, open_page: Any) -> None:
    at = open_page("failures", seeded.store, range="all")
    assert metrics(at)["Sagas that failed"] == "3"
    causes = table(at, "failures_table")
    assert dict(zip(causes["cause"], causes["sagas"], strict=True)) == {
        "ShippingFailed": 2, "PaymentFailed": 1}
    assert set(causes["reason"]) == {"address unknown", "card declined"}
    # An undo command is a compensation, never a failure cause.
    assert "RefundPayment" not in set(causes["cause"])


def test_compensation_pairing_flags_missing_and_pending_undos(seeded: Seeded,
                                                              open_page: Any) -> None:
    at = open_page("failures", seeded.store, range="all")
    pairs = table(at, "compensations_table")
    compensating = pairs[pairs["saga"] == "order-compensating"]
    # The refund was asked for and never confirmed; the stock reservation never released.
    assert dict(zip(compensating["step undone"], compensating["state"], strict=True)) == {
        "payment": "pending", "reserve-stock": "missing"}
    done = pairs[pairs["saga"] == "order-compensated"]
    assert set(done["state"]) == {"completed"}
    assert metrics(at)["Missing undos"] == "1"
    assert metrics(at)["Undos pending"] == "1"
    assert metrics(at)["Undos completed"] == "2"


# ---- Process map (its own page test: test_dashboard_process_map.py) -----------------


def test_saga_list_filters_by_a_process_map_arrow(seeded: Seeded, open_page: Any) -> None:
    at = open_page("sagas", seeded.store, type="order-fulfillment", range="all",
                   **{"from": "payment", "to": "shipping"})
    assert set(table(at, "saga_list")["saga"]) == {
        "order-completed", "order-skewed", "order-compensating", "order-compensated"}


# ---- empty store ------------------------------------------------------------------------


def test_every_page_says_the_store_is_empty(empty_store: Any, open_page: Any) -> None:
    for page in ("overview", "stalled", "failures", "process_map", "sagas"):
        at = open_page(page, empty_store)
        assert "No saga messages stored yet" in texts(at), page
    at = open_page("flow", empty_store, saga="order-1")
    assert "No saga messages stored yet" in texts(at)
    at = open_page("alerts", empty_store)
    assert "No alerts in this range" in texts(at)


def test_unreachable_store_is_a_message_not_a_traceback(open_page: Any) -> None:
    from sagascope.embedded import free_port
    from sagascope.settings import Settings, StoreSettings

    down = Settings(store=StoreSettings(url=f"http://127.0.0.1:{free_port()}/sagascope"))
    for page in ("overview", "alerts"):
        at = open_page(page, None, settings=down)
        assert "The store cannot be reached right now" in texts(at), page


# ---- Where time goes --------------------------------------------------------------------


def _seed_two_handlings(store: Any) -> None:
    """One order saga whose ReserveStock waited 2 s for inventory, its RetrievePayment 3 s
    for payment; each handled in 250 ms, on traces t0 and t1."""
    from seeding import order_saga, seed

    seed(store, order_saga("o-time", "completed"))
    rows = store.query(
        "SELECT message_id, kafka_time, saga_id FROM messages WHERE type IN "
        "('ReserveStock', 'RetrievePayment') ORDER BY type").dicts()
    spans = []
    for i, row in enumerate(rows):
        start = row["kafka_time"] + timedelta(seconds=2 + i)  # waited 2 s, then 3 s
        spans.append({
            "trace_id": f"t{i}", "span_id": f"s{i}", "parent_span_id": "", "name": "process",
            "kind": "CONSUMER", "service": ("inventory", "payment")[i],
            "start_time": start, "end_time": start + timedelta(milliseconds=250),
            "status_code": "OK", "status_message": "", "saga_id": row["saga_id"],
            "saga_type": "order-fulfillment", "message_id": row["message_id"],
            "attributes": {}, "links": [], "events": "", "ingest_time": start,
            "topic": "telemetry", "partition": 0, "offset": i, "parse_error": "",
            "payload": "",
        })
    store.insert("spans", spans)


def test_where_time_goes_splits_waiting_from_handling(empty_store: Any, open_page: Any) -> None:
    _seed_two_handlings(empty_store)
    at = open_page("time", empty_store, range="all")
    times = table(at, "time_table")
    by_step = {r["service"]: r for r in times.to_dict("records")}
    assert by_step["payment"]["waiting p50"] == "3.00 s"
    assert by_step["inventory"]["waiting p50"] == "2.00 s"
    assert by_step["inventory"]["handling p50"] == "250.0 ms"
    assert metrics(at)["Handler runs"] == "2"
    # Each row opens its slowest handlings on this page, the sidebar's range kept.
    assert by_step["payment"]["link"] == (
        "time_spent?range=all&step_type=order-fulfillment&step=payment&service=payment")


def test_where_time_goes_row_lists_its_slowest_handlings_each_opening_its_trace(
        empty_store: Any, open_page: Any) -> None:
    _seed_two_handlings(empty_store)
    at = open_page("time", empty_store, range="all", step_type="order-fulfillment",
                   step="payment", service="payment")
    assert "Slowest handlings of payment by payment" in texts(at)
    slow = table(at, "slowest_handlings")
    assert list(slow["saga"]) == ["o-time"]
    assert slow["waited in Kafka"].iloc[0] == "3.00 s"
    assert slow["link"].iloc[0] == "/flow_explorer?saga=o-time&trace=t1&range=all"


def test_the_search_looks_up_the_id_as_typed_not_trimmed(seeded: Seeded, open_page: Any) -> None:
    from seeding import order_saga, seed

    # Two sagas whose ids differ only by blanks around them: each finds itself, never the other.
    padded = " order-padded\t"
    seed(seeded.store, order_saga(padded, "completed", start=seeded.now - timedelta(minutes=5)),
         order_saga("order-padded", "failed", start=seeded.now - timedelta(minutes=5)))

    def message_ids(saga_id: str) -> set[str]:
        return set(seeded.store.query(
            "SELECT message_id FROM messages WHERE saga_id = {s:String}", {"s": saga_id}
        ).column("message_id"))

    for key in (padded, "order-padded"):
        at = open_page("flow", seeded.store, saga=key)
        assert html_forms(at)[0]["saga"] == key
        assert set(table(at, "audit_trail")["message id"]) == message_ids(key), repr(key)


def test_a_flow_with_two_traces_picks_one_by_a_link(empty_store: Any, open_page: Any) -> None:
    from seeded_spans import span_rows
    from seeding import SagaScript, seed

    saga = SagaScript("o-traces", "order-fulfillment")
    saga.event("OrderPlaced", "orders", step="place-order", after_s=0)
    saga.command("ReserveStock", "orchestrator", step="reserve-stock")
    saga.event("StockReserved", "inventory", step="reserve-stock")
    # A retry started a new trace: payment's messages are on a second one.
    saga.command("RetrievePayment", "orchestrator", step="payment", new_trace=True)
    saga.event("PaymentReceived", "payment", step="payment")
    seed(empty_store, saga)
    empty_store.insert("spans", span_rows(saga))
    first, second = dict.fromkeys(r["trace_id"] for r in saga.rows)
    at = open_page("flow", empty_store, saga="o-traces", trace=second, range="all")
    shown = "\n".join(str(m.value) for m in at.markdown)
    assert 'aria-label="Trace (2 with spans)"' in shown
    # The other trace is a link keeping the saga and the range; the one shown is marked.
    assert link_hrefs(shown, f"{first[:16]}… (6 spans)") == ["?saga=o-traces&range=all"]
    assert f'aria-current="true">{second[:16]}… (' in shown
    assert f"Trace {second}" in shown and not at.selectbox
