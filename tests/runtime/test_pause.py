"""`urunc pause` / `resume` of QEMU guests (QMP stop/cont), `state` (Python's and the native
front end's), `list` and `ps` while paused, and `kill` / `delete --force` of a paused container.

The freezer path (every other monitor) is in tests/real/test_solo5_pause.py, on solo5-spt.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import (
    DEFAULT_PATH,
    URUNC,
    base_spec,
    cgroups_named,
    container_state,
    create,
    hello_bundle,
    leftovers,
    urunc,
    wait_status,
    write_spec,
)
from tests.helpers.procs import DEAD, state_letter, wait_gone
from tests.helpers.rootfs import busybox_rootfs

GUEST_KERNEL = Path("/usr/local/lib/urunc/guest/vmlinux")
LIB = Path(URUNC).resolve().parent.parent / "lib" / "urunc"


@pytest.fixture(scope="module")
def native_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The front end built without a Python to fall back to: a `state` it prints, it rendered itself."""
    from tests.helpers.front import build

    return build(tmp_path_factory.mktemp("front") / "urunc-native-only", "/nonexistent/urunc-py")


def _states(front: Path, root: Path, cid: str) -> tuple[str, str]:
    """`state` as the native front end renders it and as Python does: both must answer."""
    native = subprocess.run([str(front), "--root", str(root), "state", cid], capture_output=True, text=True,
                            timeout=30, check=False)
    python = subprocess.run([str(LIB / "urunc-py"), "--root", str(root), "state", cid], capture_output=True,
                            text=True, timeout=30, check=False)
    assert native.returncode == 0, native.stderr
    assert python.returncode == 0, python.stderr
    return native.stdout, python.stdout


def _status(front: Path, root: Path, cid: str) -> str:
    native, python = _states(front, root, cid)
    assert native == python
    return str(json.loads(native)["status"])


