"""Imports point one way: host/ is a leaf (namespaces, cgroups, netlink, /proc, files) that knows
nothing of guests, monitors, commands or the lifecycle; no guest names a monitor."""

from __future__ import annotations

import ast
import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "urunc"
ABOVE_HOST = ("urunc.lifecycle", "urunc.cli", "urunc.commands", "urunc.guests", "urunc.monitors", "urunc.init")


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_host_modules_import_nothing_above_them() -> None:
    found = {path.name: sorted(name for name in _imports(path) if name.startswith(ABOVE_HOST))
             for path in sorted((SRC / "host").glob("*.py"))}
    assert {name: bad for name, bad in found.items() if bad} == {}
    assert len(found) >= 8  # the walk saw the package


def test_no_guest_branches_on_a_monitor() -> None:
    offending = [f"{path.name}:{number}" for path in sorted((SRC / "guests").glob("*.py"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if re.search(r"monitor ==|plan\.monitor", line)]
    assert offending == []
