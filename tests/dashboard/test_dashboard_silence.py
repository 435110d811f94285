"""A group silenced on the Alerts page is not notified by the alerter; the other groups are.

The silence is set as a user sets it (open the group's row link, press "Silence") on the real
page, written to the store through the dashboard's one write; the real alerter then evaluates
the same store and notifies a recording sink.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from alert_sinks import RecordingSink
from page_tables import html_tables
from seeding import SagaScript, order_saga, seed

from sagascope.alerter import Alerter
from sagascope.queries import SagaQueries
from sagascope.settings import AlertSettings, Settings

THRESHOLD_S = 60.0


def _stalled_shipment(saga_id: str, start: datetime) -> SagaScript:
    saga = SagaScript(saga_id, "shipment", start=start)
    saga.command("ShipOrder", "shop", step="ShipOrder", after_s=0)
    saga.command("ChargePayment", "shipping", step="ChargePayment")
    return saga


def test_a_group_silenced_on_the_page_is_not_notified(empty_store: Any, open_page: Any) -> None:
    store = empty_store
    now = datetime.now(UTC)
    seed(store, order_saga("order-stuck-1", "stalled", start=now - timedelta(hours=1)),
         _stalled_shipment("ship-stuck-1", now - timedelta(hours=1)))
    alert_settings = AlertSettings(default_threshold_s=THRESHOLD_S)
    sink = RecordingSink()
    alerter = Alerter(store, SagaQueries.from_settings(store, alert_settings), alert_settings,
                      [sink], "http://dashboard.test")
    first = alerter.evaluate_once()
    assert sorted(a.saga_id for a in first.opened) == ["order-stuck-1", "ship-stuck-1"]
    assert len(sink.sent) == 2

    # On call, silence the order group for an hour, as a user does on the page.
    settings = Settings(alerts=alert_settings)
    at = open_page("alerts", store, settings, range="all")
    groups = next(f for f in html_tables(at) if "handled by" in f.columns)
    link = next(r["link"] for r in groups.to_dict("records")
                if r["saga type"] == "order-fulfillment")
    query = dict(parse_qsl(urlsplit(link).query))
    at = open_page("alerts", store, settings, **query)
    at.text_input(key="ack_by").input("dana")
    at.selectbox(key="silence_for").select("1 hour")
    at.button(key="silence_button").click().run()
    assert not at.exception, [e.value for e in at.exception]
    # The group left the open ones for the silenced ones, with who silenced it until when.
    at = open_page("alerts", store, settings, range="all", show="silenced")
    (silenced,) = next(f for f in html_tables(at) if "handled by" in f.columns).to_dict("records")
    assert (silenced["saga type"], silenced["status"]) == ("order-fulfillment", "◌ silenced")
    assert silenced["handled by"].startswith("dana at ") and ", until " in silenced["handled by"]

    # Both groups get a new stalled saga: only the one not silenced is notified.
    sent_before = len(sink.sent)
    seed(store, order_saga("order-stuck-2", "stalled", start=now - timedelta(minutes=30)),
         _stalled_shipment("ship-stuck-2", now - timedelta(minutes=30)))
    second = alerter.evaluate_once()
    assert sorted(a.saga_id for a in second.opened) == ["order-stuck-2", "ship-stuck-2"]
    assert second.silenced == 1
    assert [a.saga_id for a in sink.sent[sent_before:]] == ["ship-stuck-2"]
