"""Flags that set a setting: the one spelling of a flag, its setting and its environment variable."""

from __future__ import annotations

import argparse
from typing import Any

from sagascope.settings import env_name


def setting_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *flags: str,
    setting: str,
    help: str,
    **options: Any,
) -> None:
    """Add ``flags``, which set ``setting`` (``"section.name"``) over the file and the
    environment; the help ends naming the setting's environment variable."""
    parser.add_argument(*flags, dest=setting, help=f"{help} (env {env_name(setting)})", **options)


def add_collector_topic_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that choose what the collector reads (``collect`` and ``serve``)."""
    setting_flag(parser, "--group-id", setting="collector.group_id", metavar="GROUP",
                 help="the collector's consumer group")
    setting_flag(parser, "--include", setting="collector.include", metavar="REGEX",
                 help="topics to collect")
    setting_flag(parser, "--exclude", setting="collector.exclude", metavar="REGEX",
                 help="topics never collected")
