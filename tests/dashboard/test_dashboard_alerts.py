"""The Alerts page rendered by AppTest over a real chDB store: groups with their state and
handling first, silenced groups apart and not counted as open, what a group waits for, resolved
ones, the history of acknowledgements and silences, and handling a group from its row's link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from alert_rows import STOCK, order_alert
from page_tables import html_tables, tile_values
from streamlit.testing.v1 import AppTest

from sagascope.queries import acknowledge


def _metrics(at: AppTest) -> dict[str, str]:
    return tile_values(at)


def _table(at: AppTest, column: str) -> pd.DataFrame:
    """The first table on the page with this column."""
    found = [f for f in html_tables(at) if column in f.columns]
    assert found, f"no table with a {column!r} column"
    return found[0]


def _groups(at: AppTest) -> pd.DataFrame:
    return _table(at, "handled by")


def _storm(store: Any, now: datetime) -> None:
    """Payment: 7 + 2 open alerts waiting for two messages; stock: 3 open; shipping: resolved."""
    store.insert("alerts", [
        *(order_alert(f"pay-{i}", now=now) for i in range(7)),
        *(order_alert(f"pay-stock-{i}", now=now, waiting_for=STOCK) for i in range(2)),
        *(order_alert(f"stock-{i}", now=now, step="stock", waiting_for=STOCK) for i in range(3)),
        order_alert("ship-old", now=now, step="shipping", state="resolved", resolved_ago_s=1200),
        order_alert("bill-new", now=now, step="billing", state="resolved", resolved_ago_s=60),
    ])


def test_a_group_row_starts_with_its_state_and_who_handles_it(empty_store: Any,
                                                             open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    acknowledge(empty_store, "order-fulfillment", "stock", action="acknowledged", by="sam")
    at = open_page("alerts", empty_store, range="all")
    groups = _groups(at)
    assert list(groups.columns[:2]) == ["status", "handled by"]
    stock = groups[groups["step"] == "stock"].iloc[0]
    assert stock["status"] == "◐ acknowledged"
    assert stock["handled by"].startswith("sam at ") and stock["handled by"].endswith(" UTC")
    payment = groups[groups["step"] == "payment"].iloc[0]
    assert (payment["status"], payment["handled by"]) == ("● open", "")


def test_a_group_counts_what_its_alerts_wait_for(empty_store: Any, open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    at = open_page("alerts", empty_store, range="all")
    payment = _groups(at).set_index("step").loc["payment"]
    assert payment["waiting for"] == "PaymentReceived ×7, StockReserved ×2"
    assert payment["open"] == 9


def test_silenced_groups_are_apart_and_not_counted_as_open(empty_store: Any,
                                                           open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    acknowledge(empty_store, "order-fulfillment", "stock", action="silenced", by="dana",
                until=now + timedelta(hours=1))
    at = open_page("alerts", empty_store, range="all")
    shown = _metrics(at)
    assert (shown["Open alerts"], shown["Silenced alerts"], shown["Resolved alerts"]) == (
        "9", "3", "2")
    assert list(_groups(at)["step"]) == ["payment"]
    assert set(_table(at, "saga")["stalled after"]) == {"payment"}

    at = open_page("alerts", empty_store, range="all", show="silenced")
    silenced = _groups(at)
    assert list(silenced["step"]) == ["stock"]
    assert silenced.iloc[0]["status"] == "◌ silenced"
    assert silenced.iloc[0]["handled by"].startswith("dana at ")
    assert ", until " in silenced.iloc[0]["handled by"]
    assert list(_table(at, "saga")["status"]) == ["◌ silenced"] * 3


def test_resolved_groups_come_most_recently_resolved_first(empty_store: Any,
                                                           open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    at = open_page("alerts", empty_store, range="all", show="resolved")
    assert list(_groups(at)["step"]) == ["billing", "shipping"]
    resolved = _table(at, "resolution")
    assert list(resolved["saga"]) == ["order-bill-new", "order-ship-old"]


def _handle(store: Any, open_page: Any, step: str) -> AppTest:
    """Open the handling form of the order group stalled at ``step``, as its row's link does."""
    at = open_page("alerts", store, range="all")
    link = _groups(at).set_index("step").loc[step, "link"]
    assert link == ("alerts?range=all&handle_type=order-fulfillment&handle_step="
                    + step)
    return open_page("alerts", store, range="all", handle_type="order-fulfillment",
                     handle_step=step)


