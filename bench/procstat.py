"""Resident memory of processes, from ``/proc`` (Linux; the benchmarks' one copy of it)."""

from __future__ import annotations

import os
from pathlib import Path


def rss_kb(pid: int | str = "self") -> int:
    """Resident memory of one process in kB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_mb(pid: int | str = "self") -> float:
    """Resident memory of one process in MB (0 once it is gone)."""
    return rss_kb(pid) / 1024


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid`` (children, their children, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found
