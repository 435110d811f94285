"""``sagascope serve`` from the user's side: their own saga system, on their own broker, watched
live while every other command and a ClickHouse client read the store ``serve`` holds."""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import clickhouse_connect
import pytest
from rental_system import BILLING_EVENTS, FLEET_COMMANDS, FLEET_EVENTS, RentalSystem
from waiting import wait_until

from sagascope.embedded import EmbeddedBroker

pytestmark = pytest.mark.slow

RENTALS = {f"R-{i}": f"B-{i}" for i in range(1, 6)}
LOST_BIKE = "B-3"  # fleet never answers for it: rental R-3 stalls at reserve-bike
# Four complete rentals of three messages, and the stalled one's command.
STORED = 4 * 3 + 1


class _Lines:
    """A process's output lines, read in a thread so a test can wait for one."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float = 120) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            return next((m for line in self.lines if (m := re.search(pattern, line))), None)

        return wait_until(found, timeout_s, f"a line matching {pattern!r} in {self.lines}")


@dataclass
class Served:
    store_path: Path
    env: dict[str, str]
    workdir: Path
    owner: dict[str, object]
    lines: list[str]

    def sagascope(self, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sagascope", *args], cwd=self.workdir,
                              env=self.env, capture_output=True, text=True, timeout=timeout_s)

    def client(self, password: str) -> clickhouse_connect.driver.Client:
        return clickhouse_connect.get_client(
            host="127.0.0.1", port=int(self.owner["port"]), username="grafana",  # type: ignore[call-overload]
            password=password, database="sagascope",
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve")
    store_path = workdir / "store"
    with EmbeddedBroker() as their_broker, RentalSystem(
        their_broker.bootstrap_servers, lost_bikes=frozenset({LOST_BIKE})
    ) as system:
        env = {**os.environ,
               "SAGASCOPE_STORE_PATH": str(store_path),
               "SAGASCOPE_BROKER_BOOTSTRAP_SERVERS": their_broker.bootstrap_servers,
               "SAGASCOPE_ALERTS_DEFAULT_THRESHOLD_S": "3",
               "SAGASCOPE_ALERTS_INTERVAL_S": "1"}
        env.pop("SAGASCOPE_CONFIG", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "sagascope", "serve", "--port", "0", "--metrics-port", "0"],
            cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        assert proc.stdout is not None
        output = _Lines(proc.stdout)
        try:
            output.wait_for(r"sagascope serve: running")
            for rental_id, bike in RENTALS.items():
                system.rent(rental_id, bike)
            owner = json.loads((store_path / "owner.json").read_text())
            served = Served(store_path, env, workdir, owner, output.lines)
            client = served.client(str(owner["token"]))
            wait_until(lambda: client.query("SELECT count() FROM messages").result_rows[0][0]
                       >= STORED, 120, f"the {STORED} messages stored")
            yield served
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0, "\n".join(output.lines[-40:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert not (store_path / "owner.json").exists(), "serve removes its owner file when it stops"


def test_serve_prints_one_line_per_part(served: Served) -> None:
    text = "\n".join(served.lines)
    port = served.owner["port"]
    assert re.search(rf"store {re.escape(str(served.store_path))} .* at http://127\.0\.0\.1:{port}",
                     text)
    assert re.search(r"broker at 127\.0\.0\.1:\d+ \(PLAINTEXT\)", text)
    assert re.search(r"dashboard at http://\S+", text)
    assert re.search(r"saga metrics at http://\S+/metrics", text)


def test_flow_answers_while_serve_runs(served: Served) -> None:
    result = served.sagascope("flow", "R-1")
    assert result.returncode == 0, result.stderr
    for type_ in ("ReserveBike", "BikeReserved", "DepositCharged"):
        assert type_ in result.stdout
    for topic in (FLEET_COMMANDS, FLEET_EVENTS, BILLING_EVENTS):
        assert topic in result.stdout


def test_stalled_answers_while_serve_runs(served: Served) -> None:
    result = served.sagascope("stalled", "--json")
    assert result.returncode == 0, result.stderr
    stalled = [json.loads(line)["saga_id"] for line in result.stdout.splitlines()]
    assert stalled == ["R-3"]


def test_alerts_answers_while_serve_runs(served: Served) -> None:
    def listed() -> str:
        result = served.sagascope("alerts")
        assert result.returncode == 0, result.stderr
        return result.stdout if "R-3" in result.stdout else ""

    wait_until(listed, 60, "the stalled rental's alert, listed by sagascope alerts")


def test_verify_passes_while_serve_runs(served: Served) -> None:
    result = served.sagascope("verify")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_second_dashboard_serves_while_serve_runs(served: Served) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagascope", "dashboard", "--port", "0"], cwd=served.workdir,
        env=served.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    output = _Lines(proc.stdout)
    try:
        output.wait_for(rf"reading the store through its owner, pid {served.owner['pid']}")
        url = output.wait_for(r"sagascope dashboard: (http://\S+)").group(1)
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_clickhouse_client_reads_the_tables_with_the_token(served: Served) -> None:
    client = served.client(str(served.owner["token"]))
    rows = client.query(
        "SELECT saga_id, count() FROM messages WHERE saga_type = {t:String} "
        "GROUP BY saga_id ORDER BY saga_id", parameters={"t": "bike-rental"},
    ).result_rows
    assert rows == [("R-1", 3), ("R-2", 3), ("R-3", 1), ("R-4", 3), ("R-5", 3)]


def test_without_the_token_the_read_server_refuses(served: Served) -> None:
    with pytest.raises(clickhouse_connect.driver.exceptions.DatabaseError, match="516"):
        served.client("not-the-token").query("SELECT count() FROM messages")
    request = urllib.request.Request(
        f"http://127.0.0.1:{served.owner['port']}/?query=SELECT+count()+FROM+sagascope.messages")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 401


def test_the_read_server_listens_on_loopback_only(served: Served) -> None:
    port = int(served.owner["port"])  # type: ignore[call-overload]
    listening = _listening_addresses(port)
    assert listening == {"127.0.0.1"}
    others = _non_loopback_addresses()
    if not others:
        pytest.skip("this host has no non-loopback IPv4 address to try")
    for address in others:
        with pytest.raises(OSError), socket.create_connection((address, port), timeout=3):
            pass


def _listening_addresses(port: int) -> set[str]:
    """IPv4 and IPv6 addresses a socket listens on at ``port`` (from /proc/net/tcp*)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                if len(raw) == 4:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def _non_loopback_addresses() -> list[str]:
    """This host's IPv4 addresses outside 127/8 (SIOCGIFADDR on each interface)."""
    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:
                continue  # no IPv4 address on this interface
            address = socket.inet_ntoa(packed[20:24])
            if not address.startswith("127."):
                addresses.append(address)
    return addresses
