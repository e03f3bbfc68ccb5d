"""`urunc pause` / `resume` of a solo5-spt tender through the cgroup freezer: v1 (this host's
freezer hierarchy) and v2 (a mount namespace whose /sys/fs/cgroup is the cgroup2 hierarchy
alone, as tests/runtime/test_cgroups.py makes one). Solo5's test_net answers ping while it
runs: a frozen one does not, a thawed one does again; killed while paused, it leaves nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_solo5_runtime import solo5_bundle

from tests.helpers.bundles import URUNC, create, leftovers, urunc, wait_status
from tests.helpers.netns import Netns, sh
from tests.helpers.procs import DEAD, state_letter, wait_gone

GUEST = "10.0.0.2"  # test_net's own address


def _pings(netns: Netns, tries: int = 1) -> bool:
    for _ in range(tries):
        if subprocess.run(["ip", "netns", "exec", netns.peer, "/bin/busybox", "ping", "-c", "1", "-W", "1", GUEST],
                          capture_output=True, timeout=10, check=False).returncode == 0:
            return True
    return False


def _freezer_line(pid: int, key: str) -> str:
    """PID's cgroup path in the hierarchy KEY names ("freezer" for v1, "" for the unified one)."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _n, controllers, path = line.split(":", 2)
        if (key and key in controllers.split(",")) or (not key and _n == "0"):
            return path
    raise AssertionError(f"no {key or 'unified'} cgroup for {pid}")


def _pause_cycle(run: Callable[..., subprocess.CompletedProcess[str]], state_root: Path, netns: Netns,
                 bundle: Path, frozen: Callable[[int], bool], kill_signal: str) -> None:
    """create, start, ping; pause: frozen, state paused, no ping; resume: ping; pause, kill, delete."""
    assert run("create", "--bundle", str(bundle), "sp").returncode == 0, (bundle / "console.log").read_text()
    assert run("start", "sp").returncode == 0
    pid = int(wait_status(state_root, "sp", "running")["pid"])  # type: ignore[call-overload]
    assert _pings(netns, 30), (bundle / "console.log").read_text()
    assert not frozen(pid)

    assert run("pause", "sp").returncode == 0
    state = json.loads(run("state", "sp").stdout)
    assert (state["status"], state["pid"]) == ("paused", pid)
    assert frozen(pid)
    assert not _pings(netns, 2)
    assert state_letter(pid) not in DEAD
    wrong = run("pause", "sp")
    assert (wrong.returncode, wrong.stderr) == (1, "urunc: cannot pause container sp: container not running "
                                                   "(it is paused)\n")

    assert run("resume", "sp").returncode == 0
    assert json.loads(run("state", "sp").stdout)["status"] == "running"
    assert not frozen(pid)
    assert _pings(netns, 10)

    assert run("pause", "sp").returncode == 0
    assert frozen(pid)
    assert run("kill", "sp", kill_signal).returncode == 0
    if kill_signal == "TERM":
        # Thawed to take it (as Docker resumes a container it stops); the tender, PID 1 of the
        # container's PID namespace without a handler, ignores SIGTERM as it does unpaused.
        assert json.loads(run("state", "sp").stdout)["status"] == "running"
        assert not frozen(pid)
        assert _pings(netns, 10)
        assert run("kill", "sp", "KILL").returncode == 0
    assert wait_gone(pid, 10)
    assert json.loads(run("state", "sp").stdout)["status"] == "stopped"
    assert run("delete", "sp").returncode == 0
    assert leftovers(state_root) == []


@pytest.mark.parametrize("kill_signal", ["KILL", "TERM"])
def test_spt_is_frozen_thawed_and_killed_while_frozen_on_cgroup_v1(
        tmp_path: Path, state_root: Path, tenders: dict[str, str], netns: Netns, kill_signal: str) -> None:
    if not Path("/sys/fs/cgroup/freezer/cgroup.procs").exists():
        pytest.skip("no v1 freezer hierarchy on this host")
    sh("ip", "-n", netns.peer, "addr", "add", "10.0.0.1/24", "dev", "br0")
    bundle = solo5_bundle(tmp_path / "b", "test_net", "spt", ["verbose"], netns_path=netns.path)
    seen: list[Path] = []

    def frozen(pid: int) -> bool:
        directory = Path("/sys/fs/cgroup/freezer") / _freezer_line(pid, "freezer").lstrip("/")
        assert directory != Path("/sys/fs/cgroup/freezer")  # its own cgroup, not the root
        seen.append(directory)
        return (directory / "freezer.state").read_text().strip() == "FROZEN"

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        if args[0] == "create":  # the init keeps what it inherits: a file, not a pipe
            code, out = create(state_root, bundle, "sp")
            return subprocess.CompletedProcess(args, code, out, out)
        return urunc(state_root, *args)

    try:
        _pause_cycle(run, state_root, netns, bundle, frozen, kill_signal)
    finally:
        urunc(state_root, "delete", "--force", "sp")
    assert seen and not any(d.exists() for d in seen)  # the frozen cgroup was thawed and removed


@pytest.fixture
def pure_v2(netns: Netns) -> Iterator[int]:
    """The PID of a process whose mount namespace sees only the cgroup2 hierarchy (made after
    NETNS, whose bind mount it must see)."""
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         "umount -R /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup && echo ready && exec sleep 600"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "ready\n"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_spt_is_frozen_thawed_and_killed_while_frozen_on_cgroup_v2(
        tmp_path: Path, state_root: Path, tenders: dict[str, str], netns: Netns, pure_v2: int) -> None:
    sh("ip", "-n", netns.peer, "addr", "add", "10.0.0.1/24", "dev", "br0")
    unified = Path(f"/proc/{pure_v2}/root/sys/fs/cgroup")
    bundle = solo5_bundle(tmp_path / "b", "test_net", "spt", ["verbose"], netns_path=netns.path)
    log = tmp_path / "out"
    seen: list[Path] = []

    def frozen(pid: int) -> bool:
        directory = unified / _freezer_line(pid, "").lstrip("/")
        assert directory != unified
        seen.append(directory)
        events = (directory / "cgroup.events").read_text().split("\n")
        return (directory / "cgroup.freeze").read_text().strip() == "1" and "frozen 1" in events

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        with open(log, "ab") as sink:  # create's init keeps what it inherits: a file, not a pipe
            start = sink.tell()
            result = subprocess.run(["nsenter", "-t", str(pure_v2), "-m", "--", URUNC, "--root", str(state_root),
                                     *args], stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=60,
                                    check=False)
        text = log.read_bytes()[start:].decode(errors="replace")
        return subprocess.CompletedProcess(args, result.returncode, text, text)

    try:
        _pause_cycle(run, state_root, netns, bundle, frozen, "KILL")
    finally:
        run("delete", "--force", "sp")
    assert seen and not any(d.exists() for d in seen), log.read_text()
    # v2 was used: the monitor was in no v1 cgroup of its own.
    assert not list(Path("/sys/fs/cgroup/freezer").glob("**/sp"))
