"""``dashboard.hide_payloads``: flows carry no payloads, in the query layer and in the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from seeding import message_row

from sagascope.queries import SagaQueries
from sagascope.queries.saga_queries import HIDDEN_PAYLOAD
from sagascope.store import ChdbStore
from tests.security.clirun import sagascope

CARD = "4111-1111-1111-1111"


def _seed(store: ChdbStore) -> None:
    store.insert("messages", [message_row(
        saga_id="order-card", saga_type="order", type="PaymentRequested", source="payment",
        event_time=datetime(2025, 1, 1, tzinfo=UTC), payload={"card": CARD},
    )])


def test_hidden_payloads_leave_the_flow_but_not_its_sizes(store: ChdbStore) -> None:
    _seed(store)
    shown = SagaQueries(store).flow("order-card").messages[0]
    hidden = SagaQueries(store, hide_payloads=True).flow("order-card").messages[0]
    assert CARD in shown.payload
    assert hidden.payload == HIDDEN_PAYLOAD
    assert hidden.payload_size == shown.payload_size > 0


def test_flow_command_honours_hide_payloads(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    config = tmp_path / "sagascope.toml"
    config.write_text(f'[store]\npath = "{store_path}"\ndatabase = "hide"\n')
    # chDB opens a directory in one process only: a child seeds it, as the collector would.
    script = (
        "import sys; sys.path[:0] = ['tests', '.']\n"
        "from sagascope.store import ChdbStore, ensure_schema\n"
        "from tests.security.test_security_hide_payloads import _seed\n"
        f"s = ChdbStore({str(store_path)!r}, 'hide'); ensure_schema(s); _seed(s)\n"
    )
    repo = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", script], cwd=repo, check=True, timeout=120)
    plain = sagascope(["flow", "order-card", "--json", "--config", str(config)], tmp_path)
    hidden = sagascope(["flow", "order-card", "--json", "--hide-payloads", "--config", str(config)],
                       tmp_path)
    assert plain.returncode == hidden.returncode == 0, plain.stderr + hidden.stderr
    assert CARD in plain.stdout
    assert CARD not in hidden.stdout
    assert json.loads(hidden.stdout)["messages"][0]["payload"] == HIDDEN_PAYLOAD
