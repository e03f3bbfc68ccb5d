"""The README's start-up rule, enforced: no command path imports a costly module.

"No json, re, typing, dataclasses or socket import on a command path" (and no
ctypes: the C extension stands in for it). Each command runs in a fresh
interpreter started the way the installed entry points start (``-I -S``,
the installed package), through a real lifecycle of the sample guest; what is
in ``sys.modules`` afterwards is checked. The init's start-time work (the
image's files, identity, the monitor's argv) runs the same way on the plan
``create`` recorded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.bundles import hello_bundle, wait_status

LIB = Path("/usr/local/lib/urunc/python")
FORBIDDEN = {"json", "re", "typing", "dataclasses", "socket", "ctypes", "asyncio", "subprocess", "shlex",
             "tomllib", "pathlib"}
# `list` is a person's command, never the shim's: it asks runc about runc's containers.
ALLOWED_ON = {"list": {"subprocess", "re"}}

DRIVER = r"""
import sys
sys.path.insert(0, sys.argv[1])
out, mode, argv = sys.argv[2], sys.argv[3], sys.argv[4:]
if mode == "cli":
    from urunc import cli
    code = cli.main(argv)
else:  # the init's start-time work on the recorded plan, without the execve
    from urunc.oci import store
    from urunc import init
    from urunc.host import identity
    from urunc.unikernel.plan import Plan
    container = store.Container(argv[0], argv[1])
    plan = Plan.from_dict(container.load()["plan"])
    plan, held = init._hold(plan)
    plan, granted, groups = identity.prepare(plan, True)
    monitor_argv, fds = init._prepare_start(plan)
    code = 0 if monitor_argv else 1
with open(out, "w") as f:
    f.write("\n".join(sorted(sys.modules)))
sys.stdout.flush()
import os
os._exit(code)
"""


def _modules(tmp_path: Path, name: str, mode: str, *argv: str) -> set[str]:
    out = tmp_path / f"{name}.modules"
    subprocess.run([sys.executable, "-I", "-S", "-c", DRIVER, str(LIB), str(out), mode, *argv],
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60, check=False)
    assert out.exists(), f"{name} did not get to the end of its path"
    return set(out.read_text().split())


def test_no_command_path_imports_a_costly_module(tmp_path: Path, state_root: Path) -> None:
    if not (LIB / "urunc").is_dir():
        pytest.skip(f"{LIB} is not installed (run make install)")
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    root = str(state_root)
    steps = [
        ("create", "cli", "--root", root, "create", "--bundle", str(bundle), "c1"),
        ("state", "cli", "--root", root, "state", "c1"),
        ("init-start", "init", root, "c1"),
        ("start", "cli", "--root", root, "start", "c1"),
        ("list", "cli", "--root", root, "list"),
        ("ps", "cli", "--root", root, "ps", "--format", "json", "c1"),
        ("kill", "cli", "--root", root, "kill", "c1", "KILL"),
        ("delete", "cli", "--root", root, "delete", "--force", "c1"),
        ("features", "cli", "features"),
    ]
    found: dict[str, list[str]] = {}
    for name, mode, *argv in steps:
        modules = _modules(tmp_path, name, mode, *argv)
        assert "urunc" in modules
        bad = sorted((modules & FORBIDDEN) - ALLOWED_ON.get(name, set()))
        if bad:
            found[name] = bad
        if name == "create":
            wait_status(state_root, "c1", "created")
        if name == "start":
            wait_status(state_root, "c1", "running")
    assert found == {}, json.dumps(found)
