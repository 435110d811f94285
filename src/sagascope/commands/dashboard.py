"""``sagascope dashboard``: serve the Streamlit dashboard over the store (read-only)."""

from __future__ import annotations

import argparse
import logging

from sagascope.commands._flags import setting_flag
from sagascope.settings import Settings

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    setting_flag(parser, "--host", setting="dashboard.host", metavar="HOST",
                 help="address to listen on, default 127.0.0.1")
    setting_flag(parser, "--port", setting="dashboard.port", type=int, metavar="PORT",
                 help="port to listen on, default 8501; 0 picks a free one")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.dashboard.server import serve
    from sagascope.store import StoreThroughOwner, open_store_from_settings

    cfg = settings.store
    # Open the store now, so a wrong URL or a chDB directory held by another process fails
    # at start-up with its message rather than on the first page view.
    store = open_store_from_settings(cfg, read_only=True)
    if isinstance(store, StoreThroughOwner):
        # Through the owner with its alerts token: the pages read, acknowledgements write.
        owner = store.owner
        store.close()
        store = StoreThroughOwner(owner, cfg.database, read_only=False)
        print(f"sagascope dashboard: reading the store through its owner, {owner.describe()}",
              flush=True)
    handle = serve(settings, store, block=False)
    print(f"sagascope dashboard: {handle.url}", flush=True)
    handle.wait()
    return 0
