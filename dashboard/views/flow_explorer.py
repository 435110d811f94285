"""Flow explorer: one saga by saga id, trace id or message id; deep link ``?saga=<id>``."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from sagascope.dashboard import (
    choice_links,
    chrome,
    figures,
    html_form,
    links,
    runtime,
    tables,
    tiles,
    url_state,
    waterfall,
)
from sagascope.dashboard.cached_queries import ask
from sagascope.queries import Flow, NotFound, SagaDiagnosis, causal_times

#: Longest search text accepted: long enough for any id a service may send (the exact-lookup
#: tests use 10 KB ids). A longer key is refused, never cut: a prefix could find another saga.
MAX_KEY_LENGTH = 16_384


#: The flow page's times, to the millisecond (UTC).
_MILLISECONDS = "%Y-%m-%d %H:%M:%S.%f"


def audit_table(flow: Flow) -> pd.DataFrame:
    """The flow's messages in causal order, one row each, as the audit trail shows them."""
    rows = []
    for seq, m in enumerate(flow.messages, start=1):
        rows.append({
            "#": seq,
            "event time": m.event_time,
            "service": m.source,
            "kind": m.kind,
            "type": m.type,
            "step": m.step,
            "status": m.saga_status,
            "compensates": m.compensates,
            "topic": f"{m.topic}[{m.partition}]@{m.offset}",
            "copies": 1 + m.duplicates,
            "message id": m.message_id,
            "caused by": m.causation_id,
            "trace id": m.trace_id,
            "headers": json.dumps(m.headers, sort_keys=True, ensure_ascii=False),
            "payload": m.payload,
        })
    return pd.DataFrame(rows)


def swimlane_frame(flow: Flow) -> pd.DataFrame:
    """One row per message: ``position`` is its causality-respecting time on the swimlane."""
    positions = causal_times(flow)
    return pd.DataFrame([
        {
            "seq": seq, "event_time": m.event_time, "position": position, "source": m.source,
            "type": m.type, "kind": m.kind, "message_id": m.message_id,
            "causation_id": m.causation_id, "step": m.step, "saga_status": m.saga_status,
            "compensates": m.compensates, "duplicate": m.duplicated, "skew_s": m.skew_s,
        }
        for seq, (m, position) in enumerate(zip(flow.messages, positions, strict=True), start=1)
    ])


def _search_box() -> str:
    """The search box, a plain HTML form (no widget script for a first visit to load): the
    saga searched is in the URL (``?saga=``), which the session keeps, so coming back to this
    page shows it again."""
    url_state.url_bound("saga")
    linked = url_state.value("saga")
    if len(linked) > MAX_KEY_LENGTH:
        st.error(f"The link's saga id is longer than {MAX_KEY_LENGTH:,} characters: not an id.")
        linked = ""
        st.session_state[url_state.url_key("saga")] = ""
    # The URL names the saga, so it can be shared and reloaded.
    url_state.sync_url({"saga": ""})
    keep = {k: v for k, v in st.query_params.to_dict().items() if k not in ("saga", "trace")}
    st.html(html_form.form(
        [html_form.text("saga", "Order / saga id, trace id, traceparent or message id", linked,
                        placeholder="e.g. order-1042", maxlength=MAX_KEY_LENGTH, wide=True)],
        keep=keep, submit="Search", label="Find a flow"))
    # Not stripped: ids may hold any character; the query layer tries the exact key first.
    return linked if linked.strip() else ""


#: Messages whose details the page carries (a saga with more lists its first ones).
MAX_DETAILS = 500


def message_details(messages: Sequence[Any]) -> str:
    """Each message's headers and payload in a collapsed ``<details>``: opened in the browser
    at a click, with no widget script to load and no rerun."""
    items = []
    for i, message in enumerate(messages[:MAX_DETAILS], start=1):
        try:
            payload = json.dumps(json.loads(message.payload), indent=2, ensure_ascii=False)
        except (TypeError, ValueError):
            payload = message.payload or "(empty)"
        about = "redacted" + (", truncated" if message.payload_truncated else "")
        error = (f'<p class="sg-msg-error">Stored with a parse error: '
                 f"{html.escape(str(message.parse_error))}</p>" if message.parse_error else "")
        headers = json.dumps(message.headers, indent=2, ensure_ascii=False, sort_keys=True)
        items.append(
            f"<details><summary>#{i} {html.escape(str(message.type))} "
            f"({html.escape(str(message.source))})</summary><div class=\"sg-msg\">"
            f"<div><b>Headers</b>{_pre(headers)}</div>"
            f"<div><b>Payload</b> ({about}, {message.payload_size:,} bytes){_pre(payload)}"
            f"{error}</div></div></details>")
    more = (f"<p>Showing the first {MAX_DETAILS:,} of {len(messages):,} messages.</p>"
            if len(messages) > MAX_DETAILS else "")
    return f'<div class="sg-messages">{"".join(items)}</div>{more}'


