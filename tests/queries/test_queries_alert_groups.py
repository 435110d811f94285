"""Alert groups on a real chDB store: what a group waits for, its state, its handling, history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from alert_rows import STOCK, alert_row

from sagascope.queries import (
    AlertCounts,
    acknowledge,
    acknowledgement_history,
    acknowledgements,
    alert_groups,
    list_alerts,
)


def _groups(store: Any, now: datetime, **kwargs: Any) -> dict[tuple[str, str], Any]:
    return {(g.saga_type, g.step): g for g in alert_groups(store, now=now, **kwargs)}


def test_a_group_counts_what_its_open_alerts_wait_for_per_message_type(
        store: Any, now: datetime) -> None:
    store.insert("alerts", [
        *(alert_row(f"p{i}", now=now) for i in range(5)),
        # The same message after another last message: counted with the others.
        *(alert_row(f"q{i}", now=now, waiting_for="PaymentReceived") for i in range(2)),
        *(alert_row(f"s{i}", now=now, waiting_for=STOCK) for i in range(2)),
        alert_row("c1", now=now, waiting_for="reply to ChargeCard"),
        alert_row("r1", now=now, state="resolved", waiting_for="Shipped", resolved_ago_s=60),
    ])
    (group,) = alert_groups(store, now=now)
    assert group.waiting_for == (
        ("PaymentReceived", 7), ("StockReserved", 2), ("reply to ChargeCard", 1))
    assert group.waiting_text == "PaymentReceived ×7, StockReserved ×2, reply to ChargeCard ×1"
    assert (group.open, group.resolved) == (10, 1)


def test_a_resolved_group_says_what_its_alerts_waited_for(store: Any, now: datetime) -> None:
    store.insert("alerts", [
        alert_row("r1", now=now, state="resolved", resolved_ago_s=60),
        alert_row("r2", now=now, state="resolved", waiting_for="", resolved_ago_s=30),
    ])
    (group,) = alert_groups(store, now=now)
    assert group.state == "resolved"
    assert group.waiting_text == "PaymentReceived ×1, unknown ×1"
    assert group.example_saga_id == "saga-r2"  # the one resolved last


def test_a_silenced_group_is_apart_and_not_counted_as_open(store: Any, now: datetime) -> None:
    store.insert("alerts", [
        *(alert_row(f"p{i}", now=now) for i in range(3)),
        *(alert_row(f"s{i}", now=now, step="stock", waiting_for=STOCK) for i in range(2)),
    ])
    silence = acknowledge(store, "orders", "stock", action="silenced", by="dana",
                          until=now + timedelta(hours=1), note="supplier outage", now=now)
    groups = _groups(store, now)
    silenced = groups[("orders", "stock")]
    assert (silenced.state, silenced.handled_by, silenced.note, silenced.silenced_until) == (
        "silenced", "dana", "supplier outage", silence.until)
    assert groups[("orders", "payment")].state == "open"
    assert AlertCounts.of(list(groups.values())) == AlertCounts(open=3, acknowledged=0,
                                                                silenced=2, resolved=0)


def test_a_silence_that_has_ended_leaves_the_group_open(store: Any, now: datetime) -> None:
    store.insert("alerts", [alert_row("p1", now=now)])
    acknowledge(store, "orders", "payment", action="silenced", by="dana",
                until=now - timedelta(minutes=1), now=now - timedelta(minutes=5))
    (group,) = alert_groups(store, now=now)
    assert (group.state, group.handled_by) == ("open", "")
    assert AlertCounts.of([group]).open == 1


def test_an_acknowledged_group_says_who_and_when_and_stays_open(store: Any,
                                                                 now: datetime) -> None:
    store.insert("alerts", [alert_row("p1", now=now), alert_row("p2", now=now)])
    ack = acknowledge(store, "orders", "payment", action="acknowledged", by="sam", now=now)
    (group,) = alert_groups(store, now=now)
    assert (group.state, group.handled_action, group.handled_by, group.handled_at) == (
        "acknowledged", "acknowledged", "sam", ack.at)
    assert AlertCounts.of([group]) == AlertCounts(open=2, acknowledged=2, silenced=0, resolved=0)


def test_an_acknowledgement_of_an_earlier_episode_does_not_hide_new_alerts(
        store: Any, now: datetime) -> None:
    # Acknowledged an hour ago; those alerts resolved; this one opened ten minutes ago.
    acknowledge(store, "orders", "payment", action="acknowledged", by="sam",
                now=now - timedelta(hours=1))
    store.insert("alerts", [
        alert_row("old", now=now, state="resolved", opened_ago_s=4000, resolved_ago_s=1800),
        alert_row("new", now=now, opened_ago_s=600),
    ])
    (group,) = alert_groups(store, now=now)
    assert (group.state, group.handled_by) == ("open", "")


def test_clearing_ends_the_handling(store: Any, now: datetime) -> None:
    store.insert("alerts", [alert_row("p1", now=now)])
    acknowledge(store, "orders", "payment", action="acknowledged", by="sam",
                now=now - timedelta(seconds=2))
    acknowledge(store, "orders", "payment", action="cleared", by="sam",
                now=now - timedelta(seconds=1))
    (group,) = alert_groups(store, now=now)
    assert group.state == "open"


def test_groups_come_open_then_acknowledged_then_silenced_then_recently_resolved(
        store: Any, now: datetime) -> None:
    store.insert("alerts", [
        alert_row("a1", now=now, step="acked"),
        alert_row("s1", now=now, step="silenced"),
        alert_row("o1", now=now, step="open-one"),
        alert_row("o2", now=now, step="open-two"), alert_row("o3", now=now, step="open-two"),
        alert_row("r1", now=now, step="resolved-long-ago", state="resolved", resolved_ago_s=900),
        alert_row("r2", now=now, step="resolved-lately", state="resolved", resolved_ago_s=60),
    ])
    acknowledge(store, "orders", "acked", action="acknowledged", by="sam", now=now)
    acknowledge(store, "orders", "silenced", action="silenced", by="sam",
                until=now + timedelta(hours=1), now=now)
    order = [(g.state, g.step) for g in alert_groups(store, now=now)]
    assert order == [
        ("open", "open-two"), ("open", "open-one"), ("acknowledged", "acked"),
        ("silenced", "silenced"), ("resolved", "resolved-lately"),
        ("resolved", "resolved-long-ago"),
    ]


def test_open_alerts_count_whenever_they_opened_resolved_ones_only_in_the_range(
        store: Any, now: datetime) -> None:
    store.insert("alerts", [
        alert_row("open-for-days", now=now, opened_ago_s=3 * 86400),
        alert_row("resolved-lately", now=now, state="resolved", resolved_ago_s=60),
        alert_row("resolved-yesterday", now=now, state="resolved", opened_ago_s=90000,
               resolved_ago_s=86400),
    ])
    (group,) = alert_groups(store, now=now, since=now - timedelta(hours=1))
    assert (group.open, group.resolved) == (1, 1)


def test_the_history_keeps_every_action_newest_first_with_its_note(store: Any,
                                                                     now: datetime) -> None:
    acknowledge(store, "orders", "payment", action="silenced", by="dana",
                until=now + timedelta(hours=4), note="PSP maintenance",
                now=now - timedelta(minutes=30))
    acknowledge(store, "orders", "payment", action="acknowledged", by="sam",
                note="taking it", now=now - timedelta(minutes=10))
    acknowledge(store, "orders", "stock", action="acknowledged", by="kim",
                now=now - timedelta(minutes=20))
    history = acknowledgement_history(store)
    assert [(a.by, a.action, a.note) for a in history] == [
        ("sam", "acknowledged", "taking it"), ("kim", "acknowledged", ""),
        ("dana", "silenced", "PSP maintenance")]
    assert [a.by for a in acknowledgement_history(store, since=now - timedelta(minutes=15))] \
        == ["sam"]


def test_the_latest_action_wins_even_when_it_has_no_end(store: Any, now: datetime) -> None:
    acknowledge(store, "orders", "payment", action="silenced", by="dana",
                until=now + timedelta(hours=4), now=now - timedelta(minutes=30))
    acknowledge(store, "orders", "payment", action="acknowledged", by="sam",
                now=now - timedelta(minutes=10))
    latest = acknowledgements(store)[("orders", "payment")]
    assert (latest.action, latest.by, latest.until) == ("acknowledged", "sam", None)


def test_resolved_alerts_are_listed_most_recently_resolved_first(store: Any,
                                                                 now: datetime) -> None:
    store.insert("alerts", [
        alert_row("opened-last-resolved-first", now=now, state="resolved", opened_ago_s=600,
               resolved_ago_s=500),
        alert_row("opened-first-resolved-last", now=now, state="resolved", opened_ago_s=3000,
               resolved_ago_s=30),
    ])
    assert [a.alert_id for a in list_alerts(store, state="resolved")] == [
        "opened-first-resolved-last", "opened-last-resolved-first"]
