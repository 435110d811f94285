"""The dashboard's plain HTML tables read back from an AppTest run, as DataFrames (the page,
ground-truth and truth tests)."""

from __future__ import annotations

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
