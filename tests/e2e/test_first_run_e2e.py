"""What a new user meets first, through a real containerd: stopping the sample guest, finding
containerd's containers with `urunc list`, and `make demo`'s script."""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC
from tests.helpers.containerd import Containerd

RUNTIME = "io.containerd.urunc.v2"
REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "packaging" / "demo.sh"
HELLO_TAR = REPO / "build" / "images" / "hello.tar"


def _task(ctd: Containerd, cid: str) -> tuple[int, str] | None:
    for line in ctd.ctr("task", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return int(fields[1]), fields[2]
    return None


def _run_wait(ctd: Containerd, image: str, cid: str) -> int:
    ctd.ctr("run", "-d", "--runtime", RUNTIME, image, cid, "hello", "wait", timeout=120)
    task = _task(ctd, cid)
    assert task is not None and task[1] == "RUNNING", task
    return task[0]


def _remove(ctd: Containerd, cid: str) -> None:
    ctd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
    ctd.ctr("task", "delete", "--force", cid, check=False)
    ctd.ctr("container", "rm", cid, check=False)


def test_ctr_task_kill_stops_the_sample_guest_without_waiting_out_the_grace(
        containerd: Containerd, hello_image: str, unique_id: str) -> None:
    if os.environ.get("URUNC_CONFIG"):
        pytest.skip("URUNC_CONFIG is set: this test is about the default grace period (10 s)")
    _run_wait(containerd, hello_image, unique_id)
    try:
        # Up, as a user would find it: QEMU has made its QMP socket. (A SIGTERM in the few ms
        # between the monitor's execve and QEMU installing its handler is dropped: QEMU is
        # PID 1 of the container's pid namespace. That race is lifecycle.kill's, not this test's.)
        sock = Path(f"/run/containerd/runc/{containerd.namespace}/{unique_id}/qmp.sock")
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline, f"no {sock}"
            time.sleep(0.02)
        began = time.monotonic()
        containerd.ctr("task", "kill", unique_id)  # SIGTERM, as `docker stop` and the kubelet send
        while (task := _task(containerd, unique_id)) is not None and task[1] != "STOPPED":
            assert time.monotonic() - began < 5, f"still {task[1]} after 5 s"
            time.sleep(0.05)
        print(f"ctr task kill to STOPPED: {time.monotonic() - began:.2f} s")
    finally:
        _remove(containerd, unique_id)


def test_urunc_list_under_containerds_root_shows_its_containers(containerd: Containerd, hello_image: str,
                                                                 unique_id: str) -> None:
    root = f"/run/containerd/runc/{containerd.namespace}"  # the runc shim's --root, per namespace
    pid = _run_wait(containerd, hello_image, unique_id)
    try:
        listed = subprocess.run([URUNC, "--root", root, "list"], capture_output=True, text=True, timeout=30,
                                check=True).stdout.splitlines()
        rows = [line.split() for line in listed[1:]]
        assert [unique_id, str(pid), "running"] in [row[:3] for row in rows], listed
        quiet = subprocess.run([URUNC, "--root", root, "list", "-q"], capture_output=True, text=True,
                               timeout=30, check=True).stdout.split()
        assert unique_id in quiet
    finally:
        _remove(containerd, unique_id)


def _demo(ctd: Containerd, image: str) -> subprocess.CompletedProcess[str]:
    if not HELLO_TAR.exists():
        pytest.skip(f"{HELLO_TAR} is not built (run make images)")
    env = dict(os.environ, CONTAINERD_ADDRESS=ctd.address, CONTAINERD_NAMESPACE=ctd.namespace)
    return subprocess.run(["sh", str(DEMO), str(HELLO_TAR), image], capture_output=True, text=True,
                          timeout=180, env=env)


def test_demo_prints_the_command_it_runs_and_its_exit_status(containerd: Containerd) -> None:
    result = _demo(containerd, "docker.io/library/urunc-hello:latest")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.replace("\r\n", "\n").splitlines()
    shown = shlex.split(next(line for line in lines if line.startswith("demo: ctr "))[len("demo: "):])
    assert shown[:5] == ["ctr", "--address", containerd.address, "-n", containerd.namespace]
    # What the guest received is what the printed command gave it.
    args = shown[shown.index("docker.io/library/urunc-hello:latest") + 2:]
    assert args == ["hello", "from urunc"]
    for n, arg in enumerate(args):
        assert f"argv[{n}]=<{arg}>" in lines
    env = [shown[i + 1] for i, word in enumerate(shown) if word == "--env"]
    assert env and all(any(line.endswith(f"=<{e}>") and line.startswith("env[") for line in lines) for e in env)
    assert lines[-1] == "demo: exit status 0"


def test_demo_reports_a_failing_run_with_its_status(containerd: Containerd) -> None:
    result = _demo(containerd, "docker.io/library/urunc-no-such-image:1")
    assert result.returncode != 0
    assert result.stdout.splitlines()[-1] == f"demo: exit status {result.returncode}"
