"""Who holds an embedded store, and how the other processes reach it.

A chDB data directory opens in one process only. The process that opens it to write (``serve``,
``collect``, ``demo``, ``alert`` when it is the first) is its *owner*: it serves reads on
loopback (:mod:`sagascope.store.serving`) and writes ``owner.json`` beside the data, readable
by its user only::

    {"pid": 4242, "command": "sagascope serve", "port": 40123,
     "token": "...", "alerts_token": "..."}

``token`` reads (SELECT, SHOW, DESCRIBE, EXISTS, WITH); it is the password for
clickhouse-connect or Grafana. ``alerts_token`` also inserts into the alert tables (``alerts``,
``alert_acks``), so ``sagascope alert`` and a second dashboard's acknowledgements work beside a
``collect`` owner; nothing else is ever written by another process. A reader finds the file,
checks that the pid lives (a dead owner's file is removed), and connects.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import secrets
import shlex
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from sagascope.store.chdb import ChdbStore
from sagascope.store.exceptions import StoreHeld
from sagascope.store.server import ClickHouseStore
from sagascope.store.serving import LOOPBACK, READ_ONLY, ChdbHttpServer, Grant

log = logging.getLogger(__name__)

#: The owner's record, in the store's data directory.
OWNER_FILE = "owner.json"
#: The tables ``alerts_token`` may insert into: the alert lifecycle and its acknowledgements.
ALERT_TABLES = frozenset({"alerts", "alert_acks"})
#: The user name readers send (the server checks only the token).
READER_USER = "sagascope"


@dataclass(frozen=True)
class OwnerRecord:
    """What ``owner.json`` says: the owning process and how to reach its read server."""

    pid: int
    command: str
    port: int
    token: str
    alerts_token: str

    @property
    def url(self) -> str:
        """The read server's address (credentials apart)."""
        return f"http://{LOOPBACK}:{self.port}"

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})"


def owner_file(path: str) -> Path:
    return Path(path) / OWNER_FILE


def read_owner(path: str) -> OwnerRecord | None:
    """The live owner of the store at ``path``, or None; a dead owner's file is removed."""
    file = owner_file(path)
    try:
        record = OwnerRecord(**json.loads(file.read_text("utf-8")))
    except FileNotFoundError:
        return None
    except PermissionError as exc:
        raise StoreHeld(
            f"cannot read {file} ({exc.strerror}): the store is owned by another user; "
            "run this command as that user"
        ) from None
    except (ValueError, TypeError) as exc:
        log.warning("ignoring unreadable owner file %s: %s", file, exc)
        return None
    if record.pid != os.getpid() and not pid_alive(record.pid):
        discard_owner_file(path, record)
        return None
    return record


def discard_owner_file(path: str, record: OwnerRecord) -> None:
    """Remove the file of an owner that is gone (its pid dead, or holding nothing)."""
    log.warning("removing the stale owner file of %s in %s", record.describe(), path)
    with contextlib.suppress(FileNotFoundError):
        owner_file(path).unlink()


def holder(path: str) -> tuple[int, str] | None:
    """The live process holding chDB's lock on ``path`` (pid, command line), from chDB's
    ``status`` file; None when no live process holds it."""
    try:
        text = (Path(path) / "status").read_text("utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "PID" and value.strip().isdigit():
            pid = int(value.strip())
            if pid != os.getpid() and pid_alive(pid) and _has_open(pid, Path(path) / "status"):
                return pid, process_command(pid)
    return None


def _has_open(pid: int, file: Path) -> bool:
    """Whether ``pid`` has ``file`` open (chDB keeps its lock file open); True when this
    process may not look (another user's), as the lock then tells."""
    target = os.path.realpath(file)
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except PermissionError:
        return True
    except OSError:
        return False
    for fd in descriptors:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                return True
        except OSError:
            continue
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    return True


def process_command(pid: int) -> str:
    """The command line of ``pid`` (Linux's /proc), or ``unknown command``."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "unknown command"
    args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
    command = _short_command(args)
    # A `python -c` script would fill the screen; the start of the line names it well enough.
    return (command[:157] + "...") if len(command) > 160 else command or "unknown command"


def _short_command(args: list[str]) -> str:
    # "python -m sagascope serve" and ".venv/bin/sagascope serve" both read "sagascope serve".
    for i, arg in enumerate(args):
        if os.path.basename(arg) == "sagascope" or arg.endswith("sagascope/__main__.py"):
            return shlex.join(["sagascope", *args[i + 1 :]])
        if arg == "-m" and i + 1 < len(args) and args[i + 1] == "sagascope":
            return shlex.join(["sagascope", *args[i + 2 :]])
    return shlex.join(args)


class StoreOwner:
    """This process owns the embedded store: it serves reads on loopback and says so in
    ``owner.json``; :meth:`close` (or the process's exit) stops both."""

    def __init__(self, store: ChdbStore) -> None:
        self.store = store
        self.path = store.path
        token, alerts_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self._server = ChdbHttpServer(
            store, tokens={token: READ_ONLY, alerts_token: Grant(insert_tables=ALERT_TABLES)}
        ).start()
        self.record = OwnerRecord(
            pid=os.getpid(),
            command=process_command(os.getpid()),
            port=self._server.port,
            token=token,
            alerts_token=alerts_token,
        )
        self._closed = threading.Event()
        _write_private(owner_file(self.path), json.dumps(asdict(self.record), indent=1) + "\n")
        atexit.register(self.close)
        log.info("store %s: serving reads at %s", self.path, self.record.url)

    @property
    def url(self) -> str:
        return self.record.url

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._server.stop()
        file = owner_file(self.path)
        try:
            mine = json.loads(file.read_text("utf-8")).get("pid") == self.record.pid
        except (OSError, ValueError):
            mine = False
        if mine:
            with contextlib.suppress(FileNotFoundError):
                file.unlink()


def _write_private(file: Path, text: str) -> None:
    """Write ``text`` to ``file`` atomically, readable and writable by this user only."""
    temporary = file.with_name(f".{file.name}.{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(temporary, file)


class StoreThroughOwner(ClickHouseStore):
    """The embedded store of another process, through its read server.

    ``read_only`` (the default) sends ``token``; otherwise ``alerts_token``, which may also
    insert into the alert tables (nothing else: schema changes stay with the owner).
    """

    backend = "owner"

    def __init__(self, owner: OwnerRecord, database: str, *, read_only: bool = True) -> None:
        import clickhouse_connect

        try:
            client = clickhouse_connect.get_client(
                host=LOOPBACK, port=owner.port, username=READER_USER,
                password=owner.token if read_only else owner.alerts_token,
                database=database, compress=False, connect_timeout=10,
            )
        except Exception as exc:
            raise StoreHeld(
                f"the store is held by {owner.describe()}, whose read server at {owner.url} "
                f"does not answer ({type(exc).__name__}); is that process stuck? "
                "Stop it, or wait for it to finish"
            ) from None
        super().__init__(owner.url, database, read_only=read_only, client=client)
        self.owner = owner
