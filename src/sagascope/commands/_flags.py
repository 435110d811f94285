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
