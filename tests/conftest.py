"""Session fixtures: the real embedded broker and a real chDB store, started once on free ports."""

from __future__ import annotations

import itertools
import os
import zlib
from collections.abc import Callable, Iterator

import pytest

from sagascope.embedded import EmbeddedBroker, create_topics


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--clickhouse-url",
        default=os.environ.get("SAGASCOPE_TEST_CLICKHOUSE_URL", ""),
        help="run store contract tests against this ClickHouse server too",
    )


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    """The embedded Tansu broker for the whole test session."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture(scope="session")
def bootstrap_servers(broker: EmbeddedBroker) -> str:
    return broker.bootstrap_servers


_topic_counter = itertools.count()


@pytest.fixture
def make_topic(bootstrap_servers: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Create a fresh topic with N partitions, named after the test and its parameters (the
    same test on another parameter, e.g. each collector client, must not match this run's
    topics with its prefix)."""

    def make(prefix: str = "t", partitions: int = 1) -> str:
        safe = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40]
        tag = f"{zlib.crc32(request.node.nodeid.encode()):08x}"
        name = f"{prefix}.{safe}-{tag}.{next(_topic_counter)}"
        create_topics(bootstrap_servers, {name: partitions})
        return name

    return make


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The one chDB data directory of this test process (chDB allows one per process)."""
    return str(tmp_path_factory.mktemp("chdb"))


_db_counter = itertools.count()


@pytest.fixture
def store(chdb_path: str):
    """A chDB store on a fresh database, with the schema created."""
    from sagascope.store import ChdbStore, ensure_schema

    s = ChdbStore(chdb_path, f"test_{os.getpid()}_{next(_db_counter)}")
    ensure_schema(s)
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")
