"""Debian's stunnel4 as a real TLS terminator in front of a plaintext listener (Tansu, HTTP)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from types import TracebackType

from processes import end
from waiting import poll_until

from sagascope.embedded import free_port

STUNNEL = shutil.which("stunnel4") or "/usr/bin/stunnel4"


class Stunnel:
    """TLS on ``127.0.0.1:port`` forwarded to ``127.0.0.1:target_port``.

    With ``client_ca`` set, clients must present a certificate that CA signed (mutual TLS).
    """

    def __init__(
        self,
        directory: Path,
        target_port: int,
        cert: Path,
        key: Path,
        *,
        client_ca: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.directory = directory
        self.log_path = directory / f"stunnel-{self.port}.log"
        lines = [
            "foreground = yes",
            f"output = {self.log_path}",
            "debug = 5",
            "[tls]",
            f"accept = 127.0.0.1:{self.port}",
            f"connect = 127.0.0.1:{target_port}",
            f"cert = {cert}",
            f"key = {key}",
        ]
        if client_ca is not None:
            lines += [f"CAfile = {client_ca}", "verify = 2"]
        self.config_path = directory / f"stunnel-{self.port}.conf"
        self.config_path.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> Stunnel:
        self._process = subprocess.Popen(
            [STUNNEL, str(self.config_path)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if poll_until(self._listening, timeout_s, 0.05):
            return self
        self.stop()
        raise RuntimeError(f"stunnel did not listen on {self.port}")

    def _listening(self) -> bool:
        assert self._process is not None
        if self._process.poll() is not None:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"stunnel exited with {self._process.returncode}: {log[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self._process = self._process, None
        end(process)

    def __enter__(self) -> Stunnel:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