def test_the_list_has_no_widgets_until_a_group_is_handled(empty_store: Any,
                                                         open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    at = open_page("alerts", empty_store, range="all")
    assert not at.text_input and not at.button and not at.dataframe
    at = _handle(empty_store, open_page, "stock")
    assert [t.label for t in at.text_input] == ["Your name", "Note"]
    assert "**order-fulfillment · stock**" in " ".join(m.value for m in at.markdown)


def test_acknowledging_a_group_from_its_row_marks_exactly_that_group(
        empty_store: Any, open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    at = _handle(empty_store, open_page, "payment")
    at.text_input(key="ack_by").input("kim")
    at.text_input(key="ack_note").input("PSP slow, ticket OPS-12")
    at.button(key="ack_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    # Back to the list: the form is gone, the row says who handles the group.
    assert "handle_type" not in at.query_params and not at.text_input
    groups = _groups(at).set_index("step")
    assert groups.loc["payment", "status"] == "◐ acknowledged"
    assert groups.loc["payment", "handled by"].startswith("kim at ")
    assert groups.loc["payment", "note"] == "PSP slow, ticket OPS-12"
    assert (groups.loc["stock", "status"], groups.loc["stock", "handled by"]) == ("● open", "")
    assert _metrics(at)["Acknowledged (of open)"] == "9"
    history = _table(at, "action")
    assert [tuple(r) for r in history[["action", "by", "step", "note"]].to_numpy()] == [
        ("acknowledged", "kim", "payment", "PSP slow, ticket OPS-12")]


def test_an_acknowledgement_needs_a_name(empty_store: Any, open_page: Any) -> None:
    now = datetime.now(UTC)
    _storm(empty_store, now)
    at = _handle(empty_store, open_page, "stock")
    at.button(key="ack_button").click().run()
    assert "needs a name" in " ".join(w.value for w in at.warning)
    assert _groups(at).set_index("step").loc["stock"]["status"] == "● open"


def test_an_open_alert_is_listed_with_its_saga(empty_store: Any, open_page: Any) -> None:
    now = datetime.now(UTC)
    empty_store.insert("alerts", [order_alert("only", now=now)])
    at = open_page("alerts", empty_store, range="all")
    assert list(_table(at, "saga")["saga"]) == ["order-only"]
    assert _metrics(at)["Open alerts"] == "1"


def test_the_page_and_the_cli_count_the_same_alerts(empty_store: Any, open_page: Any,
                                                    chdb_path: str, capsys: Any,
                                                    monkeypatch: Any, tmp_path: Any) -> None:
    from sagascope.cli import main

    monkeypatch.chdir(tmp_path)  # no stray ./sagascope.toml for the CLI
    now = datetime.now(UTC)
    _storm(empty_store, now)
    empty_store.insert("alerts", [order_alert("ship-days-ago", now=now, step="shipping",
                                         state="resolved", resolved_ago_s=30 * 3600)])
    acknowledge(empty_store, "order-fulfillment", "stock", action="silenced", by="dana",
                until=now + timedelta(hours=1))
    acknowledge(empty_store, "order-fulfillment", "payment", action="acknowledged", by="sam")
    at = open_page("alerts", empty_store, range="24h")
    shown = _metrics(at)
    assert main(["alerts", "--hours", "24", "--store-path", chdb_path,
                 "--database", empty_store.database]) == 0
    summary = capsys.readouterr().out.splitlines()[0]
    assert summary == (
        f"{shown['Open alerts']} open ({shown['Acknowledged (of open)']} acknowledged), "
        f"{shown['Silenced alerts']} silenced, {shown['Resolved alerts']} resolved in the last "
        "24 h")
    assert summary == "9 open (9 acknowledged), 3 silenced, 2 resolved in the last 24 h"