def _pre(text: str) -> str:
    # Line breaks as character references: a blank line would end Markdown's HTML block. A
    # <div>, not <pre>: Streamlit's Markdown draws a <pre> as its own code block.
    return '<div class="sg-pre">' + html.escape(text).replace("\n", "&#10;") + "</div>"


#: A W3C ``traceparent`` header value, as copied from a message: version-trace-span-flags.
TRACEPARENT = re.compile(r"^\s*[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}\s*$")


def _find(key: str) -> Flow:
    """The flow ``key`` names; a pasted ``traceparent`` finds its trace."""
    try:
        return ask().flow(key)
    except NotFound:
        traceparent = TRACEPARENT.match(key.lower())
        if traceparent is None:
            raise
        return ask().flow(traceparent.group(1))


def _header(flow: Flow) -> None:
    st.markdown(
        f"#### {html.escape(flow.saga_id or '(no saga)')} &nbsp; "
        f"{chrome.status_badge(flow.status)} &nbsp; "
        f"<span style='color:#5c6370'>{html.escape(flow.saga_type)}</span>",
        unsafe_allow_html=True,
    )
    tiles.tiles([
        tiles.Tile("Cycle time", figures.format_duration(flow.duration_s) or "–",
                   help="first to last event, as the Overview and `sagascope flow` count it"),
        tiles.Tile("Messages", len(flow.messages)),
        tiles.Tile("Traces", len(flow.trace_ids)),
        tiles.Tile("Duplicate deliveries", flow.duplicates),
    ])
    # On the causal timeline, so a clock running behind cannot make the saga start early.
    positions = causal_times(flow)
    started = positions[0].strftime("%Y-%m-%d %H:%M:%S") if positions else "–"
    last = max(positions).strftime("%Y-%m-%d %H:%M:%S") if positions else "–"
    notes = [f"Started {started} UTC · last event {last} UTC"]
    if flow.matched_by != "saga_id":
        notes.append(f"found by {flow.matched_by.replace('_', ' ')} {tables.code_md(flow.key)}")
    st.caption(" · ".join(notes))
    if flow.related_sagas:
        related = ", ".join(f"[{_escape_md(s)}]({links.flow_url(s)})" for s in flow.related_sagas)
        st.caption(f"Other sagas on this trace or message: {related}")
    template = runtime.settings().dashboard.trace_url
    if template and flow.trace_ids:
        if "{trace_id}" not in template:
            st.warning("`dashboard.trace_url` must contain `{trace_id}`; no trace links shown.")
        else:
            traces = ", ".join(f"[{t[:16]}…]({template.replace('{trace_id}', t)})"
                               for t in flow.trace_ids)
            st.caption(f"Traces in your tracer: {traces}")


_escape_md = tables.escape_md


def why_box(diagnosis: SagaDiagnosis) -> str:
    """Markdown saying why the saga is where it is (stalled, running, failed)."""
    lines = []
    failure = diagnosis.failure
    if failure is not None:
        reason = f" ({_escape_md(failure.reason)})" if failure.reason else ""
        lines.append(f"**Failed at step {_escape_md(failure.step)}**: "
                     f"{tables.code_md(failure.error)} from *{_escape_md(failure.service)}*{reason}.")
    if diagnosis.status in ("running", "stalled", "compensating"):
        verb = "Stalled" if diagnosis.status == "stalled" else "Waiting"
        lines.append(
            f"**{verb} after step {_escape_md(diagnosis.last_step)}**: last message "
            f"{tables.code_md(diagnosis.last_type)} from *{_escape_md(diagnosis.last_source)}*."
        )
        if diagnosis.waiting_for:
            lines.append(f"**Waiting for** {_escape_md(diagnosis.waiting_for)} "
                         "(the usual next message after it, from the process map).")
        lines.append(
            f"**Silent for {figures.format_duration(diagnosis.silent_s)}** since "
            f"{diagnosis.since:%Y-%m-%d %H:%M:%S} UTC; threshold "
            f"**{figures.format_duration(diagnosis.threshold_s)}** from "
            f"`{diagnosis.threshold_source}`."
        )
    return "  \n".join(lines)


def _compensations(flow: Flow) -> list[dict[str, Any]]:
    """Each undo the saga asked for beside the step it undoes and the event completing it
    (caused by the undo, or of its step), as the Failures page pairs them."""
    done = {m.step: m for m in flow.messages if m.step and not m.compensates}
    pairs = []
    for i, m in enumerate(flow.messages):
        if not m.compensates or m.kind != "command":
            continue
        original = done.get(m.compensates)
        completion = next(
            (c for c in flow.messages[i + 1:] if c.kind != "command" and (
                c.causation_id == m.message_id or (c.step and c.step == m.step)
                or c.compensates == m.compensates)),
            None,
        )
        if completion is None:
            state = "pending"
        elif completion.saga_status == "failed" or "fail" in completion.type.lower():
            state = "failed"
        else:
            state = "completed"
        pairs.append({
            "undoes step": m.compensates,
            "step done at": original.event_time if original else None,
            "undo": m.type,
            "undo by": m.source,
            "undo at": m.event_time,
            "state": state,
            "completed by": completion.type if completion else "",
            "completed at": completion.event_time if completion else None,
        })
    return pairs


