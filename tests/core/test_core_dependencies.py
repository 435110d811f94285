"""The architecture holds: imports between parts go only the way DESIGN.md draws them, every
package's ``__all__`` names exist, and the query side loads no Kafka client or metrics library.

Allowed directions ("A -> B": A may import B; each part may always import itself and the
base modules ``sagascope.settings``, ``sagascope.exceptions``, ``sagascope.connections``)::

    dashboard, alerter -> queries -> store -> instrumentation.contract
    collector ---------------------> store
    demo_services, replay, testing -> instrumentation
    alerter -> sagascope.embedded (create_topics, for its Kafka sink)
    cli, commands -> anything (only the CLI wires parts together)

Lower parts are reachable transitively (the alerter may read the store directly), nothing
imports upward, and the instrumentation imports nothing of ours but ``sagascope.exceptions``.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Source folder -> the installed package name it maps to (pyproject.toml package-dir).
FOLDERS = {
    "src/sagascope": "sagascope",
    "instrumentation": "sagascope.instrumentation",
    "store": "sagascope.store",
    "collector": "sagascope.collector",
    "queries": "sagascope.queries",
    "alerter": "sagascope.alerter",
    "dashboard": "sagascope.dashboard",
    "demo_services": "sagascope.demo_services",
}

#: Modules every part may import; they import nothing of ours but each other.
BASE = {"sagascope", "sagascope.settings", "sagascope.exceptions", "sagascope.connections"}

#: Part -> the parts it may import directly (besides itself and BASE). Transitive below.
DIRECT = {
    "instrumentation.contract": set(),
    "instrumentation": {"instrumentation.contract"},
    "store": {"instrumentation.contract"},
    "collector": {"store"},
    "queries": {"store"},
    "alerter": {"queries", "embedded"},
    "dashboard": {"queries"},
    "demo_services": {"instrumentation", "embedded"},
    "replay": {"instrumentation"},
    "testing": {"instrumentation"},
    "embedded": set(),
    "cli": {"*"},
}

#: The documented exceptions: (importing module, imported part).
EXCEPTIONS = {
    # Deprecated aliases kept for one release (README documented these paths).
    ("sagascope.collector.queries", "queries"),
    ("sagascope.collector.alerter", "alerter"),
    ("sagascope.collector.alerter", "queries"),  # Alert, list_alerts, flow_link lived there
    ("sagascope.collector", "queries"),  # the NotFound alias, loaded only when asked for
}


def _reachable(part: str) -> set[str]:
    seen: set[str] = set()
    todo = [part]
    while todo:
        for nxt in DIRECT.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def part_of(module: str) -> str:
    """The part a ``sagascope.*`` module belongs to ("base" for the shared base modules)."""
    if module in BASE:
        return "base"
    if module == "sagascope.instrumentation.contract":
        return "instrumentation.contract"
    parts = module.split(".")
    second = parts[1] if len(parts) > 1 else ""
    if second in {"instrumentation", "store", "collector", "queries", "alerter", "dashboard",
                  "demo_services", "replay", "testing", "embedded"}:
        return second
    if second in {"cli", "commands", "__main__"}:
        return "cli"
    # A module this test does not place yet: say where it belongs (DIRECT, BASE) to pass.
    return f"unplaced {module}"


def allowed(importer_module: str, target_module: str) -> bool:
    importer, target = part_of(importer_module), part_of(target_module)
    if importer.startswith("instrumentation") and target == "base":
        # What services embed stays free of the application: errors are its only link.
        return target_module == "sagascope.exceptions"
    if target == "base" or importer == target:
        return importer != "base" or target == "base"
    if importer == "instrumentation.contract" and target == "instrumentation":
        # contract's own exceptions module (instrumentation.exceptions) only
        return target_module == "sagascope.instrumentation.exceptions"
    if (importer_module, target) in EXCEPTIONS:
        return True
    if importer == "base" or importer.startswith("unplaced") or target.startswith("unplaced"):
        return False
    reach = _reachable(importer)
    return "*" in reach or target in reach or (
        target == "instrumentation.contract" and "instrumentation" in reach
    )


def module_name(path: Path) -> str:
    for folder, package in FOLDERS.items():
        base = ROOT / folder
        if path.is_relative_to(base):
            rel = path.relative_to(base).with_suffix("")
            names = [n for n in rel.parts if n != "__init__"]
            return ".".join([package, *names])
    raise AssertionError(f"{path} is in no part folder")


def imports_of(source: str, module: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every ``sagascope`` import in the source, lazy ones included.

    ``from package import name`` counts as an import of ``package.name`` when that is a
    module of ours (e.g. ``from sagascope.instrumentation import contract``).
    """
    package = module if module.count(".") and _is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "sagascope":
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != "sagascope":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if _is_module(sub) else base


