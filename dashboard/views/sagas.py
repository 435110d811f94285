"""Sagas: every saga findable by status, type, time, step, service, attribute or id prefix.

Each filter lives in the URL (``?status=failed&type=trip-booking&attr=customer_id=C-2779``);
a row opens its flow in this tab.
"""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from sagascope.dashboard import (
    choice_links,
    chrome,
    figures,
    html_form,
    links,
    tables,
    url_state,
)
from sagascope.dashboard.cached_queries import ask
from sagascope.queries import FINISHED_STATUSES, SAGA_SORT_KEYS, STATUSES, SagaPage

PAGE_SIZE = 50
#: URL parameter -> default, for this page's own filters.
FILTERS: dict[str, str] = {
    "status": "", "at": "", "step": "", "service": "", "attr": "", "id_prefix": "",
    "from": "", "to": "",
    # A failure cause, as the Failures page's table names it (all five, or none).
    "cause_type": "", "cause_step": "", "cause_service": "", "cause": "", "reason": "",
    "sort": "last_heard", "order": "desc", "page": "1",
}
_SORT_LABELS = {
    "last_heard": "Last heard from", "started": "Started", "cycle_time": "Cycle time",
    "silent": "Silent for", "messages": "Messages", "saga_id": "Saga id", "status": "Status",
    "saga_type": "Saga type",
}


def saga_table(page: SagaPage) -> pd.DataFrame:
    frame = tables.frame(page.sagas)
    return pd.DataFrame({
        "saga": frame["saga_id"],
        "saga type": frame["saga_type"],
        "status": frame["status"],
        "current step": frame["last_step"],
        "last service": frame["last_source"],
        "started": frame["started"],
        "last heard": frame["last_kafka_time"],
        "cycle time": frame["duration_s"].map(figures.format_duration),
        # Silence matters only while a saga is expected to go on.
        "silent for": [figures.format_duration(s) if st_ not in FINISHED_STATUSES else ""
                       for s, st_ in zip(frame["silent_s"], frame["status"], strict=True)],
        "messages": frame["messages"],
    })


def _filter_values() -> None:
    """Bind this page's filters to the URL; a value no filter offers falls back to its default
    (a hand-edited URL)."""
    if "prefix" in st.query_params:  # its name in links before the filters were a form
        st.query_params["id_prefix"] = st.query_params.pop("prefix")
    keys = {p: url_state.url_bound(p, d, strict=True) for p, d in FILTERS.items()}
    if st.session_state[keys["status"]] not in ("", *STATUSES):
        st.session_state[keys["status"]] = ""
    if st.session_state[keys["sort"]] not in SAGA_SORT_KEYS:
        st.session_state[keys["sort"]] = FILTERS["sort"]
    if st.session_state[keys["order"]] not in ("desc", "asc"):
        st.session_state[keys["order"]] = FILTERS["order"]
    try:
        st.session_state[keys["page"]] = max(1, int(st.session_state[keys["page"]] or 1))
    except (TypeError, ValueError):
        st.session_state[keys["page"]] = 1


#: The list's order: value -> label.
_ORDERS = {"desc": "descending", "asc": "ascending"}


def _any(options: list[str], label: str = "any") -> dict[str, str]:
    return {"": label, **{option: option for option in options}}


def filters_form(current: dict[str, str]) -> str:
    """The filters as one HTML form (no widget script for a first visit to load): "Apply"
    opens the first page of what they match, the URL's other parameters kept."""
    choices = ask().filter_choices(url_state.saga_type())
    value = url_state.value
    fields = [
        html_form.select("status", "Status", _any(list(STATUSES), "any status"), value("status")),
        html_form.select("at", "Current step", _any(choices["steps"]), value("at"),
                         help="the step of the last message heard"),
        html_form.select("step", "Passed through step", _any(choices["steps"]), value("step")),
        html_form.select("service", "Service", _any(choices["services"]), value("service")),
        html_form.text("attr", "Attribute", value("attr"), placeholder="customer_id=C-2779",
                       help="key=value of a header or a JSON payload field (a.b for nested)",
                       wide=True),
        html_form.text("id_prefix", "Saga id starts with", value("id_prefix"),
                       placeholder="order-10"),
        html_form.select("sort", "Sort by",
                         {key: _SORT_LABELS.get(key, key) for key in SAGA_SORT_KEYS},
                         value("sort") or FILTERS["sort"]),
        html_form.select("order", "Order", _ORDERS, value("order") or FILTERS["order"]),
    ]
    # A new filter starts at page 1; a failure cause or a process-map arrow stays until
    # cleared, like the sidebar's range and type.
    keep = {k: v for k, v in current.items() if k != "page"}
    clear = choice_links.href(current, **dict.fromkeys(FILTERS, ""))
    return html_form.form(fields, keep=keep, submit="Apply", label="Saga filters",
                          clear_href=clear if any(current.get(k) for k in FILTERS) else "")