def _wait_for(path: Path, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"{text!r} not in {path}: {path.read_text(errors='replace')[-2000:]}"
        time.sleep(0.1)


def _own_cgroups(pid: int) -> list[str]:
    """The v1/v2 cgroup directories PID is in, other than the roots (what delete must remove)."""
    found = []
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _n, controllers, path = line.split(":", 2)
        if path != "/" and controllers and not controllers.startswith("name="):
            found.append(path)
    return sorted(set(found))


@pytest.fixture
def ticking(tmp_path: Path, state_root: Path) -> Iterator[tuple[str, int, Path]]:
    """A running Linux guest whose app prints a numbered line every 0.2 s: (id, pid, console)."""
    if not GUEST_KERNEL.exists():
        pytest.skip(f"{GUEST_KERNEL} is not installed (run make install)")
    bundle = tmp_path / "b"
    busybox_rootfs(bundle / "rootfs")
    write_spec(bundle, base_spec(["sh", "-c", "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done"],
                                 env=[DEFAULT_PATH], annotations={"com.urunc.unikernel.unikernelType": "linux",
                                                                  "com.urunc.unikernel.hypervisor": "qemu"}))
    console = tmp_path / "console"
    code, text = create(state_root, bundle, "tick", console=console)
    assert code == 0, text
    assert urunc(state_root, "start", "tick").returncode == 0
    _wait_for(console, "tick 3")
    yield "tick", int(container_state(state_root, "tick")["pid"]), console  # type: ignore[call-overload]
    urunc(state_root, "delete", "--force", "tick")


def test_a_paused_qemu_guest_stops_its_console_and_resume_lets_it_go_on(
        state_root: Path, native_only: Path, ticking: tuple[str, int, Path]) -> None:
    cid, pid, console = ticking
    cgroups = _own_cgroups(pid)
    assert cgroups  # the monitor is in the container's own cgroup (removed below)
    assert urunc(state_root, "pause", cid).returncode == 0
    assert _status(native_only, state_root, cid) == "paused"
    listed = json.loads(urunc(state_root, "list", "--format", "json", check=True).stdout)
    assert [(s["id"], s["status"], s["pid"]) for s in listed] == [(cid, "paused", pid)]
    assert json.loads(urunc(state_root, "ps", "--format", "json", cid, check=True).stdout) == [pid]
    time.sleep(0.5)  # what the guest wrote before the stop is out by now
    size = console.stat().st_size
    time.sleep(2.5)  # twelve ticks' worth
    assert console.stat().st_size == size, console.read_text()[-300:]
    assert state_letter(pid) not in DEAD  # stopped, not gone: QEMU's main loop still runs
    again = urunc(state_root, "pause", cid)
    assert (again.returncode, again.stderr) == (
        1, f"urunc: cannot pause container {cid}: container not running (it is paused)\n")
    refused = urunc(state_root, "exec", cid, "true")
    assert refused.returncode == 1 and "paused" in refused.stderr
    last = console.read_text().split()[-1]

    assert urunc(state_root, "resume", cid).returncode == 0
    assert _status(native_only, state_root, cid) == "running"
    deadline = time.monotonic() + 20
    while console.stat().st_size <= size + 30:
        assert time.monotonic() < deadline, "the console did not go on after resume"
        time.sleep(0.1)
    ticks = [int(n) for n in console.read_text().split("tick ")[1:] if n.strip().isdigit()]
    assert max(ticks) >= int(last) + 3  # the same loop counting on, not a restart
    twice = urunc(state_root, "resume", cid)
    assert (twice.returncode, twice.stderr) == (
        1, f"urunc: cannot resume container {cid}: container not paused (it is running)\n")

    # Paused again, then SIGKILL: the container stops and delete leaves nothing.
    assert urunc(state_root, "pause", cid).returncode == 0
    assert urunc(state_root, "kill", cid, "KILL").returncode == 0
    assert wait_gone(pid)
    assert _status(native_only, state_root, cid) == "stopped"
    assert urunc(state_root, "delete", cid).returncode == 0
    assert leftovers(state_root) == []
    assert cgroups_named(*{c.rsplit("/", 1)[-1] for c in cgroups}) == []


@pytest.mark.parametrize("how", ["kill KILL", "kill TERM", "delete --force"])
def test_a_paused_container_is_killed_and_deleted_without_leftovers(
        tmp_path: Path, state_root: Path, how: str) -> None:
    cid = "pk-" + how.split()[-1].lstrip("-").lower()
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"), cgroups_path=f"/urunc-pause-test/{cid}")
    code, text = create(state_root, bundle, cid)
    assert code == 0, text
    assert urunc(state_root, "start", cid).returncode == 0
    _wait_for(bundle / "console.log", "waiting", 30)
    pid = int(container_state(state_root, cid)["pid"])  # type: ignore[call-overload]
    assert urunc(state_root, "pause", cid).returncode == 0
    assert container_state(state_root, cid)["status"] == "paused"
    busy = urunc(state_root, "delete", cid)
    assert busy.returncode == 1 and "not stopped: it is paused" in busy.stderr
    started = time.monotonic()
    if how.startswith("kill"):
        assert urunc(state_root, "kill", cid, how.split()[1]).returncode == 0
        # SIGTERM too ends it at once: a paused guest cannot answer a power-button press
        assert wait_status(state_root, cid, "stopped", 5)["pid"] == 0
        assert time.monotonic() - started < 5
        assert urunc(state_root, "delete", cid).returncode == 0
    else:
        assert urunc(state_root, "delete", "--force", cid).returncode == 0
    assert wait_gone(pid, 1)
    assert leftovers(state_root) == []
    assert cgroups_named(cid, "urunc-pause-test") == []


def test_pause_and_resume_refuse_containers_in_other_states(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=("hello",))
    assert create(state_root, bundle, "pw")[0] == 0
    for command, message in (("pause", "container not running (it is created)"),
                             ("resume", "container not paused (it is created)")):
        result = urunc(state_root, command, "pw")
        assert (result.returncode, result.stderr) == (1, f"urunc: cannot {command} container pw: {message}\n")
    assert urunc(state_root, "start", "pw").returncode == 0
    wait_status(state_root, "pw", "stopped")
    result = urunc(state_root, "pause", "pw")
    assert (result.returncode, result.stderr) == (
        1, "urunc: cannot pause container pw: container not running (it is stopped)\n")
    missing = urunc(state_root, "resume", "nope")
    assert (missing.returncode, missing.stderr) == (1, "urunc: container nope does not exist\n")
    assert urunc(state_root, "delete", "pw").returncode == 0
    assert not os.path.exists(state_root / "pw")


def test_ps_table_lists_the_monitor_as_ps_does(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"))
    assert create(state_root, bundle, "pt")[0] == 0
    assert urunc(state_root, "start", "pt").returncode == 0
    pid = int(container_state(state_root, "pt")["pid"])  # type: ignore[call-overload]
    table = urunc(state_root, "ps", "pt", check=True).stdout.splitlines()
    assert table[0].split()[:3] == ["UID", "PID", "PPID"] and table[0].split()[-1] == "CMD"
    assert [line.split()[1] for line in table[1:]] == [str(pid)]
    assert "qemu-system-x86_64" in table[1]
    custom = urunc(state_root, "ps", "pt", "-o", "pid,comm", check=True).stdout.split()
    assert custom == ["PID", "COMMAND", str(pid), "qemu-system-x86"]
    urunc(state_root, "delete", "--force", "pt", check=True)


def test_ps_lists_an_exec_relay_beside_the_monitor(state_root: Path, ticking: tuple[str, int, Path]) -> None:
    cid, pid, _console = ticking
    relay = subprocess.Popen([URUNC, "--root", str(state_root), "exec", cid, "sleep", "60"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            pids = json.loads(urunc(state_root, "ps", "--format", "json", cid, check=True).stdout)
            if len(pids) > 1:
                break
            assert time.monotonic() < deadline, pids
            time.sleep(0.1)
        assert pids == sorted([pid, relay.pid])  # the front end execs Python: the relay keeps its PID
        table = urunc(state_root, "ps", cid, check=True).stdout.splitlines()[1:]
        assert sorted(int(line.split()[1]) for line in table) == sorted([pid, relay.pid])
    finally:
        relay.kill()
        relay.wait()
    assert json.loads(urunc(state_root, "ps", "--format", "json", cid, check=True).stdout) == [pid]
