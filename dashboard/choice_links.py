"""Choices as plain HTML links (the sidebar's time range, saga type and live refresh; a page's
own, such as the Overview's percentile): each opens the page it is on, in this tab, with one
URL parameter changed and every other one kept, so a shared or reloaded link shows the same
view. The current choice is marked, not a link. No widget: Streamlit loads each widget type's
scripts on a first visit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import urlencode

from sagascope.dashboard import url_state

#: The links' look, part of the page's style (chrome._CSS).
CSS = """
  .sg-side-title {font-size: 1.35rem; font-weight: 600; margin: 0 0 0.6rem 0;}
  .sg-side-label {color: #5c6370; font-size: 0.8rem; font-weight: 600; margin: 0.7rem 0 0.3rem 0;
      text-transform: uppercase; letter-spacing: 0.03em;}
  .sg-pills {display: flex; flex-wrap: wrap; gap: 0.3rem;}
  .sg-pill {display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 0.85rem;
      border: 1px solid #dee2e6; color: #343a40 !important; text-decoration: none !important;
      background: white; white-space: nowrap; max-width: 100%; overflow: hidden;
      text-overflow: ellipsis;}
  a.sg-pill:hover {border-color: #3b5bdb; background: #edf2ff;}
  .sg-pill.sg-on {background: #3b5bdb; border-color: #3b5bdb; color: white !important;
      font-weight: 600;}
  .sg-side details {margin-top: 0.3rem;}
  .sg-side summary {cursor: pointer; color: #3b5bdb; font-size: 0.85rem; margin-bottom: 0.3rem;}
  .sg-live {margin-top: 0.9rem; font-size: 0.85rem; color: #5c6370;}
  .sg-live a {color: #3b5bdb !important;}
"""

#: Sidebar URL parameter -> its default (a link to the default leaves the parameter out).
DEFAULTS = {"range": url_state.DEFAULT_TIME_RANGE, "type": url_state.ALL, "live": "1"}


def href(current: Mapping[str, str], **changed: str) -> str:
    """This page's link with ``changed`` parameters set (a default or empty value drops it)
    and every other parameter of ``current`` kept."""
    params = {**current, **changed}
    kept = {k: v for k, v in params.items() if v and v != DEFAULTS.get(k)}
    return "?" + urlencode(kept)


def _pill(label: str, link: str, *, on: bool) -> str:
    if on:
        return f'<span class="sg-pill sg-on" aria-current="true">{escape(label)}</span>'
    return f'<a class="sg-pill" href="{escape(link)}" target="_self">{escape(label)}</a>'


def choices(current: Mapping[str, str], param: str, labels: Mapping[str, str], default: str,
            *, title: str) -> str:
    """One pill per choice of ``param`` (value -> label), the current one marked."""
    chosen = current.get(param) or default
    pills = "".join(_pill(label, href(current, **{param: "" if key == default else key}),
                          on=key == chosen) for key, label in labels.items())
    return (f'<nav class="sg-side" aria-label="{escape(title)}"><div class="sg-side-label">'
            f'{escape(title)}</div><div class="sg-pills">{pills}</div></nav>')


def range_links(current: Mapping[str, str], fixed_window: Mapping[str, str]) -> str:
    """The time ranges; "Fixed" carries ``fixed_window`` (since/until), the others drop it."""
    chosen = current.get("range") or url_state.DEFAULT_TIME_RANGE
    pills = []
    for key, (label, _) in url_state.TIME_RANGES.items():
        window = dict(fixed_window) if key == "fixed" else {url_state.SINCE: "",
                                                           url_state.UNTIL: ""}
        pills.append(_pill(label.split(" (")[0], href(current, range=key, **window),
                           on=key == chosen))
    return ('<nav class="sg-side" aria-label="Time range"><div class="sg-side-title">sagascope'
            '</div><div class="sg-side-label">Time range</div>'
            f'<div class="sg-pills">{"".join(pills)}</div></nav>')


def type_links(current: Mapping[str, str], saga_types: Sequence[str], shown: int) -> str:
    """"All saga types" and each type; more than ``shown`` types fold into a ``<details>``."""
    chosen = current.get("type") or url_state.ALL
    names = list(saga_types) + ([chosen] if chosen and chosen not in saga_types else [])
    pills = [_pill(name or "All saga types", href(current, type=name), on=name == chosen)
             for name in [url_state.ALL, *names]]
    if len(names) <= shown:
        body = f'<div class="sg-pills">{"".join(pills)}</div>'
    else:
        on = _pill(chosen or "All saga types", "", on=True)
        body = (f'<div class="sg-pills">{on}</div><details><summary>Choose one of '
                f'{len(names)} saga types</summary><div class="sg-pills">{"".join(pills)}'
                '</div></details>')
    return ('<nav class="sg-side" aria-label="Saga type"><div class="sg-side-label">Saga type'
            f'</div>{body}</nav>')


def live_link(current: Mapping[str, str], refresh_s: float) -> str:
    """Pause or resume the live refresh (``?live=0`` pauses it)."""
    if current.get("live") == "0":
        text, link = "Live refresh paused.", href(current, live="1")
        action = "Resume live refresh"
    else:
        text = f"Refreshes when new data arrives (checked every {refresh_s:g} s)."
        link, action = href(current, live="0"), "Pause live refresh"
    return (f'<div class="sg-live">{escape(text)} <a href="{escape(link)}" target="_self">'
            f'{escape(action)}</a></div>')