def _page_links(current: dict[str, str], number: int, pages: int) -> str:
    """"Previous" and "Next" as links to the neighbouring pages (none past either end)."""
    def link(label: str, to: int) -> str:
        target = choice_links.href(current, page="" if to == 1 else str(to))
        return f' · <a href="{html.escape(target)}" target="_self">{label}</a>'
    return ((link("‹ Previous", number - 1) if number > 1 else "")
            + (link("Next ›", number + 1) if number < pages else ""))


def render() -> None:
    st.title("Sagas")
    if chrome.empty_store_notice():
        return
    _filter_values()
    number = int(st.session_state[url_state.url_key("page")])
    # The URL first, then the form with it: drawn in place at once (never blanked while the
    # list is asked for, so a live refresh keeps what is being typed in it).
    url_state.sync_url(FILTERS)
    st.html(filters_form(st.query_params.to_dict()))
    attribute = url_state.value("attr").strip()
    if attribute and "=" not in attribute:
        st.warning("An attribute filter is key=value, e.g. `customer_id=C-2779`.",
                   icon=":material/filter_alt:")
        attribute = ""
    arrow = (url_state.value("from"), url_state.value("to"))
    transition = arrow if all(arrow) else None
    if transition:
        st.markdown(f"Sagas in which **{tables.escape_md(transition[1])}** directly followed "
                    f"**{tables.escape_md(transition[0])}** (a process-map arrow).")
    cause = None
    if url_state.value("cause"):
        cause = (url_state.value("cause_type"), url_state.value("cause_step"),
                 url_state.value("cause_service"), url_state.value("cause"),
                 url_state.value("reason"))
        reason = f", reason “{tables.escape_md(cause[4])}”" if cause[4] else ", no reason given"
        st.markdown(f"Sagas of **{tables.escape_md(cause[0])}** that failed at "
                    f"**{tables.escape_md(cause[1])}**: **{tables.escape_md(cause[3])}** from "
                    f"{tables.escape_md(cause[2])}{reason} (a cause on the Failures page).")
    filters = url_state.current_filter(
        transition=transition, cause=cause,
        status=url_state.value("status") or None, current_step=url_state.value("at") or None,
        step=url_state.value("step") or None, service=url_state.value("service") or None,
        attribute=attribute or None, saga_id_prefix=url_state.value("id_prefix").strip() or None,
    )
    sort = url_state.value("sort") if url_state.value("sort") in SAGA_SORT_KEYS else "last_heard"
    descending = url_state.value("order") != "asc"
    page = ask().saga_page(filters, sort=sort, descending=descending,
                           offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    pages = max(1, -(-page.total // PAGE_SIZE))
    if number > pages:
        number = pages
        st.session_state[url_state.url_key("page")] = pages
        url_state.sync_url(FILTERS)
    current = st.query_params.to_dict()
    st.markdown(f"**{page.total:,} sagas** match ({url_state.time_range_label().lower()})"
                f" · page {number} of {pages:,}{_page_links(current, number, pages)}",
                unsafe_allow_html=True)
    if not page.sagas:
        st.info("No saga matches these filters. Widen the time range or clear a filter.",
                icon=":material/filter_alt_off:")
        return
    table = saga_table(page)
    keep = url_state.sidebar_params()
    # A plain table, not a data grid: no grid script for a first visit to load, and every
    # column fits at 1440 px. Each row opens its flow (the sidebar's filters kept).
    st.html(tables.html_table(
        table, numeric=("messages",), label="Sagas",
        row_link=lambda i: links.flow_url(str(table["saga"].iloc[i]), **keep)))
    st.caption("Click a row to open its flow.")


if __name__ == "__main__":
    chrome.live(render)
