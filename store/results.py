"""Query results decoded from ClickHouse's ``JSONCompact`` output into Python values.

Both backends answer a SELECT in this format (with :data:`RESULT_SETTINGS`) and
:func:`decode_result` turns it into rows, one column type at a time: the values the Arrow
stream gave through pyarrow before (aware datetimes in the column's zone, dates, ints, floats,
strings, lists, dicts, tuples as dicts keyed by their element names or ``"1"``, ``"2"`` ...,
None for NULL), so callers see no difference. Not through pyarrow: only readers that draw
dataframes need it, and in a process that holds the store it was 14 MB of anonymous memory
and 31 MB of mapped libraries.
"""

from __future__ import annotations

import decimal
import gc
import json
import re
import struct
import uuid
from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sagascope.store.exceptions import StoreError

#: The output format of every SELECT the store runs for its own callers.
RESULT_FORMAT = "JSONCompact"

#: The format's settings: datetimes as ISO 8601 in UTC (``...Z``, no ambiguous local time),
#: integers of 64 bits and more quoted (JSON parsers read them as doubles beyond 64 bits),
#: NaN and infinities as strings (JSON has none), invalid UTF-8 replaced (it would not parse),
#: decimals as their exact text.
RESULT_SETTINGS: dict[str, Any] = {
    "date_time_output_format": "iso",
    "output_format_json_quote_64bit_integers": 1,
    "output_format_json_quote_denormals": 1,
    "output_format_json_validate_utf8": 1,
    "output_format_json_named_tuples_as_objects": 1,
    "output_format_json_quote_decimals": 1,
    "output_format_decimal_trailing_zeros": 1,
}

Converter = Callable[[Any], Any]


