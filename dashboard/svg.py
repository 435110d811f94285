"""Charts drawn on the server as SVG, shown with ``st.html``: the browser parses no chart
library for them. The flow page's swimlane and trace waterfall are drawn this way: Plotly's
script (~4.7 MB) cost a first visit of that page more than a second (bench_browser_parts.py).

Small building blocks only: a linear scale, text and shapes with escaped content, a tooltip
(``<title>``) on any mark, and the document around them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape

FONT = "Inter, -apple-system, Segoe UI, Helvetica, Arial, sans-serif"
GRID = "#e9ecef"
MUTED = "#5c6370"


@dataclass(frozen=True)
class Scale:
    """A linear map from a domain (``low``..``high``) onto pixels (``left``..``right``)."""

    low: float
    high: float
    left: float
    right: float

    def __call__(self, value: float) -> float:
        span = self.high - self.low
        if span <= 0:
            return self.left
        return self.left + (value - self.low) / span * (self.right - self.left)

    def ticks(self, count: int = 5) -> list[float]:
        """``count`` evenly spaced domain values from ``low`` to ``high``."""
        if self.high <= self.low:
            return [self.low]
        step = (self.high - self.low) / (count - 1)
        return [self.low + i * step for i in range(count)]


def tooltip(text: str) -> str:
    """A mark's hover text (SVG ``<title>``); lines kept."""
    return f"<title>{escape(text)}</title>"


def text(x: float, y: float, body: str, *, size: int = 12, color: str = "#343a40",
         anchor: str = "start", weight: str = "normal", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{color}" '
            f'text-anchor="{anchor}" font-weight="{weight}"{extra}>{escape(body)}</text>')


def rect(x: float, y: float, width: float, height: float, color: str, *,
         opacity: float = 1.0, hover: str = "", extra: str = "") -> str:
    title = tooltip(hover) if hover else ""
    return (f'<rect x="{x:.1f}" y="{y:.1f}" width="{max(width, 0):.1f}" '
            f'height="{height:.1f}" fill="{color}" fill-opacity="{opacity:g}" rx="2"{extra}>'
            f"{title}</rect>")


def line(x1: float, y1: float, x2: float, y2: float, *, color: str = GRID, width: float = 1,
         dash: str = "", extra: str = "") -> str:
    dashed = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
            f'stroke-width="{width:g}"{dashed}{extra}/>')


def document(width: int, height: int, parts: Iterable[str], *, label: str) -> str:
    """The SVG element: ``width`` wide at most (it shrinks with the page), its own
    arrowhead marker, labelled for screen readers."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" style="max-width:{width}px;font-family:{FONT}" role="img" '
        f'aria-label="{escape(label)}">'
        '<defs><marker id="arrowhead" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" '
        'fill="#adb5bd"/></marker></defs>'
        + "".join(parts) + "</svg>"
    )


def empty(message: str, *, width: int = 900, height: int = 120) -> str:
    """A blank chart that says why it is blank."""
    return document(width, height, [text(width / 2, height / 2, message, size=14,
                                         color="#868e96", anchor="middle")], label=message)


def clipped(label: str, chars: int) -> str:
    """``label`` cut to ``chars`` characters (an ellipsis says so)."""
    return label if len(label) <= chars else label[: chars - 1] + "…"
