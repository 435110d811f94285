"""Query results as tables and text: DataFrames from result lists, Markdown-safe text, the
row a grid selected, plain HTML tables whose rows are links."""

from __future__ import annotations

import dataclasses
import html
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
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


def html_table(table: pd.DataFrame, *, row_link: Callable[[int], str] | None = None,
               time_format: str = "%m-%d %H:%M:%S", numeric: Sequence[str] = (),
               key: str = "saga", label: str = "") -> str:
    """``table`` as a plain HTML table (shown with ``st.html``): no data-grid script for the
    browser to load, every column at its text's width, and each row, when ``row_link`` gives
    its URL (by the row's position), a link in this tab.

    Times are written with ``time_format`` (UTC; a final ``%f`` gives milliseconds);
    ``numeric`` columns align right with thousands separators; the ``key`` column, when rows
    are links, reads as one; missing values are blank.
    """
    classes = {c: ' class="num"' if c in numeric else ' class="key"' if c == key else ""
               for c in table.columns}
    head = "".join(f"<th{classes[c]}>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for i, values in enumerate(table.itertuples(index=False, name=None)):
        href = f' href="{html.escape(row_link(i))}"' if row_link else ""
        cells = "".join(
            f"<td{classes[c]}>"
            + (f"<a{href}>{_cell(v, time_format)}</a>" if href else _cell(v, time_format))
            + "</td>"
            for c, v in zip(table.columns, values, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    caption = f' aria-label="{html.escape(label)}"' if label else ""
    # A long table scrolls in its own box (its header stays), not the page to its end.
    wrap = "sg-table-wrap sg-scroll" if len(rows) > _ROWS_BEFORE_SCROLL else "sg-table-wrap"
    return (f'<div class="{wrap}"><table class="sg-table{" sg-links" if row_link else ""}"'
            f"{caption}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


#: More rows than this (the saga list's page of 50 is fewer) scroll in the table's own box.
_ROWS_BEFORE_SCROLL = 60


def _cell(value: object, time_format: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT:
        return ""
    if isinstance(value, datetime):
        moment = value.astimezone(UTC) if value.tzinfo else value
        full = moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"
        shown = moment.strftime(time_format)
        if time_format.endswith("%f"):  # milliseconds, not microseconds
            shown = shown[:-3]
        return f'<span title="{full}">{html.escape(shown)}</span>'
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{int(value):,}" if float(value).is_integer() else f"{value:,.2f}"
    text = html.escape(str(value))
    # A cell cut by the column's width shows the whole text on hover.
    return f'<span title="{text}">{text}</span>' if len(text) > 40 else text