def decode_result(data: bytes) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Column names and rows of a ``JSONCompact`` answer; nothing at all for empty bytes."""
    if not data:
        return (), []
    # Python's cyclic garbage collection, run every few hundred new containers, walks
    # every live one: a 100,000-row result took 10x longer to parse with it on.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _decode(data)
    finally:
        if collecting:
            gc.enable()


def _decode(data: bytes) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    try:
        parsed = _loads(data)
    except ValueError as exc:
        raise StoreError(f"cannot decode a query result: {exc}") from exc
    meta = parsed["meta"]
    names = tuple(column["name"] for column in meta)
    rows = parsed["data"]
    if not rows:
        return names, []
    converters = [converter_for(column["type"]) for column in meta]
    if not any(converters):
        return names, [tuple(row) for row in rows]
    columns: list[Any] = list(zip(*rows, strict=True))
    for i, convert in enumerate(converters):
        if convert is not None:
            columns[i] = list(map(convert, columns[i]))
    return names, list(zip(*columns, strict=True))


def converter_for(type_name: str) -> Converter | None:
    """What turns a JSON value of a column of ``type_name`` into its Python value (None: the
    JSON value is already it)."""
    name, args = _split_type(type_name)
    if name == "Nullable":
        inner = converter_for(args[0])
        return None if inner is None else _nullable(inner)
    if name == "LowCardinality":
        return converter_for(args[0])
    if name == "SimpleAggregateFunction":  # (function, value type): the value as it is
        return converter_for(args[1]) if len(args) == 2 else _tuple(args[1:])
    if name in _SCALARS:
        return _SCALARS[name]
    if name == "DateTime64" and len(args) > 1:
        return _in_zone(ZoneInfo(_unquote(args[1])))
    if name == "DateTime64":
        # Without a zone of its own the column is in the server's; the Arrow output gave that
        # zone (the machine's for chDB), this gives the same instant, aware, in UTC.
        return datetime.fromisoformat
    if name == "DateTime":
        # ClickHouse's Arrow output gives a DateTime as its epoch seconds (UInt32).
        return _epoch_seconds
    if name in ("Enum8", "Enum16"):
        codes = {_unquote(label): int(code) for label, code in _enum_items(args)}
        return codes.__getitem__
    if name == "Array":
        element = converter_for(args[0])
        return None if element is None else _array(element)
    if name == "Map":
        return _map(args[0], converter_for(args[1]))
    if name == "Tuple":
        return _tuple(args)
    return None  # String, FixedString, Bool, small integers


def _nullable(convert: Converter) -> Converter:
    return lambda value: None if value is None else convert(value)


def _in_zone(zone: ZoneInfo) -> Converter:
    if zone.key == "UTC":  # the same instant, 3x faster than astimezone
        return lambda text: datetime.fromisoformat(text).replace(tzinfo=zone)
    return lambda text: datetime.fromisoformat(text).astimezone(zone)


def _epoch_seconds(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


def _float32(value: float | str) -> float:
    # The float32 the column holds, widened as pyarrow widens it (0.1 -> 0.10000000149...).
    return float(struct.unpack("f", struct.pack("f", float(value)))[0])


def _array(element: Converter) -> Converter:
    return lambda values: [element(v) for v in values]


def _map(key_type: str, value: Converter | None) -> Converter | None:
    # JSON object keys are text whatever the key type.
    key = converter_for(key_type) or (int if _SMALL_INTEGER.match(key_type) else None)
    if key is None and value is None:
        return None
    key = key or _identity
    value = value or _identity
    return lambda entries: {key(k): value(v) for k, v in entries.items()}


def _tuple(element_types: list[str]) -> Converter:
    """A tuple as a dict keyed by its element names, or ``"1"``, ``"2"`` ... without names."""
    names: list[str] = []
    converters: list[Converter] = []
    for position, element in enumerate(element_types, start=1):
        named = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s+(.+)$", element)
        if named:
            names.append(named.group(1))
            converters.append(converter_for(named.group(2)) or _identity)
        else:
            names.append(str(position))
            converters.append(converter_for(element) or _identity)
    if names and all(n == str(i) for i, n in enumerate(names, start=1)):
        return lambda values: {
            n: c(v) for n, c, v in zip(names, converters, values, strict=True)
        }
    return lambda values: {n: c(values[n]) for n, c in zip(names, converters, strict=True)}


def _identity(value: Any) -> Any:
    return value


_SCALARS: dict[str, Converter] = {
    **{f"{sign}Int{bits}": int for sign in ("", "U") for bits in (64, 128, 256)},
    **{f"Interval{unit}": int for unit in (
        "Nanosecond", "Microsecond", "Millisecond", "Second", "Minute", "Hour", "Day", "Week",
        "Month", "Quarter", "Year",
    )},
    "Float64": float,
    "Float32": _float32,
    "Date": date.fromisoformat,
    "Date32": date.fromisoformat,
    "UUID": uuid.UUID,
    "Decimal": decimal.Decimal,
    **{f"Decimal{bits}": decimal.Decimal for bits in (32, 64, 128, 256)},
}


_SMALL_INTEGER = re.compile(r"^U?Int(8|16|32)$")


def _split_type(type_name: str) -> tuple[str, list[str]]:
    """``Map(String, Array(UInt8))`` -> ``("Map", ["String", "Array(UInt8)"])``."""
    type_name = type_name.strip()
    open_at = type_name.find("(")
    if open_at < 0 or not type_name.endswith(")"):
        return type_name, []
    args: list[str] = []
    depth, start, quoted = 0, open_at + 1, False
    body = type_name[: -1]
    for i in range(open_at + 1, len(body)):
        char = body[i]
        if char == "'" and body[i - 1] != "\\":
            quoted = not quoted
        elif quoted:
            continue
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            args.append(body[start:i].strip())
            start = i + 1
    args.append(body[start:].strip())
    return type_name[:open_at], args


def _enum_items(args: list[str]) -> list[tuple[str, str]]:
    return [(label.strip(), code.strip()) for label, _, code in (a.rpartition("=") for a in args)]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    return text


try:  # several times faster than json on results like ours; the stdlib is the fallback
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - orjson comes with the collector extra
    _loads = json.loads  # type: ignore[assignment]
