"""The sample unikernel and a plain busybox image through a real containerd, shim and urunc."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers.containerd import Containerd
from tests.helpers.procs import DEAD, state_letter
from urunc.image import build_image

RUNTIME = "io.containerd.urunc.v2"


@pytest.fixture(scope="module")
def busybox_image(containerd: Containerd, busybox_root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    work = tmp_path_factory.mktemp("bbimg")
    containerfile = work / "Containerfile"
    containerfile.write_text('FROM scratch\nCOPY . /\nCMD ["sh"]\n')
    built = build_image(containerfile, busybox_root, "urunc-e2e-busybox:1", work / "bb.tar")
    containerd.ctr("image", "import", str(built.output), timeout=120)
    return "docker.io/library/urunc-e2e-busybox:1"


def _runc_root(containerd: Containerd) -> Path:
    return Path("/run/containerd/runc") / containerd.namespace


def test_arguments_and_environment_reach_the_guest_exactly(containerd: Containerd, hello_image: str,
                                                           unique_id: str) -> None:
    result = containerd.ctr("run", "--rm", "--runtime", RUNTIME, "--env", "K=V", "--env", "SP=a b",
                            hello_image, unique_id, "a", "b c", "--x=1,2", timeout=120)
    out = result.stdout.replace("\r\n", "\n")
    assert "argv[0]=<a>\nargv[1]=<b c>\nargv[2]=<--x=1,2>\n" in out
    assert "=<K=V>\n" in out and "=<SP=a b>\n" in out
    assert out.rstrip().endswith("bye")
    assert not (_runc_root(containerd) / unique_id).exists()


def test_detached_task_is_the_monitor_and_teardown_leaves_nothing(containerd: Containerd, hello_image: str,
                                                                   unique_id: str) -> None:
    containerd.ctr("run", "-d", "--runtime", RUNTIME, hello_image, unique_id, "hello", "wait", timeout=120)
    try:
        tasks = containerd.ctr("task", "ls").stdout.splitlines()
        row = next(line.split() for line in tasks if line.startswith(unique_id + " "))
        pid, status = int(row[1]), row[2]
        assert status == "RUNNING"
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        assert (_runc_root(containerd) / unique_id / "urunc-state.json").exists()
        containerd.ctr("task", "kill", "-s", "SIGKILL", unique_id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listing = containerd.ctr("task", "ls").stdout
            if f"{unique_id} " in listing and "STOPPED" in listing.split(unique_id, 1)[1].splitlines()[0]:
                break
            time.sleep(0.1)
        containerd.ctr("task", "delete", unique_id)
    finally:
        containerd.ctr("container", "rm", unique_id, check=False)
    assert state_letter(pid) in DEAD
    assert not (_runc_root(containerd) / unique_id).exists()
    with open("/proc/mounts") as f:
        assert unique_id not in f.read()
    assert unique_id not in containerd.ctr("container", "ls", "-q").stdout.split()


@pytest.mark.parametrize("runtime", [RUNTIME, "io.containerd.runc.v2"])
def test_plain_busybox_behaves_as_with_runc(containerd: Containerd, busybox_image: str, unique_id: str,
                                            runtime: str) -> None:
    result = containerd.ctr("run", "--rm", "--runtime", runtime, busybox_image, unique_id,
                            "sh", "-c", "echo hi; echo err >&2; exit 3", check=False, timeout=60)
    assert result.returncode == 3
    assert result.stdout == "hi\n"
    assert "err" in result.stderr
    assert not (_runc_root(containerd) / unique_id).exists()


def test_bad_image_fails_create_with_one_line_naming_the_value(containerd: Containerd, unique_id: str,
                                                               tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "k").write_bytes(b"\x7fELF")
    (context / "Containerfile").write_text(
        "FROM scratch\nCOPY k /k\nLABEL com.urunc.unikernel.unikernelType=plan9 "
        "com.urunc.unikernel.hypervisor=qemu com.urunc.unikernel.binary=/k\n")
    built = build_image(context / "Containerfile", context, f"urunc-bad-{unique_id}:1", tmp_path / "bad.tar")
    containerd.ctr("image", "import", str(built.output))
    result = containerd.ctr("run", "--rm", "--runtime", RUNTIME, built.name, unique_id, check=False, timeout=60)
    assert result.returncode != 0
    assert "unknown guest type 'plan9'" in result.stderr
    containerd.ctr("container", "rm", unique_id, check=False)
    assert not (_runc_root(containerd) / unique_id).exists()


def _qmp_status(sock: Path) -> str:
    """QEMU's own run state (query-status), asked on the container's QMP socket."""
    import json
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(sock))
        f = s.makefile("rwb")
        f.readline()  # greeting
        for command in ("qmp_capabilities", "query-status"):
            f.write(json.dumps({"execute": command}).encode() + b"\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply:
                    break
        return str(reply["return"]["status"])


def _task_status(containerd: Containerd, cid: str) -> str:
    row = next(line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()
               if line.startswith(cid + " "))
    return row[2]


def test_ctr_task_pause_and_resume_stop_and_continue_the_guest(containerd: Containerd, hello_image: str,
                                                               unique_id: str) -> None:
    import json
    import subprocess

    containerd.ctr("run", "-d", "--runtime", RUNTIME, hello_image, unique_id, "hello", "wait", timeout=120)
    state_dir = _runc_root(containerd) / unique_id
    urunc_state = ["/usr/local/bin/urunc", "--root", str(_runc_root(containerd)), "state", unique_id]
    try:
        pid = int(next(line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()
                       if line.startswith(unique_id + " "))[1])
        assert _qmp_status(state_dir / "qmp.sock") == "running"
        containerd.ctr("task", "pause", unique_id)
        assert _task_status(containerd, unique_id) == "PAUSED"
        assert json.loads(subprocess.run(urunc_state, capture_output=True, check=True).stdout)["status"] == "paused"
        assert _qmp_status(state_dir / "qmp.sock") == "paused"  # QEMU's vCPUs are stopped
        containerd.ctr("task", "resume", unique_id)
        assert _task_status(containerd, unique_id) == "RUNNING"
        assert _qmp_status(state_dir / "qmp.sock") == "running"
        # Paused again, `ctr task kill` (SIGTERM) ends it: a stopped guest cannot take the power button.
        containerd.ctr("task", "pause", unique_id)
        containerd.ctr("task", "kill", unique_id)
        deadline = time.monotonic() + 10
        while _task_status(containerd, unique_id) != "STOPPED":
            assert time.monotonic() < deadline, containerd.ctr("task", "ls").stdout
            time.sleep(0.1)
        containerd.ctr("task", "delete", unique_id)
    finally:
        containerd.ctr("task", "delete", "-f", unique_id, check=False)
        containerd.ctr("container", "rm", unique_id, check=False)
    assert state_letter(pid) in DEAD
    assert not state_dir.exists()
