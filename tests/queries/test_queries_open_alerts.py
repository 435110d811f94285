"""What the alerter reads of open alerts on a real chDB store: their sagas and silences, and
whole alerts of given sagas only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alert_rows import alert_row

from sagascope.queries import list_alerts, open_alert_since
from sagascope.store.timetext import epoch_ms


def test_open_alert_since_maps_each_open_alerts_saga_to_its_silence_in_epoch_ms(
        store: Any, now: datetime) -> None:
    rows = [alert_row("a", now=now), alert_row("b", now=now, opened_ago_s=60),
            alert_row("r", now=now, state="resolved", resolved_ago_s=30)]
    store.insert("alerts", rows)
    assert open_alert_since(store) == {
        "saga-a": epoch_ms(rows[0]["since"]), "saga-b": epoch_ms(rows[1]["since"])}


def test_list_alerts_of_given_sagas_leaves_the_others_out(store: Any, now: datetime) -> None:
    store.insert("alerts", [alert_row(name, now=now) for name in ("a", "b", "c")])
    assert {a.saga_id for a in list_alerts(store, saga_ids=["saga-a", "saga-c"])} == {
        "saga-a", "saga-c"}
    assert list_alerts(store, saga_ids=[]) == []
