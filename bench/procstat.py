"""Resident memory of processes, from ``/proc`` (Linux; the benchmarks' one copy of it)."""

from __future__ import annotations

import os
from pathlib import Path


def _fields_kb(path: str, *names: str) -> dict[str, int]:
    """Fields of a ``/proc`` file of ``Name:  value kB`` lines (each 0 once the process is gone)."""
    found = dict.fromkeys(names, 0)
    try:
        for line in Path(path).read_text().splitlines():
            head = line.split(None, 1)[0] if line else ""
            if head in found:
                found[head] = int(line.split()[1])
    except OSError:
        pass
    return found


def rss_kb(pid: int | str = "self") -> int:
    """Resident memory of one process in kB (0 once it is gone)."""
    return _fields_kb(f"/proc/{pid}/status", "VmRSS:")["VmRSS:"]


def rss_split_mb(pid: int | str = "self") -> tuple[float, float]:
    """(anonymous, file-backed) resident memory of one process in MB; file-backed pages are
    mapped files such as shared libraries (chDB's engine is one), shared with other
    processes that map the same file. (0, 0) once it is gone."""
    found = _fields_kb(f"/proc/{pid}/status", "RssAnon:", "RssFile:", "RssShmem:")
    return (found["RssAnon:"] + found["RssShmem:"]) / 1024, found["RssFile:"] / 1024


def pss_split_mb(pid: int | str = "self") -> tuple[float, float]:
    """(anonymous, file-backed) proportional set size of one process in MB, from
    ``/proc/<pid>/smaps_rollup``: each shared page counts 1/n in each of the n processes that
    map it, so the PSS of a set of processes counts a page they share once (a shared library
    mapped by a process outside the set counts in part only). (0, 0) once it is gone."""
    found = _fields_kb(f"/proc/{pid}/smaps_rollup", "Pss_Anon:", "Pss_File:", "Pss_Shmem:")
    return (found["Pss_Anon:"] + found["Pss_Shmem:"]) / 1024, found["Pss_File:"] / 1024


def command_line(pid: int) -> str:
    """The command line of a process ('' once it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


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
