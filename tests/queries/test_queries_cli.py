"""``sagascope flow`` and ``sagascope stalled`` on a seeded store."""

from __future__ import annotations

import json
from datetime import timedelta

from seeding import order_saga, seed

from sagascope.cli import main


def _args(store, chdb_path, *args: str) -> list[str]:
    return [*args, "--store-path", chdb_path, "--database", store.database]


def test_flow_prints_the_table_and_status(store, chdb_path, now, capsys):
    seed(store, order_saga("o-cli", "completed", start=now - timedelta(minutes=5),
                           inventory_skew_s=-30))
    assert main(_args(store, chdb_path, "flow", "o-cli")) == 0
    out = capsys.readouterr().out
    assert "saga o-cli" in out and "status=completed" in out
    lines = out.splitlines()
    types = [t for line in lines for t in ("ReserveStock", "StockReserved") if t in line]
    assert types == ["ReserveStock", "StockReserved"]
    assert "clock 29.0s behind cause" in out


def test_flow_json_and_unknown_key(store, chdb_path, now, capsys):
    seed(store, order_saga("o-json", "failed", start=now - timedelta(minutes=5)))
    assert main(_args(store, chdb_path, "flow", "o-json", "--json")) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["status"] == "failed" and len(data["messages"]) == 5
    assert main(_args(store, chdb_path, "flow", "missing")) == 1
    assert "no saga, message or trace" in capsys.readouterr().err


def test_stalled_lists_stalled_sagas(store, chdb_path, now, capsys):
    seed(store, order_saga("o-done", "completed", start=now - timedelta(hours=2)),
         order_saga("o-stuck", "stalled", start=now - timedelta(hours=1)))
    assert main(_args(store, chdb_path, "stalled")) == 0
    out = capsys.readouterr().out
    assert "o-stuck" in out and "o-done" not in out
    assert "PaymentReceived (reply to RetrievePayment)" in out
    assert "1 stalled saga(s)" in out
