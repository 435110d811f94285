"""Failures and compensations: failing sagas by their real cause; each undone step beside its
undo and the undo's completion. A compensation is not a failure."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from sagascope.dashboard import chrome, figures, links, tables, tiles, url_state
from sagascope.dashboard.cached_queries import ask
from sagascope.queries import CompensationSummary, SagaFilter

#: Rows shown per table; the counts above each table cover all.
MAX_ROWS = 100


def causes_table(failures: pd.DataFrame) -> pd.DataFrame:
    """Failing sagas per cause (saga type, step, service, message type, reason)."""
    grouped = (failures.groupby(["saga_type", "step", "service", "error", "reason"],
                                as_index=False)
               .agg(sagas=("sagas", "sum"), last_seen=("last_seen", "max"),
                    example=("example_saga_id", "min"))
               .sort_values("sagas", ascending=False))
    return pd.DataFrame({
        "saga type": grouped["saga_type"], "failed at step": grouped["step"],
        "service": grouped["service"], "cause": grouped["error"], "reason": grouped["reason"],
        "sagas": grouped["sagas"], "last seen": grouped["last_seen"],
        "example": grouped["example"],
    })


def cause_link(row: pd.Series) -> dict[str, str]:
    """The saga list's URL filters naming one row of ``causes_table`` (see ``SagaFilter.cause``)."""
    return {"cause_type": str(row["saga type"]), "cause_step": str(row["failed at step"]),
            "cause_service": str(row["service"]), "cause": str(row["cause"]),
            "reason": str(row["reason"])}


def pairing_table(summary: CompensationSummary) -> pd.DataFrame:
    """The summary's compensation pairs, in its order (problems first, latest first)."""
    table = tables.frame(summary.pairs)
    return pd.DataFrame({
        "state": table["state"],
        "saga": table["saga_id"],
        "saga type": table["saga_type"],
        "step undone": table["step"],
        "done at": table["done_at"],
        # The undo's own messages; the one completing it has a column of its own.
        "undo": [", ".join(t for t in (types if isinstance(types, (list, tuple)) else [types])
                           if t != done)
                 for types, done in zip(table["undo_types"], table["completion_type"],
                                        strict=True)],
        "undo asked at": table["undo_at"],
        "completed by": table["completion_type"],
        "completed at": table["completed_at"],
    })


def _failures(filters: SagaFilter) -> None:
    failures = tables.frame(ask().failures(filters))
    if failures.empty:
        st.success("No saga failed in this range.", icon=":material/check_circle:")
        return
    by_status = failures.groupby("status")["sagas"].sum()
    tiles.tiles([
        tiles.Tile("Sagas that failed", int(failures["sagas"].sum()),
                   help="each counted once, at the message that failed it"),
        *(tiles.Tile(label, int(by_status.get(status, 0))) for label, status in (
            ("Failed", "failed"), ("Compensated", "compensated"),
            ("Compensating", "compensating"), ("Stalled while failing", "stalled"))),
    ])
    by_cause, by_step, by_service = st.tabs(["By cause", "By step", "By service"])
    for tab, column, title in ((by_cause, "error", "Failing sagas by cause"),
                               (by_step, "step", "Failing sagas by step"),
                               (by_service, "service", "Failing sagas by service")):
        with tab:
            drawn, total = figures.count_bars(failures, column, "sagas", title=title,
                                              width=900)
            st.markdown(drawn, unsafe_allow_html=True)
            if total > 25:
                st.caption(f"The 25 largest of {total} shown; the table lists every one.")
    table = causes_table(failures).head(MAX_ROWS)
    keep = url_state.sidebar_params()
    # Each row opens exactly the sagas it counts; the sidebar's saga type and range kept.
    st.html(tables.html_table(
        table, numeric=("sagas",), time_format="%Y-%m-%d %H:%M:%S", key="cause",
        label="Failure causes",
        row_link=lambda i: links.sagas_url(**cause_link(table.iloc[i]), **keep)))
    st.caption("Click a cause to list its sagas. Statuses: " + ", ".join(
        f"{status} {int(n):,}" for status, n in by_status.items()))


def _compensations(filters: SagaFilter) -> None:
    summary = ask().compensation_summary(filters, MAX_ROWS)
    if not summary.total:
        st.caption("No compensations in this range.")
        return
    counts = summary.counts
    tiles.tiles([
        tiles.Tile("Undos completed", int(counts.get("completed", 0))),
        tiles.Tile("Undos pending", int(counts.get("pending", 0)),
                   help="asked, completion event not (yet) received"),
        tiles.Tile("Missing undos", int(counts.get("missing", 0))),
        tiles.Tile("Failed undos", int(counts.get("failed", 0))),
        tiles.Tile("Undone twice or more", int(counts.get("duplicated", 0))),
    ])
    problems = int(counts.get("missing", 0) + counts.get("failed", 0))
    if problems:
        st.warning(f"{problems} step(s) of compensating sagas were not undone cleanly.",
                   icon=":material/warning:")
    if summary.total > len(summary.pairs):
        st.caption(f"Showing {len(summary.pairs):,} of {summary.total:,} pairs, problems first.")
    table = pairing_table(summary)
    keep = url_state.sidebar_params()
    st.html(tables.html_table(
        table, label="Compensation pairing",
        row_link=lambda i: links.flow_url(str(table["saga"].iloc[i]), **keep)))


def render() -> None:
    st.title("Failures & compensations")
    if chrome.empty_store_notice():
        return
    filters = url_state.current_filter()
    st.subheader("Failures")
    _failures(filters)
    st.subheader("Compensation pairing")
    _compensations(filters)


if __name__ == "__main__":
    chrome.live(render)
