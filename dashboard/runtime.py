"""Where the pages get their store, query layer and settings.

The in-process server (:func:`sagascope.dashboard.server.serve`) calls :func:`configure` with
the settings and, in embedded mode, the store the demo already holds (a chDB directory opens in
one process only, so the dashboard must share it). A dashboard started any other way (``streamlit
run``, a test) opens the store the settings name, read-only, once per process.
"""

from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass

from sagascope.settings import Settings, load_settings
from sagascope.store import Store, open_store_from_settings

log = logging.getLogger(__name__)


def read_only_view(store: Store) -> Store:
    """A read-only handle on the same connection, whatever the backend.

    A shallow copy shares the connection (one chDB session per process); ``read_only`` is the
    ``Store`` attribute every backend honours (``readonly = 2`` on each query, writes refused).
    """
    if store.read_only:
        return store
    view = copy.copy(store)
    view.read_only = True
    return view


@dataclass(frozen=True)
class _Context:
    settings: Settings
    store: Store | None
    writer: Store | None = None


_lock = threading.Lock()
_context: _Context | None = None
#: Stores this process opened itself from the settings, by ``read_only``.
_opened: dict[bool, Store] = {}


def configure(settings: Settings, store: Store | None = None, writer: Store | None = None) -> None:
    """Set what the pages use: the settings and, optionally, a store already open in this
    process (read by the pages) and a writable one (for alert acknowledgements only)."""
    global _context
    with _lock:
        _context = _Context(settings=settings, store=store, writer=writer)
        _opened.clear()


def reset() -> None:
    """Forget the configured context (tests)."""
    global _context
    with _lock:
        _context = None
        _opened.clear()


def settings() -> Settings:
    """The configured settings, else those of ``sagascope.toml`` and ``SAGASCOPE_*``."""
    global _context
    with _lock:
        if _context is None:
            _context = _Context(settings=load_settings(), store=None)
        return _context.settings


def store() -> Store:
    """The configured store, else the settings' store opened read-only once per process."""
    current = settings()
    with _lock:
        if _context is not None and _context.store is not None:
            return _context.store
        return _open_once(current, read_only=True)


def writer() -> Store:
    """A writable store for the dashboard's one write (alert acknowledgements)."""
    current = settings()
    with _lock:
        if _context is not None and _context.writer is not None:
            return _context.writer
        if _context is not None and _context.store is not None and not _context.store.read_only:
            return _context.store
        return _open_once(current, read_only=False)


def _open_once(current: Settings, read_only: bool) -> Store:
    """The store the settings name, opened by this process on first use (under ``_lock``)."""
    if read_only not in _opened:
        log.info("dashboard opening store backend=%s read_only=%s",
                 "server" if current.store.url else "chdb", read_only)
        _opened[read_only] = open_store_from_settings(current.store, read_only=read_only)
    return _opened[read_only]
