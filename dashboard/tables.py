"""Query results as tables and text: DataFrames from result lists, Markdown-safe text, the
row a grid selected."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

import pandas as pd


def frame(results: Sequence[Any]) -> pd.DataFrame:
    """Query results (a list of dataclasses) as a DataFrame with the dataclasses' fields."""
    items = list(results)
    if not items:
        return pd.DataFrame()
    first = items[0]
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        # Column by column: dataclasses.asdict deep-copies every row, slow for 10k+ results.
        names = [f.name for f in dataclasses.fields(first)]
        return pd.DataFrame({name: [getattr(r, name) for r in items] for name in names})
    return pd.DataFrame([dict(r) for r in items])


#: What Markdown (and Streamlit's extensions of it) would read as markup.
_MARKDOWN_SPECIAL = "\\`*_{}[]()#+!|<>~$:"


def escape_md(text: object) -> str:
    """``text`` shown as it is in Markdown: markup characters escaped, nothing else.

    A hyphen or a dot is only markup at the start of a line (a list item), so only there
    is it escaped: ``ord-999999`` stays ``ord-999999`` in the page's text and its copies.
    """
    out = "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in str(text))
    if out[:1] in ("-", "+", "=") or (out[:1].isdigit() and "." in out[:10]):
        out = "\\" + out
    return out


def code_md(text: object) -> str:
    """``text`` as a Markdown code span, shown exactly: escapes do not work inside code spans,
    so the fence is one backtick longer than any run of backticks in the text."""
    body = str(text)
    fence = "`" * (max((len(run) for run in re.findall("`+", body)), default=0) + 1)
    pad = " " if body.startswith("`") or body.endswith("`") else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def selected_row(event: Any) -> int | None:
    """The row index a ``st.dataframe(on_select="rerun")`` event selected, if any."""
    try:
        rows = event.selection.rows
    except AttributeError:
        return None
    return int(rows[0]) if rows else None
