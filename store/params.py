"""Binding query parameters: the one place where Python values become ``{name:Type}`` values."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sagascope.store.base import _quote, check_identifier
from sagascope.store.timetext import clickhouse_literal


def server_parameters(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Parameters as clickhouse-connect sends them for ``{name:Type}`` server-side binding."""
    if not params:
        return None
    for key in params:
        check_identifier(key)
    return dict(params)


def chdb_parameters(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Parameters for chDB, which takes scalars as they are but containers as ClickHouse text."""
    # The names are checked as for a server; only the values are written differently.
    checked = server_parameters(params)
    if checked is None:
        return None
    return {key: _chdb_value(value) for key, value in checked.items()}


def _chdb_value(value: Any) -> Any:
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return _literal(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return clickhouse_literal(value)
    if isinstance(value, str):
        return _escaped(value)
    return value


#: ClickHouse's escaped text format, in which chDB reads a scalar ``{name:Type}`` value (as a
#: server reads ``param_<name>``): unescaped, ``\'`` lost its backslash, ``\N`` read as
#: empty, and a newline or tab was refused.
_ESCAPES = str.maketrans({
    "\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\0": "\\0", "\b": "\\b",
    "\f": "\\f", "'": "\\'",
})


def _escaped(value: str) -> str:
    return value.translate(_ESCAPES)


def _literal(value: Any) -> str:
    """A value as a ClickHouse literal (the text form of arrays, maps and their elements)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, datetime):
        return f"'{clickhouse_literal(value)}'"
    if isinstance(value, dict):
        return "{" + ",".join(f"{_literal(k)}:{_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, tuple):
        return "(" + ",".join(_literal(v) for v in value) + ")"
    if isinstance(value, (list, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return "[" + ",".join(_literal(v) for v in items) + "]"
    return f"'{_quote(str(value))}'"
