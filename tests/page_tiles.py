"""The dashboard's number tiles (``tiles.tiles``) read back from an AppTest run."""

from __future__ import annotations

import html
import re

from streamlit.testing.v1 import AppTest

_TILE = re.compile(r'<div class="sg-tile-label"[^>]*>(.*?)</div>'
                   r'<div class="sg-tile-value">(.*?)</div>')


def tile_values(at: AppTest) -> dict[str, str]:
    """Every tile on the page: its label -> its value, as shown."""
    return {html.unescape(label): html.unescape(value)
            for element in at.markdown for label, value in _TILE.findall(str(element.value))}
