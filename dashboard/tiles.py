"""Number tiles (a label over a big value) as plain HTML, shown as Markdown: Streamlit's
``st.metric`` loads scripts of its own on a first visit (+0.17 s over an empty page, quiet
machine; these tiles +0.06, ``bench_browser_parts.py``). A tile with a link opens it in this
tab; a tile's ``help`` is its tooltip."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import streamlit as st

#: The tiles' look, part of the page's style (chrome._CSS).
CSS = """
  .sg-tiles {display: grid; grid-template-columns: repeat(auto-fit, minmax(7.5rem, 1fr));
      gap: 0.75rem; margin: 0.25rem 0 1rem 0;}
  .sg-tile {display: block; background: #f8f9fb; border: 1px solid #e9ecef;
      border-radius: 10px; padding: 10px 14px; color: inherit; text-decoration: none;}
  a.sg-tile:hover {border-color: #3b5bdb; background: #edf2ff;}
  /* Markdown styles its links (blue, underlined): a tile is a link as a whole, not text. */
  a.sg-tile, a.sg-tile div {color: inherit !important; text-decoration: none !important;}
  a.sg-tile .sg-tile-label {color: #5c6370 !important;}
  a.sg-tile .sg-tile-more {color: #3b5bdb !important;}
  .sg-tile-label {color: #5c6370; font-size: 0.85rem; white-space: nowrap; overflow: hidden;
      text-overflow: ellipsis;}
  .sg-tile-value {font-size: 1.9rem; line-height: 1.3; font-weight: 400;
      font-variant-numeric: tabular-nums; white-space: nowrap;}
  .sg-tile-more {color: #3b5bdb; font-size: 0.8rem;}
"""


@dataclass(frozen=True)
class Tile:
    """One tile: ``label`` over ``value``; ``href`` makes it a link (``more`` its call to
    action, e.g. "List them"); ``help`` is shown on hover."""

    label: str
    value: object
    help: str = ""
    href: str = ""
    more: str = ""


def tiles_html(items: Sequence[Tile]) -> str:
    """The tiles as one HTML block (no blank lines: Markdown keeps it whole)."""
    parts = []
    for tile in items:
        value = f"{tile.value:,}" if isinstance(tile.value, int) else str(tile.value)
        title = f' title="{escape(tile.help)}"' if tile.help else ""
        body = (f'<div class="sg-tile-label"{title}>{escape(tile.label)}</div>'
                f'<div class="sg-tile-value">{escape(value)}</div>')
        if tile.href:
            more = f'<div class="sg-tile-more">{escape(tile.more)}</div>' if tile.more else ""
            parts.append(f'<a class="sg-tile" href="{escape(tile.href)}" target="_self"'
                         f' aria-label="{escape(tile.label)}: {escape(value)}">{body}{more}</a>')
        else:
            parts.append(f'<div class="sg-tile">{body}</div>')
    return f'<div class="sg-tiles">{"".join(parts)}</div>'


def tiles(items: Sequence[Tile]) -> None:
    """Draw ``items`` as a row of tiles (wrapping on narrow screens)."""
    st.markdown(tiles_html(items), unsafe_allow_html=True)
