"""The store interface, described once, and what both backends share: results decoded from
Arrow, rows encoded as JSONEachRow, query settings and the read-only guard.

Both backends run the same SQL text with server-side parameters (``{name:Type}``), return
results decoded from the same Arrow stream, and insert rows as the same JSONEachRow bytes,
so there is one schema, one SQL and one type mapping.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sagascope.store.exceptions import StoreError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a plain SQL identifier; identifiers cannot be parameters."""
    if not _IDENTIFIER.match(name):
        raise StoreError(f"invalid identifier {name!r} (letters, digits and _ only)")
    return name


@dataclass(frozen=True)
class QueryResult:
    """Rows of a query, typed from the Arrow stream both backends return."""

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

    Backends (``ChdbStore``, ``ClickHouseStore``) implement ``_arrow_query``, ``command``,
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
        return _arrow_to_result(self._arrow_query(sql, params, _query_settings(self.read_only, settings)))

    @abc.abstractmethod
    def _arrow_query(
        self, sql: str, params: Mapping[str, Any] | None, settings: Mapping[str, Any]
    ) -> bytes:
        """The result of a SELECT as an Arrow stream, run with exactly these settings."""

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


def _arrow_to_result(data: bytes) -> QueryResult:
    import pyarrow as pa

    if not data:
        return QueryResult((), [])
    table = pa.ipc.open_stream(data).read_all()
    columns = [_arrow_column(table.column(i)) for i in range(table.num_columns)]
    return QueryResult(tuple(table.column_names), list(zip(*columns, strict=True)))


def _arrow_column(col: Any) -> list[Any]:
    import pyarrow as pa

    if pa.types.is_timestamp(col.type):
        return _timestamps(col)
    values = col.to_pylist()
    if pa.types.is_binary(col.type) or pa.types.is_fixed_size_binary(col.type):
        # ClickHouse String goes out as Arrow binary unless told otherwise.
        return [v.decode("utf-8", errors="replace") if v is not None else None for v in values]
    if pa.types.is_map(col.type):
        return [dict(v) if v is not None else None for v in values]
    return values


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECONDS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def _timestamps(col: Any) -> list[datetime | None]:
    """The datetimes of a timestamp column, as pyarrow's ``to_pylist`` gives them (aware in
    the column's zone, naive without one; nanoseconds cut to microseconds). Not through
    pyarrow's: it imports pandas to look for its Timestamp type, ~50 MB resident that the
    collector, alerter and metrics never use."""
    import pyarrow as pa

    zone = ZoneInfo(col.type.tz) if col.type.tz else None
    unit = col.type.unit
    found: list[datetime | None] = []
    for value in col.cast(pa.int64()).to_pylist():
        if value is None:
            found.append(None)
            continue
        micros = value // 1_000 if unit == "ns" else value * _MICROSECONDS[unit]
        moment = _EPOCH + timedelta(microseconds=micros)
        found.append(moment.astimezone(zone) if zone else moment.replace(tzinfo=None))
    return found


_ARROW_SETTINGS = {
    "output_format_arrow_string_as_string": 1,
    "output_format_arrow_low_cardinality_as_dictionary": 0,
}

# readonly=2: no writes, but query-level settings (the Arrow ones) may still be set.
_READ_ONLY_SETTINGS = {**_ARROW_SETTINGS, "readonly": 2}


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _query_settings(read_only: bool, extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Arrow output settings (and readonly) every query needs, plus the caller's own."""
    base = _READ_ONLY_SETTINGS if read_only else _ARROW_SETTINGS
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
