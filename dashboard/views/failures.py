"""Failures and compensations: by step, service and error; each undone step beside its undo."""

from __future__ import annotations

import pandas as pd
import streamlit as st
from sagascope.dashboard import _chrome, figures

_PAIR_STATES = ("missing", "failed", "duplicated", "ok")
#: Rows shown per table; the counts above each table cover all.
MAX_ROWS = 500


def pairing_table(pairs: pd.DataFrame) -> pd.DataFrame:
    """Compensation pairs, problems (missing, failed, duplicated undos) first."""
    rank = {state: i for i, state in enumerate(_PAIR_STATES)}
    table = pairs.assign(_rank=pairs["state"].map(rank).fillna(len(rank)))
    table = table.sort_values(["_rank", "done_at"], ascending=[True, False]).head(MAX_ROWS)
    return pd.DataFrame({
        "state": table["state"],
        "saga": [_chrome.flow_url(s) for s in table["saga_id"]],
        "saga type": table["saga_type"],
        "step undone": table["step"],
        "done at": table["done_at"],
        "undo": [", ".join(t) if isinstance(t, (list, tuple)) else str(t)
                 for t in table["undo_types"]],
        "undo at": table["undo_at"],
        "undos": table["undo_count"],
    })


def _failures(filters: object) -> None:
    failures = _chrome.frame(_chrome.ask("failures", filters))
    if failures.empty:
        st.success("No failures in this range.", icon=":material/check_circle:")
        return
    cols = st.columns(3)
    cols[0].metric("Failure messages", f"{int(failures['count'].sum()):,}")
    cols[1].metric("Sagas with failures", f"{int(failures['sagas'].sum()):,}")
    cols[2].metric("Distinct errors", failures["error"].nunique())
    by_step, by_service, by_error = st.tabs(["By step", "By service", "By error"])
    with by_step:
        st.plotly_chart(figures.count_bars(failures, "step", title="Failures by step"),
                        key="failures_by_step")
    with by_service:
        st.plotly_chart(figures.count_bars(failures, "service", title="Failures by service"),
                        key="failures_by_service")
    with by_error:
        st.plotly_chart(figures.count_bars(failures, "error", title="Failures by error"),
                        key="failures_by_error")
    table = failures.sort_values("count", ascending=False).head(MAX_ROWS)
    st.dataframe(
        pd.DataFrame({
            "saga type": table["saga_type"], "step": table["step"],
            "service": table["service"], "error": table["error"], "count": table["count"],
            "sagas": table["sagas"], "last seen": table["last_seen"],
            "example": [_chrome.flow_url(s) for s in table["example_saga_id"]],
        }),
        hide_index=True, width="stretch", key="failures_table",
        column_config={
            "example": st.column_config.LinkColumn(display_text=r"saga=(.*)$"),
            "last seen": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
    )


def _compensations(filters: object) -> None:
    pairs = _chrome.frame(_chrome.ask("compensations", filters))
    if pairs.empty:
        st.caption("No compensations in this range.")
        return
    counts = pairs["state"].value_counts()
    cols = st.columns(4)
    cols[0].metric("Steps undone", f"{int(counts.get('ok', 0)):,}")
    cols[1].metric("Missing undos", f"{int(counts.get('missing', 0)):,}")
    cols[2].metric("Failed undos", f"{int(counts.get('failed', 0)):,}")
    cols[3].metric("Undone twice or more", f"{int(counts.get('duplicated', 0)):,}")
    problems = int(counts.get("missing", 0) + counts.get("failed", 0))
    if problems:
        st.warning(f"{problems} step(s) of compensating sagas were not undone cleanly.",
                   icon=":material/warning:")
    if len(pairs) > MAX_ROWS:
        st.caption(f"Showing {MAX_ROWS} of {len(pairs):,} pairs, problems first.")
    st.dataframe(
        pairing_table(pairs), hide_index=True, width="stretch", key="compensations_table",
        column_config={
            "saga": st.column_config.LinkColumn(display_text=r"saga=(.*)$"),
            "done at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
            "undo at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss"),
        },
    )


def render() -> None:
    st.title("Failures & compensations")
    if _chrome.empty_store_notice():
        return
    filters = _chrome.current_filter()
    st.subheader("Failures")
    _failures(filters)
    st.subheader("Compensation pairing")
    _compensations(filters)


if __name__ == "__main__":
    render()
