"""Result objects from query rows whose columns are named as the objects' fields."""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from sagascope.store.timetext import as_utc

T = TypeVar("T")

#: Per result class (made once: ``typing.get_type_hints`` is slow): its field names, and how
#: a store value is read into each.
_NAMES: dict[type, tuple[str, ...]] = {}
_FIELD_READERS: dict[type, tuple[tuple[str, Callable[[Any], Any] | None], ...]] = {}


def from_columns(cls: type[T], row: Mapping[str, Any], **given: Any) -> T:
    """A ``cls`` dataclass whose fields are ``row``'s columns of the same name, as they are,
    except those ``given`` (a converted value, or one from another column); a field with no
    column and nothing given keeps its default."""
    taken = {name: row[name] for name in _field_names(cls) if name in row and name not in given}
    return cls(**taken, **given)


def from_store_columns(cls: type[T], row: Mapping[str, Any], **given: Any) -> T:
    """:func:`from_columns` for a row read from the store: each column is read as its field's
    type says (a ``datetime`` as an aware UTC time, a ``float``, ``int`` or ``bool`` as one)."""
    taken: dict[str, Any] = {}
    for name, read in _field_readers(cls):
        if name in row and name not in given:
            taken[name] = row[name] if read is None else read(row[name])
    return cls(**taken, **given)


def _field_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def _utc_or_none(value: Any) -> datetime | None:
    return None if value is None else as_utc(value)


#: How a store value is read into a field of this type; other types take the value as it is.
_READERS: dict[Any, Callable[[Any], Any]] = {
    datetime: as_utc,
    datetime | None: _utc_or_none,
    float: float,
    int: int,
    bool: bool,
}


def _field_readers(cls: type) -> tuple[tuple[str, Callable[[Any], Any] | None], ...]:
    readers = _FIELD_READERS.get(cls)
    if readers is None:
        hints = typing.get_type_hints(cls)
        readers = _FIELD_READERS[cls] = tuple(
            (name, _READERS.get(hints[name])) for name in _field_names(cls)
        )
    return readers
