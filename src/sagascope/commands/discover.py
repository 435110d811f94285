"""``sagascope discover``: propose correlation rules for topics whose messages carry no
saga headers, show what they would achieve, and with ``--write`` add them to sagascope.toml.

Reads Kafka with no consumer group (partitions assigned, nothing committed), or with
``--from-store`` the records already stored without a saga.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagascope.settings import DEFAULT_CONFIG_FILE, ENV_CONFIG_FILE, Settings

if TYPE_CHECKING:
    from sagascope.collector.discover import Proposal
    from sagascope.queries import Flow


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic", action="append", default=[], metavar="REGEX",
        help="topics to sample (regex over the whole name; repeatable); default: every topic "
             "but Kafka's and sagascope's own",
    )
    parser.add_argument("--sample", type=int, default=2000, metavar="N",
                        help="latest records sampled per topic (default 2000)")
    parser.add_argument("--from-store", action="store_true",
                        help="learn from the records stored without a saga instead of Kafka")
    parser.add_argument("--flows", type=int, default=3, metavar="K",
                        help="sample flows to print (default 3)")
    parser.add_argument("--write", action="store_true",
                        help="add the proposed rules to the config file (--config, "
                             "SAGASCOPE_CONFIG or ./sagascope.toml)")
    parser.add_argument("--force", action="store_true",
                        help="with --write: replace configured rules for the same topics")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sagascope.collector.discover import discover, render_rules, write_rules
    from sagascope.exceptions import SagascopeError

    if args.sample < 1:
        raise SagascopeError(f"--sample must be at least 1, got {args.sample}")
    records = _sample(args, settings)
    if not records:
        raise SagascopeError("no records to learn from on the chosen topics")
    proposal = discover(records)
    print(f"sampled {len(records)} records on {len(proposal.topics)} topics\n")
    if not proposal.rules:
        print("no field ties records of these topics into flows; nothing to propose")
    else:
        print("proposed rules:\n")
        print(render_rules(proposal))
    print(format_report(proposal, args.flows))
    if args.write and proposal.rules:
        path = Path(args.config or os.environ.get(ENV_CONFIG_FILE) or DEFAULT_CONFIG_FILE)
        replaced = write_rules(path, proposal, force=args.force)
        note = f" (replacing the rules for {', '.join(replaced)})" if replaced else ""
        print(f"\nwrote {len(proposal.rules)} rules to {path}{note}")
    return 0


def _sample(args: argparse.Namespace, settings: Settings) -> list[Any]:
    from sagascope.collector.discover import sample_kafka, sample_store

    if args.from_store:
        from sagascope.store import open_store_from_settings

        store = open_store_from_settings(settings.store, read_only=True)
        try:
            return sample_store(store, args.topic, args.sample)
        finally:
            store.close()
    from sagascope.commands._connect import kafka_client_config

    config = kafka_client_config(settings, "discover")
    config["client_id"] = f"{settings.broker.client_id}-discover"
    return sample_kafka(config, args.topic, args.sample)


def format_report(proposal: Proposal, flows: int) -> str:
    """What the rules achieve on the sample, what was set aside, what stays unclear, and a
    few flows as ``sagascope flow`` prints them."""
    from sagascope.commands.flow import format_flow, format_table

    lines = []
    share = proposal.correlated / proposal.records if proposal.records else 0.0
    by_saga = proposal.flows()
    lines.append(f"with these rules: {proposal.correlated}/{proposal.records} sampled records "
                 f"({share:.0%}) tied into {len(by_saga)} flows")
    dist = proposal.length_distribution()
    if dist:
        lines.append("flow length: " + ", ".join(f"{k} {v:g}" for k, v in dist.items()))
        statuses = proposal.statuses()
        lines.append("flow status: " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    rows = []
    for f in proposal.topics:
        rows.append([
            f.topic, str(f.records), str(f.correlated), f.saga_id or "-", f.type or "-",
            f"{f.event_time.spec} ({f.event_time.unit})" if f.event_time else "Kafka time",
            f.outcome.spec if f.outcome else "-", f.unattached,
        ])
    lines += ["", format_table(
        ["topic", "records", "in flows", "saga id", "type", "event time", "outcome", "unattached"],
        rows)]
    if proposal.rejected:
        lines += ["", "set aside:"] + [f"  - {r}" for r in proposal.rejected]
    if proposal.ambiguities:
        lines += ["", "not decided:"] + [f"  - {a}" for a in proposal.ambiguities]
    for saga_id in _examples(by_saga, flows):
        lines += ["", format_flow(as_flow(saga_id, by_saga[saga_id]))]
    return "\n".join(lines)


def _examples(by_saga: Mapping[str, Sequence[Mapping[str, Any]]], count: int) -> list[str]:
    """Up to ``count`` flows, one per status first, the longest of each."""
    from sagascope.collector.discover import flow_status

    ranked = sorted(by_saga, key=lambda s: (-len(by_saga[s]), s))
    chosen: list[str] = []
    seen: set[str] = set()
    for saga_id in ranked:
        status = flow_status(by_saga[saga_id])
        if status not in seen:
            seen.add(status)
            chosen.append(saga_id)
    chosen += [s for s in ranked if s not in chosen]
    return chosen[:max(count, 0)]


def as_flow(saga_id: str, rows: Sequence[Mapping[str, Any]]) -> Flow:
    """Decoded rows (not stored) as the query layer's ``Flow``, in event-time order."""
    from sagascope.collector.discover import flow_status
    from sagascope.collector.discover.proposal import row_time
    from sagascope.queries import Flow, FlowMessage

    messages = [
        FlowMessage.from_row(
            {**row, "event_time": row_time(row["event_time"]),
             "kafka_time": row_time(row["kafka_time"]), "duplicates": 0, "copies": ()},
            cause_missing=False, skew_s=0.0, depth=0,
        )
        for row in rows
    ]
    return Flow(
        key=saga_id, matched_by="saga_id", saga_id=saga_id,
        saga_type=messages[0].saga_type if messages else "", status=flow_status(rows),
        messages=messages, trace_ids=(),
        started=messages[0].event_time if messages else None,
        last_event=max((m.event_time for m in messages), default=None),
    )
