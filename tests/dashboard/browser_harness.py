"""What the browser tests and ``bench/bench_browser.py`` share (the bench puts this folder on
its path): when a page counts as idle, and the dashboard served from a child process until its
parent closes its stdin."""

from __future__ import annotations

import re
import sys
from typing import Any

from sagascope.settings import Settings
from sagascope.store import Store

#: Debian's Chromium (never ``playwright install``), headless.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: True once the page is idle: Streamlit's script finished and connected, its running
#: indicator gone, nothing stale or still loading, every chart and grid drawn, ``text`` shown.
IDLE_JS = """
(text) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
  if (app.getAttribute('data-test-connection-state') !== 'CONNECTED') return false;
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]')) return false;
  const main = document.querySelector('[data-testid="stMain"]') || document.body;
  if (!main.innerText.includes(text)) return false;
  // Only what is on the page to see: a collapsed expander or hidden tab draws nothing.
  const shown = (selector) => [...main.querySelectorAll(selector)]
    .filter(e => !e.closest('details:not([open])') && e.getClientRects().length > 0);
  for (const c of shown('[data-testid="stPlotlyChart"]'))
    if (!c.querySelector('.main-svg')) return false;
  for (const c of shown('[data-testid="stVegaLiteChart"]'))
    if (!c.querySelector('canvas, svg')) return false;
  for (const g of shown('[data-testid="stDataFrame"]'))
    if (!g.querySelector('canvas')) return false;
  for (const g of shown('[data-testid="stGraphVizChart"]'))
    if (!g.querySelector('svg')) return false;
  return true;
}
"""


def tile_value(page: Any, label: str) -> int:
    """The number a tile (``tiles.tiles``) labelled ``label`` shows."""
    tile = page.locator(".sg-tile", has=page.locator(".sg-tile-label", has_text=label)).first
    return int(re.sub(r"\D", "", tile.locator(".sg-tile-value").inner_text()))


def wait_idle(page: Any, text: str, timeout_ms: int = 60000) -> None:
    """Wait until the page is idle (``IDLE_JS``) and shows ``text``, looked at on every
    animation frame."""
    page.wait_for_function(IDLE_JS, arg=text, polling="raf", timeout=timeout_ms)


def serve_until_stdin_closes(store: Store, settings: Settings) -> None:
    """Serve the dashboard over ``store`` on a free port, print ``URL <url>`` for the parent,
    and stop when the parent closes this process's stdin."""
    from sagascope.dashboard import serve

    handle = serve(settings, store, port=0, block=False)
    print(f"URL {handle.url}", flush=True)
    sys.stdin.read()
    handle.stop()