def _is_package(module: str) -> bool:
    return any((ROOT / f).is_dir() and module == p for f, p in FOLDERS.items()) or any(
        (ROOT / folder / Path(*module[len(pkg) + 1:].split("."))).is_dir()
        for folder, pkg in FOLDERS.items()
        if module.startswith(pkg + ".")
    )


def _is_module(module: str) -> bool:
    for folder, package in FOLDERS.items():
        if module == package:
            return True
        if module.startswith(package + "."):
            rel = Path(*module[len(package) + 1:].split("."))
            if (ROOT / folder / rel).is_dir() or (ROOT / folder / rel).with_suffix(".py").is_file():
                return True
    return False


def source_files() -> Iterator[Path]:
    for folder in FOLDERS:
        yield from sorted((ROOT / folder).rglob("*.py"))


def violations() -> list[str]:
    found = []
    for path in source_files():
        module = module_name(path)
        for line, target in imports_of(path.read_text(), module):
            if not allowed(module, target):
                rel = path.relative_to(ROOT)
                found.append(f"{rel}:{line}: {part_of(module)} imports {target}")
    return found


def test_imports_between_parts_go_only_the_way_design_md_draws_them() -> None:
    assert {part_of(module_name(p)) for p in source_files()} >= {
        "instrumentation", "instrumentation.contract", "store", "collector", "queries",
        "alerter", "dashboard", "demo_services", "cli", "base",
    }
    assert violations() == []


@pytest.mark.parametrize(
    ("folder", "source"),
    [
        ("queries/extra.py", "from sagascope.collector import Collector"),
        ("store/extra.py", "import sagascope.queries.state"),
        ("collector/extra.py", "def f():\n    from sagascope.alerter import Alerter\n"),
        ("instrumentation/extra.py", "from sagascope.settings import Settings"),
        ("dashboard/extra.py", "from sagascope.commands import flow"),
        ("src/sagascope/settings_extra.py", "from sagascope.store import Store"),
        ("queries/extra.py", "from ..collector import Collector"),
        ("src/sagascope/newpart.py", "from sagascope.store import Store"),
    ],
)
def test_the_direction_check_catches_an_upward_import(folder: str, source: str) -> None:
    module = module_name(ROOT / folder)
    if folder.startswith("src/sagascope/settings"):
        module = "sagascope.settings"  # a base module importing a part
    targets = [target for _line, target in imports_of(source, module)]
    assert targets and not all(allowed(module, t) for t in targets)


def packages() -> list[str]:
    names = []
    for folder, package in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            names.append(".".join([package, *rel.parts]))
    return names


@pytest.mark.parametrize("package", packages())
def test_every_name_in_a_packages_all_exists(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    if package in ("sagascope.commands", "sagascope.dashboard.views"):
        assert exported is None or isinstance(exported, list)  # modules are loaded by name
        return
    assert isinstance(exported, list), f"{package} has no __all__"
    assert len(exported) == len(set(exported)), f"{package}.__all__ lists a name twice"
    missing = [name for name in exported if not hasattr(module, name)]
    assert missing == []


def modules_declaring_all() -> list[str]:
    names = []
    for path in source_files():
        if path.name != "__init__.py" and "__all__" in path.read_text():
            names.append(module_name(path))
    return names


@pytest.mark.parametrize("module_name", modules_declaring_all())
def test_every_name_in_a_modules_all_exists(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", [])
    assert [name for name in exported if not hasattr(module, name)] == []


@pytest.mark.parametrize("module", ["sagascope.queries", "sagascope.store"])
def test_the_read_side_loads_no_kafka_client_no_metrics_and_no_collector(module: str) -> None:
    probe = (
        f"import sys, {module}\n"
        "heavy = ('kafka', 'prometheus_client', 'sagascope.collector')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"


def test_the_probe_sees_kafka_when_the_collector_is_loaded() -> None:
    probe = "import sys, sagascope.collector\nprint('kafka' in sys.modules)\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "True"