def _trace(flow: Flow) -> None:
    """The stored spans of one of the saga's traces as a waterfall (``?trace=`` picks one)."""
    st.subheader("Trace")
    spans = ask().trace_spans(flow.trace_ids)
    if not spans:
        st.caption("No spans stored for this saga's traces: services report them through "
                   "sagascope's `saga_handler` and instrumented producer.")
        return
    traces = list(dict.fromkeys(s.trace_id for s in spans))
    key = url_state.url_bound("trace", traces[0], strict=True)
    if st.session_state.get(key) not in traces:
        st.session_state[key] = traces[0]
    url_state.sync_url({"trace": traces[0]})
    if len(traces) > 1:
        labels = {t: f"{t[:16]}… ({sum(s.trace_id == t for s in spans)} spans)" for t in traces}
        st.markdown(choice_links.choices(st.query_params.to_dict(), "trace", labels, traces[0],
                                         title=f"Trace ({len(traces)} with spans)"),
                    unsafe_allow_html=True)
    chosen = str(st.session_state[key])
    frame = waterfall.waterfall_frame([s for s in spans if s.trace_id == chosen])
    totals = waterfall.trace_summary(frame)
    tiles.tiles([
        tiles.Tile("Spans", int(totals["spans"])),
        tiles.Tile("Handling", waterfall.ms_text(totals["handling_ms"]),
                   help="sum of the handler (CONSUMER) spans"),
        tiles.Tile("Waiting in Kafka", waterfall.ms_text(totals["waiting_ms"]),
                   help="from each message's PRODUCER span end to its handler's start"),
        tiles.Tile("Failed spans", int(totals["errors"])),
    ])
    if len(frame) > waterfall.MAX_SPANS:
        st.caption(f"Showing the first {waterfall.MAX_SPANS} of {len(frame):,} spans.")
    # Markdown, not st.html: st.html sanitizes SVG away.
    st.markdown(waterfall.trace_waterfall(frame, title=f"Trace {chosen}"), unsafe_allow_html=True)


def render() -> None:
    st.title("Flow explorer")
    key = _search_box()
    if not key:
        st.info("Search an order or saga id, a trace id or a message id to see its flow. "
                "Alerts link here with `?saga=<id>`.", icon=":material/search:")
        return
    if chrome.empty_store_notice():
        return
    try:
        flow = _find(key)
    except NotFound:
        st.warning(f"No saga, trace or message matches {tables.code_md(key)}. The search "
                   "covers all stored data, whatever the time range.",
                   icon=":material/search_off:")
        return
    _header(flow)
    diagnosis = ask().diagnosis(flow.saga_id) if flow.saga_id else None
    text = why_box(diagnosis) if diagnosis is not None else ""
    if text:
        st.markdown(f"<div class='why-box'>\n\n{text}\n\n</div>", unsafe_allow_html=True)
    now: datetime | None = None
    if diagnosis is not None and diagnosis.status in ("running", "stalled", "compensating"):
        now = diagnosis.as_of
    frame = swimlane_frame(flow)
    skewed = int((frame["skew_s"] > 0).sum())
    if skewed:
        st.caption(f":material/schedule: {skewed} message(s) carry an event time before the "
                   "message that caused them (a clock running behind): drawn just after their "
                   "cause and marked ⚠ skewed.")
    silent = diagnosis.silent_s if diagnosis is not None and now is not None else None
    st.markdown(figures.swimlane(frame, now=now, silent_s=silent), unsafe_allow_html=True)
    _trace(flow)

    pairs = _compensations(flow)
    if pairs:
        st.subheader("Compensations")
        st.html(tables.html_table(pd.DataFrame(pairs), time_format=_MILLISECONDS,
                                  label="Compensations"))

    st.subheader("Audit trail")
    st.caption("Messages in causal order (a consequence never before its cause), then by "
               "event time. Payloads are stored redacted.")
    # Plain tables: no data grid script for a first visit to load.
    st.html(tables.html_table(audit_table(flow), time_format=_MILLISECONDS,
                              numeric=("#", "copies"), label="Audit trail"))
    st.markdown("**Message details**: click a message for its headers and payload.")
    st.markdown(message_details(flow.messages), unsafe_allow_html=True)


if __name__ == "__main__":
    chrome.live(render)
