"""Where the pages get their store, query layer and settings.

The in-process server (:func:`sagascope.dashboard.server.serve`) calls :func:`configure` with
the settings and, in embedded mode, the store the demo already holds (a chDB directory opens in
one process only, so the dashboard must share it). A dashboard started any other way (``streamlit
run``, a test) opens the store the settings name, read-only, once per process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sagascope.store import Store, open_store_from_settings

from sagascope.settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Context:
    settings: Settings
    store: Store | None


_lock = threading.Lock()
_context: _Context | None = None
_opened: Store | None = None


def configure(settings: Settings, store: Store | None = None) -> None:
    """Set what the pages use: the settings and, optionally, a store already open in this process."""
    global _context, _opened
    with _lock:
        _context = _Context(settings=settings, store=store)
        _opened = None


def reset() -> None:
    """Forget the configured context (tests)."""
    global _context, _opened
    with _lock:
        _context = None
        _opened = None


def settings() -> Settings:
    """The configured settings, else those of ``sagascope.toml`` and ``SAGASCOPE_*``."""
    global _context
    with _lock:
        if _context is None:
            _context = _Context(settings=load_settings(), store=None)
        return _context.settings


def store() -> Store:
    """The configured store, else the settings' store opened read-only once per process."""
    global _opened
    current = settings()
    with _lock:
        if _context is not None and _context.store is not None:
            return _context.store
        if _opened is None:
            cfg = current.store
            log.info("dashboard opening store backend=%s", "server" if cfg.url else "chdb")
            _opened = open_store_from_settings(cfg, read_only=True)
        return _opened
