"""The rooms of ``tasks/`` keep to the house plan (DESIGN.md, "The house"): planning and
migration never import each other (what both need lives in a room both may import:
``tasks/policies``, ``tasks/rules``), no module of ``tasks/`` reaches up into ``flows``,
``reports`` or the emulator, the rooms import each other in no circle, and only
``tasks/policies`` builds backup policy bodies.

Imports are read from the source with ``ast`` at any depth (inside functions too, where the
lazy imports are), relative ones resolved, so a failure names the file and line to change."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tasks"
# Pairs of rooms that must not import each other, in either direction.
APART = [("tasks.planning", "tasks.migration")]
# Packages above ``tasks`` in the house: nothing in ``tasks`` imports them.
ABOVE = ("flows", "reports", "emulator")
# Keys only a policy body sets: a module that writes them builds a policy body.
BODY_KEYS = frozenset({"snapshotConsistencyType", "schedulePolicy", "retentionPolicy",
                       "policyType", "instantRpRetentionRangeInDays"})
POLICY_ROOM = "tasks.policies"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, dotted name) for every import in ``tree``, relative ones made absolute; for
    ``from X import y`` both ``X`` and ``X.y`` (``y`` may be a submodule)."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            if node.module or not node.level:
                yield node.lineno, target
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}"
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name)
                       and node.func.id in ("import_module", "__import__")))):
            yield node.lineno, node.args[0].value


def within(name: str, room: str) -> bool:
    return name == room or name.startswith(room + ".")


def room_of(module: str) -> str:
    return ".".join(module.split(".")[:2])


def scan(root: Path = ROOT) -> Iterator[tuple[str, int, str, str]]:
    """(file relative to ``root``, line, importing module, imported name) for ``tasks/``."""
    for path in sorted((root / "tasks").rglob("*.py")):
        module = module_name(path, root)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, name in imported(tree, module, path.name == "__init__.py"):
            yield path.relative_to(root).as_posix(), line, module, name


def room_violations(root: Path = ROOT) -> list[str]:
    out = []
    for where, line, module, name in scan(root):
        for a, b in APART:
            for mine, theirs in ((a, b), (b, a)):
                if within(module, mine) and within(name, theirs):
                    out.append(f"{where}:{line}: {module} imports {name}: {mine} and {theirs} "
                               "must not import each other; put what both need in a room "
                               "both may import (tasks/policies, tasks/rules)")
        top = name.split(".")[0]
        if top in ABOVE:
            out.append(f"{where}:{line}: {module} imports {name}: tasks/ never imports "
                       f"{top} (it sits above tasks in the house)")
    return sorted(set(out))


def is_room(root: Path, room: str) -> bool:
    """A room is a package of ``tasks`` (``tasks/azure``, ``tasks/policies``, ...). The modules
    beside them (``errors``, ``settings``, ``lifetime``) are the floor every room stands on, not
    rooms: the settings check their own values with the rooms' rules (a template with
    ``policies.naming``), lazily, inside a validator."""
    return (root / Path(*room.split(".")) / "__init__.py").is_file()


def room_cycles(root: Path = ROOT) -> list[str]:
    """Each circle of imports between rooms (``tasks.<room>``), with one import per edge."""
    edges: dict[str, dict[str, str]] = {}
    for where, line, module, name in scan(root):
        mine, theirs = room_of(module), room_of(name)
        if (within(name, "tasks") and mine != theirs and is_room(root, mine)
                and is_room(root, theirs)):
            edges.setdefault(mine, {}).setdefault(theirs, f"{where}:{line} imports {name}")
    cycles, seen = [], set()

    def walk(node: str, path: list[str]) -> None:
        for nxt in sorted(edges.get(node, {})):
            if nxt in path:
                loop = [*path[path.index(nxt):], nxt]
                key = frozenset(loop)
                if key not in seen:
                    seen.add(key)
                    cycles.append(" -> ".join(loop) + " (" + "; ".join(
                        edges[x][y] for x, y in itertools.pairwise(loop)) + ")")
            elif len(path) < 12:
                walk(nxt, [*path, nxt])

    for start in sorted(edges):
        walk(start, [start])
    return cycles


def body_builders(root: Path = ROOT) -> list[str]:
    """Places outside tasks/policies that set a key only a backup policy body has."""
    out = []
    for path in sorted((root / "tasks").rglob("*.py")):
        module = module_name(path, root)
        if within(module, POLICY_ROOM):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            keys: list[ast.expr] = []
            if isinstance(node, ast.Dict):
                keys = [k for k in node.keys if k is not None]
            elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store | ast.Del):
                keys = [node.slice]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                  and node.func.attr in ("pop", "setdefault") and node.args):
                keys = [node.args[0]]
            for key in keys:
                if isinstance(key, ast.Constant) and key.value in BODY_KEYS:
                    out.append(f"{path.relative_to(root).as_posix()}:{node.lineno}: sets "
                               f"{key.value!r}: policy bodies are built in tasks/policies")
    return out


def test_planning_and_migration_do_not_import_each_other_nor_anything_above_tasks():
    problems = room_violations()
    assert not problems, "\n".join(problems)


def test_the_rooms_of_tasks_import_each_other_in_no_circle():
    cycles = room_cycles()
    assert not cycles, "\n".join(cycles)


def test_only_the_policy_room_builds_policy_bodies():
    found = body_builders()
    assert not found, "\n".join(found)


# The checker itself: each way of writing an import is caught, with its file and line.
@pytest.mark.parametrize(("path", "source", "line", "caught"), [
    ("tasks/planning/a.py", "from ..migration.move import Mover\n", 1, "tasks.migration.move"),
    ("tasks/planning/a.py", "def f():\n    from ..migration import mua\n", 2,
     "tasks.migration.mua"),
    ("tasks/planning/__init__.py", "from ..migration import x\n", 1, "tasks.migration"),
    ("tasks/planning/a.py", "from tasks import migration\n", 1, "tasks.migration"),
    ("tasks/migration/a.py", "import tasks.planning.waves as w\n", 1, "tasks.planning.waves"),
    ("tasks/migration/deep/a.py", "from ...planning import classify\n", 1, "tasks.planning"),
    ("tasks/migration/a.py",
     "import importlib\nm = importlib.import_module('tasks.planning.waves')\n", 2,
     "tasks.planning.waves"),
    ("tasks/rules/a.py", "def f():\n    import flows.plan\n", 2, "flows.plan"),
    ("tasks/state/a.py", "from reports.workbook import write\n", 1, "reports.workbook"),
    ("tasks/azure/a.py", "from emulator import server\n", 1, "emulator"),
])
def test_the_room_check_catches_every_way_of_importing(tmp_path, path, source, line, caught):
    file = tmp_path / path
    file.parent.mkdir(parents=True)
    file.write_text(source, encoding="utf-8")
    problems = room_violations(tmp_path)
    assert problems and problems[0].startswith(f"{path}:{line}: ") and caught in problems[0]


def test_the_room_check_lets_shared_rooms_be_imported(tmp_path):
    file = tmp_path / "tasks/planning/a.py"
    file.parent.mkdir(parents=True)
    file.write_text("from ..policies.naming import target_policy_name\n"
                    "from ..rules.eligibility import classify\nfrom . import waves\n",
                    encoding="utf-8")
    assert room_violations(tmp_path) == []


def test_a_circle_between_rooms_is_named(tmp_path):
    for path, source in (("tasks/state/__init__.py", ""), ("tasks/azure/__init__.py", ""),
                         ("tasks/state/a.py", "from ..azure import b\n"),
                         ("tasks/azure/b.py", "def f():\n    from tasks.state import a\n")):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(source, encoding="utf-8")
    [cycle] = room_cycles(tmp_path)
    assert "tasks.azure -> tasks.state -> tasks.azure" in cycle and "tasks/azure/b.py:2" in cycle


def test_a_policy_body_built_outside_the_policy_room_is_named(tmp_path):
    file = tmp_path / "tasks/migration/a.py"
    file.parent.mkdir(parents=True)
    file.write_text("def f(p):\n    p['snapshotConsistencyType'] = 'OnlyCrashConsistent'\n",
                    encoding="utf-8")
    assert body_builders(tmp_path) == ["tasks/migration/a.py:2: sets 'snapshotConsistencyType': "
                                       "policy bodies are built in tasks/policies"]
