"""OCI hooks run at their stages with the container's state on stdin."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers.bundles import create, hello_bundle, leftovers, urunc, write_spec


def _hook_script(tmp_path: Path, name: str) -> Path:
    script = tmp_path / f"{name}.sh"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path}/{name}.state\necho \"$@\" > {tmp_path}/{name}.args\n"
                      f"echo \"$HOOKVAR\" > {tmp_path}/{name}.env\n")
    script.chmod(0o755)
    return script


def test_hooks_run_at_each_stage_with_the_state(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    spec = json.loads((bundle / "config.json").read_text())
    spec["hooks"] = {stage: [{"path": str(_hook_script(tmp_path, stage)), "args": [stage, "x y"],
                              "env": ["HOOKVAR=v1"], "timeout": 10}]
                     for stage in ("prestart", "createRuntime", "poststart", "poststop")}
    write_spec(bundle, spec)
    code, text = create(state_root, bundle, "h1")
    assert code == 0, text
    for stage in ("prestart", "createRuntime"):
        state = json.loads((tmp_path / f"{stage}.state").read_text())
        assert state["id"] == "h1" and state["status"] == "creating" and state["pid"] > 0
        assert (tmp_path / f"{stage}.args").read_text() == "x y\n"
        assert (tmp_path / f"{stage}.env").read_text() == "v1\n"
    assert not (tmp_path / "poststart.state").exists()
    urunc(state_root, "start", "h1", check=True)
    assert json.loads((tmp_path / "poststart.state").read_text())["status"] == "running"
    assert not (tmp_path / "poststop.state").exists()
    urunc(state_root, "delete", "--force", "h1", check=True)
    assert json.loads((tmp_path / "poststop.state").read_text())["status"] == "stopped"
    assert leftovers(state_root) == []


def test_a_failing_create_runtime_hook_fails_create_and_leaves_nothing(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    spec = json.loads((bundle / "config.json").read_text())
    spec["hooks"] = {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo no network >&2; exit 4"]}]}
    write_spec(bundle, spec)
    code, text = create(state_root, bundle, "h2")
    assert code == 1
    assert text == "urunc: createRuntime hook /bin/sh failed: exit status 4: no network\n"
    assert leftovers(state_root) == []


def test_hooks_inside_the_container_are_refused(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b")
    spec = json.loads((bundle / "config.json").read_text())
    spec["hooks"] = {"createContainer": [{"path": "/bin/true"}]}
    write_spec(bundle, spec)
    code, text = create(state_root, bundle, "h3")
    assert code == 1 and text == "urunc: createContainer hooks are not supported for unikernel containers\n"
    assert leftovers(state_root) == []
