"""The native front end (src/front/urunc.c): `start` without an interpreter, the rest in Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from tests.helpers.bundles import URUNC, create, hello_bundle, leftovers, urunc


def test_urunc_is_the_native_front_and_python_answers_the_rest(state_root: Path) -> None:
    with open(URUNC, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert urunc(state_root, "--version", check=True).stdout.startswith("urunc version ")
    missing = urunc(state_root, "start", "nope")
    assert (missing.returncode, missing.stderr) == (1, "urunc: container nope does not exist\n")


def test_a_start_error_reaches_stderr_and_the_json_log(tmp_path: Path, state_root: Path) -> None:
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    monitor = tmp_path / "qemu-that-vanishes"
    monitor.symlink_to(qemu)
    config = tmp_path / "config.toml"
    config.write_text(f'[monitors.qemu]\npath = "{monitor}"\n')
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    env = {**os.environ, "URUNC_CONFIG": str(config)}
    with open(bundle / "console.log", "wb") as sink:
        created = subprocess.run([URUNC, "--root", str(state_root), "create", "--bundle", str(bundle), "f1"],
                                 stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env, timeout=30)
    assert created.returncode == 0, (bundle / "console.log").read_text()
    monitor.unlink()  # the init's execve will fail, after `start` released it
    log = tmp_path / "log.json"
    started = urunc(state_root, "--log", str(log), "--log-format", "json", "start", "f1")
    assert started.returncode == 1
    assert started.stderr.startswith("urunc: ") and started.stderr.count("\n") == 1
    assert str(monitor) in started.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and str(monitor) in entry["msg"] and entry["time"].endswith("Z")
    assert json.loads(urunc(state_root, "state", "f1", check=True).stdout)["status"] == "stopped"
    urunc(state_root, "delete", "f1", check=True)
    assert leftovers(state_root) == []


def test_start_twice_and_start_of_a_stopped_container_get_python_s_answers(tmp_path: Path,
                                                                            state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello"])
    assert create(state_root, bundle, "f2")[0] == 0
    assert urunc(state_root, "start", "f2").returncode == 0
    again = urunc(state_root, "start", "f2")
    assert again.returncode == 1
    assert again.stderr.startswith("urunc: cannot start container f2: it is ")
    urunc(state_root, "delete", "--force", "f2", check=True)
