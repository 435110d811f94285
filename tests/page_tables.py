"""The dashboard's plain HTML read back from an AppTest run: its tables as DataFrames, its
number tiles, and its links (the page, ground-truth and truth tests)."""

from __future__ import annotations

import re
from html import unescape
from xml.etree import ElementTree

import pandas as pd
from streamlit.testing.v1 import AppTest


def html_tables(at: AppTest) -> list[pd.DataFrame]:
    """The page's plain HTML tables (``tables.html_table``): cells as text (numbers in
    numeric columns), and each row's link in a ``link`` column when its rows are links."""
    frames = []
    for element in at.html:
        if 'class="sg-table' not in element.value:
            continue
        root = ElementTree.fromstring(element.value)
        head = ["".join(th.itertext()) for th in root.iter("th")]
        rows, hrefs = [], []
        for tr in root.find("table/tbody") or []:
            cells = list(tr.iter("td"))
            rows.append(["".join(td.itertext()) for td in cells])
            anchor = cells[0].find("a") if cells else None
            hrefs.append(anchor.get("href") if anchor is not None else None)
        frame = pd.DataFrame(rows, columns=head)
        for th in root.iter("th"):
            if th.get("class") == "num":
                column = "".join(th.itertext())
                frame[column] = [int(v.replace(",", "")) for v in frame[column]]
        if any(hrefs):
            frame["link"] = hrefs
        frames.append(frame)
    return frames


def tile_values(at: AppTest) -> dict[str, str]:
    """The page's number tiles (``tiles.tiles``, and any ``st.metric`` left): label -> value."""
    shown = {m.label: m.value for m in at.metric}
    for tile in tile_elements(at):
        shown[tile["label"]] = tile["value"]
    return shown


def tile_links(at: AppTest) -> dict[str, str]:
    """The page's linked tiles: label -> the link they open."""
    return {t["label"]: t["href"] for t in tile_elements(at) if t.get("href")}


def tile_elements(at: AppTest) -> list[dict[str, str]]:
    """Each tile as ``label``, ``value`` and, when it is a link, ``href``."""
    found = []
    for element in at.markdown:
        if 'class="sg-tiles"' not in str(element.value):
            continue
        root = ElementTree.fromstring(str(element.value))
        for tile in root:
            parts = {div.get("class"): "".join(div.itertext()) for div in tile.iter("div")}
            item = {"label": parts["sg-tile-label"], "value": parts["sg-tile-value"]}
            if tile.get("href") is not None:
                item["href"] = str(tile.get("href"))
            found.append(item)
    return found


def link_hrefs(markup: str, text: str) -> list[str]:
    """The targets of the links in ``markup`` whose text is ``text``."""
    return [unescape(href) for href, label in re.findall(r'<a [^>]*href="([^"]*)"[^>]*>([^<]*)</a>',
                                                          markup) if unescape(label) == text]


def _form_roots(at: AppTest) -> list[ElementTree.Element]:
    """The page's plain HTML forms (``html_form.form``), parsed."""
    return [ElementTree.fromstring(str(e.value)) for e in [*at.html, *at.markdown]
            if 'class="sg-form"' in str(e.value)]


def html_forms(at: AppTest) -> list[dict[str, str]]:
    """The page's plain HTML forms, each as the parameters a browser would send if submitted
    untouched: field name -> value (a select's chosen option)."""
    forms = []
    for root in _form_roots(at):
        sent = {field.get("name", ""): field.get("value", "") for field in root.iter("input")}
        for select in root.iter("select"):
            options = list(select.iter("option"))
            chosen = [o for o in options if o.get("selected")] or options[:1]
            sent[select.get("name", "")] = chosen[0].get("value", "") if chosen else ""
        forms.append(sent)
    return forms


def form_options(at: AppTest, name: str) -> list[str]:
    """The values a form's drop-down ``name`` offers."""
    for root in _form_roots(at):
        for select in root.iter("select"):
            if select.get("name") == name:
                return [o.get("value", "") for o in select.iter("option")]
    raise AssertionError(f"no drop-down {name!r} in a form on the page")
