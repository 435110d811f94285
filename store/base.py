"""The store interface, described once, and what both backends share: results decoded
(``store.results``), rows encoded as JSONEachRow, query settings and the read-only guard.

Both backends run the same SQL text with server-side parameters (``{name:Type}``), return
results in the same ``JSONCompact`` output, decoded once, and insert rows as the same
JSONEachRow bytes, so there is one schema, one SQL and one type mapping.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from sagascope.store.exceptions import StoreError
from sagascope.store.results import RESULT_SETTINGS, decode_result

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier; identifiers cannot be parameters."""
    if not _IDENTIFIER.match(name):
        raise StoreError(f"invalid identifier {name!r} (letters, digits and _ only)")
    return name


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query, typed from the result both backends return (``store.results``)."""

    column_names: tuple[str, ...]
    rows: list[tuple[Any, ...]]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.column_names, row, strict=True)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.column_names.index(name)
        return [row[i] for row in self.rows]

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def __len__(self) -> int:
        return len(self.rows)


class StoreReader(Protocol):
    """What the read side (the query layer) asks of a store: SELECTs, nothing else.

    Every :class:`Store` is one, a read-only one included; so is any object with this method.
    """

    @abc.abstractmethod
    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Run a SELECT; ``settings`` are query-level ClickHouse settings (never in ``sql``)."""


class Store(StoreReader, abc.ABC):
    """What every part uses to talk to ClickHouse; the one description of the interface.

    Backends (``ChdbStore``, ``ClickHouseStore``) implement ``_result_query``, ``command``,
    ``insert_encoded`` and ``close``; the rest is shared. Implementations are thread-safe.
    """

    database: str
    #: ``chdb`` or ``server``
    backend: str
    read_only: bool

    def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        *,
        settings: Mapping[str, Any] | None = None,
    ) -> QueryResult:
        """Run a SELECT; ``settings`` are query-level ClickHouse settings (never in ``sql``)."""
        data = self._result_query(sql, params, _query_settings(self.read_only, settings))
        return QueryResult(*decode_result(data))

    @abc.abstractmethod
    def _result_query(
        self, sql: str, params: Mapping[str, Any] | None, settings: Mapping[str, Any]
    ) -> bytes:
        """The result of a SELECT in ``RESULT_FORMAT``, run with exactly these settings."""

    @abc.abstractmethod
    def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER)."""

    @abc.abstractmethod
    def insert_encoded(
        self, table: str, columns: Sequence[str], data: bytes, *, dedup_token: str | None = None
    ) -> None:
        """Insert rows already encoded as JSONEachRow (``encode_rows``) into these columns;
        a row may leave columns out (they get their defaults)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection."""

    def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        dedup_token: str | None = None,
    ) -> int:
        """Insert rows (dicts keyed by column); returns the number of rows sent."""
        if not rows:
            return 0
        self.insert_encoded(table, list(rows[0]), encode_rows(rows), dedup_token=dedup_token)
        return len(rows)

    def _check_writable(self) -> None:
        if self.read_only:
            raise StoreError("read-only store")


def encode_rows(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Rows as JSONEachRow bytes, the one insert encoding of both backends."""
    if _orjson is None:
        return b"".join(_encode_row_stdlib(row) for row in rows)
    dumps, option = _orjson.dumps, _ORJSON_OPTIONS
    # Appended to one buffer as they come: each row's bytes are freed at once, whereas
    # keeping thousands alive for a join was measured 3-4x slower (allocator churn).
    out = bytearray()
    for row in rows:
        try:
            out += dumps(row, default=_json_default, option=option)
        except TypeError:  # orjson refuses lone surrogates and huge ints; keep the row anyway
            out += _encode_row_stdlib(row)
    return bytes(out)


def _encode_row_stdlib(row: Mapping[str, Any]) -> bytes:
    text = json.dumps(row, default=_json_default, ensure_ascii=False, separators=(",", ":"))
    return (text + "\n").encode("utf-8", errors="replace")


try:  # 20x faster than json on rows like ours; the stdlib is the fallback
    import orjson as _orjson

    _ORJSON_OPTIONS = _orjson.OPT_APPEND_NEWLINE | _orjson.OPT_PASSTHROUGH_DATETIME
except ImportError:  # pragma: no cover - orjson comes with the collector extra
    _orjson = None  # type: ignore[assignment]
    _ORJSON_OPTIONS = 0


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        # DateTime64 columns take fractional epoch seconds with best_effort parsing off.
        return value.timestamp()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__}")


# readonly=2: no writes, but query-level settings (the result format's) may still be set.
_READ_ONLY_SETTINGS = {**RESULT_SETTINGS, "readonly": 2}


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _query_settings(read_only: bool, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The result format's settings (and readonly) every query needs, plus the caller's own."""
    base = _READ_ONLY_SETTINGS if read_only else RESULT_SETTINGS
    if extra and "readonly" in extra:
        raise StoreError("the readonly setting belongs to the store, not to a query")
    return {**base, **(extra or {})}


def _with_settings(sql: str, settings: Mapping[str, Any]) -> str:
    if re.search(r"\bSETTINGS\b", sql, re.IGNORECASE):
        # A clause of the caller's would silently drop ours (readonly among them).
        raise StoreError("pass query settings through query(settings=...), not in the SQL")
    for key in settings:
        check_identifier(key)
    joined = ", ".join(
        f"{k}='{_quote(v)}'" if isinstance(v, str) else f"{k}={v}" for k, v in settings.items()
    )
    return f"{sql.rstrip().rstrip(';')}\nSETTINGS {joined}"
