"""The architecture holds: imports between parts go only the way DESIGN.md draws them, with no
exception; no module of ours imports itself round a circle; every package's ``__all__`` is
complete and names only what exists; and the query side loads no Kafka client or metrics library.

Allowed directions ("A -> B": A may import B; each part may always import itself and the
base modules ``sagascope.settings``, ``sagascope.exceptions``, ``sagascope.connections``)::

    dashboard, alerter -> queries -> store -> instrumentation.contract
    collector ---------------------> store
    demo_services, replay, testing -> instrumentation
    alerter -> sagascope.embedded (create_topics, for its Kafka sink)
    broker_check -> (base only: the connection check the CLI runs)
    cli, commands -> anything (only the CLI wires parts together)

Lower parts are reachable transitively (the alerter may read the store directly), nothing
imports upward, and the instrumentation imports nothing of ours but ``sagascope.exceptions``.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
import types
from collections.abc import Callable, Collection, Iterator, Mapping
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
    "broker_check": set(),
    "cli": {"*"},
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
                  "demo_services", "replay", "testing", "embedded", "broker_check"}:
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


def imports_of(
    source: str, module: str, modules: Collection[str] | None = None
) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of our own package in the source, lazy ones included.

    ``from package import name`` counts as an import of ``package.name`` when that is a
    module of ours (e.g. ``from sagascope.instrumentation import contract``). ``modules``: the
    modules there are (default: sagascope's, as the folders hold them).
    """
    is_module: Callable[[str], bool] = _is_module if modules is None else modules.__contains__
    is_package = _is_package if modules is None else (
        lambda name: any(m.startswith(name + ".") for m in modules)
    )
    top = module.split(".")[0]
    package = module if module.count(".") and is_package(module) else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == top:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != top:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                yield node.lineno, sub if is_module(sub) else base


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


def module_files(folders: Mapping[Path, str]) -> dict[str, Path]:
    """Module name -> file, for folders given as folder -> the package name it maps to."""
    files = {}
    for folder, package in folders.items():
        for path in sorted(folder.rglob("*.py")):
            names = [n for n in path.relative_to(folder).with_suffix("").parts if n != "__init__"]
            files[".".join([package, *names])] = path
    return files


def import_graph(folders: Mapping[Path, str]) -> dict[str, set[str]]:
    """Module -> the modules of ours it imports (lazy imports included)."""
    files = module_files(folders)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets = {target for _line, target in imports_of(path.read_text(), module, files)}
        # `import a.b.c` of a name that is no module: the deepest module it names
        graph[module] = {_deepest_module(t, files) for t in targets} - {None, module}  # type: ignore[misc]
    return graph


def _deepest_module(name: str, modules: Collection[str]) -> str | None:
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_circles(graph: Mapping[str, Collection[str]]) -> list[list[str]]:
    """Every group of modules that import each other round a circle (Tarjan's strongly
    connected components with more than one module), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(circles)


def test_no_module_of_ours_imports_itself_round_a_circle() -> None:
    graph = import_graph({ROOT / folder: package for folder, package in FOLDERS.items()})
    assert len(graph) > 100 and graph["sagascope.alerter.registry"]  # the graph is read
    assert import_circles(graph) == []


def test_the_circle_check_finds_a_planted_circle(tmp_path: Path) -> None:
    package = tmp_path / "planted"
    (package / "inner").mkdir(parents=True)
    sources = {
        "__init__.py": "",
        "a.py": "from planted.b import thing\n",
        "b.py": "import planted.inner.c\nthing = 1\n",
        # lazy, relative and through a package: still a circle back to a
        "inner/__init__.py": "",
        "inner/c.py": "def later():\n    from .. import a\n    return a\n",
        "d.py": "from planted import a\n",  # imports into the circle, is not part of it
    }
    for name, text in sources.items():
        (package / name).write_text(text)
    graph = import_graph({package: "planted"})
    assert import_circles(graph) == [["planted.a", "planted.b", "planted.inner.c"]]
    (package / "inner/c.py").write_text("def later():\n    return 1\n")
    assert import_circles(import_graph({package: "planted"})) == []


def packages() -> list[str]:
    names = []
    for folder, package in FOLDERS.items():
        for init in sorted((ROOT / folder).rglob("__init__.py")):
            rel = init.parent.relative_to(ROOT / folder)
            names.append(".".join([package, *rel.parts]))
    return names


def public_names(module: types.ModuleType, *, constants: bool) -> list[str]:
    """The public names a module's namespace holds that it (a package: it or its submodules)
    defines, as httpx's ``test_all_imports_are_exported`` reads them; names imported from
    elsewhere for its own use (``Any``, another part's types) aside. A constant does not say
    where it was defined: with ``constants`` it counts as defined here."""
    home = module.__name__

    def defined_here(value: object) -> bool:
        where = getattr(value, "__module__", None)
        if not isinstance(where, str):  # a constant: only classes and functions say
            return constants
        return where == home or (hasattr(module, "__path__") and where.startswith(home + "."))

    return sorted(
        name for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
        and defined_here(value)
    )


@pytest.mark.parametrize("package", packages())
def test_a_packages_all_is_complete_and_names_only_what_exists(package: str) -> None:
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", None)
    if package in ("sagascope.commands", "sagascope.dashboard.views"):
        assert exported is None or isinstance(exported, list)  # modules are loaded by name
        return
    assert isinstance(exported, list), f"{package} has no __all__"
    assert len(exported) == len(set(exported)), f"{package}.__all__ lists a name twice"
    assert [name for name in exported if not hasattr(module, name)] == []
    left_out = [n for n in public_names(module, constants=True) if n not in exported]
    assert left_out == [], f"{package}.__all__ leaves these out: export them or make them private"


def test_the_completeness_check_sees_a_name_left_out() -> None:
    planted = types.ModuleType("planted")
    exec(
        "from typing import Any\n"
        "LIMIT = 3\n"
        "def listed(x: Any) -> None: ...\n"
        "def forgotten() -> None: ...\n"
        "__all__ = ['listed']\n",
        vars(planted),
    )
    assert public_names(planted, constants=True) == ["LIMIT", "forgotten", "listed"]
    assert public_names(planted, constants=False) == ["forgotten", "listed"]


def modules_declaring_all() -> list[str]:
    names = []
    for path in source_files():
        if path.name != "__init__.py" and "__all__" in path.read_text():
            names.append(module_name(path))
    return names


@pytest.mark.parametrize("module_name", modules_declaring_all())
def test_a_modules_all_lists_its_functions_and_classes_and_only_what_exists(
    module_name: str,
) -> None:
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", [])
    assert [name for name in exported if not hasattr(module, name)] == []
    # Its constants cannot be told from imported ones at run time: functions and classes.
    left_out = [n for n in public_names(module, constants=False) if n not in exported]
    assert left_out == [], f"{module_name}.__all__ leaves these out"


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
