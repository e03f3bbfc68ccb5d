"""The monitor in the spec's cgroup, with limits, on this host's real cgroupfs (v1 hybrid here).

A pure v2 host is had in a mount namespace whose /sys/fs/cgroup is the cgroup2
hierarchy alone: real membership and real mkdir/rmdir rules, but no controller
(v1 holds them all on this machine), so the v2 limits are covered by
tests/unit/test_cgroups.py on a fake tree.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, container_state, create, hello_bundle, leftovers, urunc

CG = Path("/sys/fs/cgroup")
MIB = 1024 * 1024


def _v1() -> bool:
    return (CG / "memory" / "cgroup.procs").exists()


@pytest.mark.skipif(not _v1(), reason="checks the v1 layout (this machine's)")
def test_monitor_is_placed_limited_and_cgroup_removed_at_delete(tmp_path: Path, state_root: Path) -> None:
    cid = f"cg-{time.monotonic_ns()}"
    resources = {"memory": {"limit": 128 * MIB}, "cpu": {"quota": 50000, "period": 100000},
                 "pids": {"limit": 64}}
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"), cgroups_path=f"/urunc-test/{cid}",
                          resources=resources)
    code, text = create(state_root, bundle, cid)
    assert code == 0, text
    try:
        assert urunc(state_root, "start", cid).returncode == 0
        pid = container_state(state_root, cid)["pid"]
        deadline = time.monotonic() + 20
        while b"waiting" not in (bundle / "console.log").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        leaf = f"/urunc-test/{cid}"
        lines = dict(line.split(":", 2)[1:] for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines())
        for ctrl in ("memory", "pids", "cpu", "cpuset"):
            key = next(k for k in lines if ctrl in k.split(","))
            assert lines[key] == leaf
        # guest 128 MiB + 64 MiB + 5% (7 MiB): the kernel rounds to pages
        assert int((CG / "memory" / leaf.lstrip("/") / "memory.limit_in_bytes").read_text()) == 199 * MIB
        assert (CG / "pids" / leaf.lstrip("/") / "pids.max").read_text().strip() == "64"
        assert (CG / "cpu" / leaf.lstrip("/") / "cpu.cfs_quota_us").read_text().strip() == "50000"
        usage = int((CG / "memory" / leaf.lstrip("/") / "memory.usage_in_bytes").read_text())
        assert usage > 4 * MIB  # the VM's memory is charged here
    finally:
        assert urunc(state_root, "delete", "--force", cid).returncode == 0
    assert not list(CG.glob(f"*/urunc-test/{cid}"))
    assert not list(CG.glob("*/urunc-test"))


@pytest.mark.skipif(not _v1(), reason="checks the v1 layout (this machine's)")
def test_systemd_style_path_maps_to_a_scope(tmp_path: Path, state_root: Path) -> None:
    cid = f"cgs-{time.monotonic_ns()}"
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"),
                          cgroups_path=f"urunctest-sub.slice:urunc:{cid}")
    with open(tmp_path / "out", "wb") as out:
        r = urunc(state_root, "--systemd-cgroup", "create", "--bundle", str(bundle), cid,
                  stdout=out, stderr=out, capture_output=False)
    assert r.returncode == 0, (tmp_path / "out").read_text()
    try:
        pid = container_state(state_root, cid)["pid"]
        text = Path(f"/proc/{pid}/cgroup").read_text()
        assert f":memory:/urunctest.slice/urunctest-sub.slice/urunc-{cid}.scope\n" in text
    finally:
        assert urunc(state_root, "delete", "--force", cid).returncode == 0
    assert not list(CG.glob("*/urunctest.slice"))


@pytest.fixture
def pure_v2() -> Iterator[int]:
    """The PID of a process whose mount namespace sees only the cgroup2 hierarchy."""
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


def test_a_pure_v2_host_puts_the_monitor_in_the_unified_hierarchy(tmp_path: Path, state_root: Path,
                                                                   pure_v2: int) -> None:
    from tests.helpers.procs import wait_gone

    unified = Path(f"/proc/{pure_v2}/root/sys/fs/cgroup")
    parent = f"urunc-v2-{os.getpid()}"

    log = tmp_path / "out"  # every command's output and the guests' (an init keeps what it inherits)

    def run(*args: str) -> int:
        with open(log, "ab") as sink:
            return subprocess.run(["nsenter", "-t", str(pure_v2), "-m", "--", URUNC, "--root", str(state_root),
                                   *args], stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=60,
                                  check=False).returncode

    def pid_of(cid: str) -> int:
        return int(container_state(state_root, cid)["pid"])

    cids = ("v2a", "v2b")
    for cid in cids:
        bundle = hello_bundle(tmp_path / cid, args=("hello", "wait"), cgroups_path=f"/{parent}/{cid}")
        assert run("create", "--bundle", str(bundle), cid) == 0, log.read_text()
    try:
        assert run("start", "v2a") == 0, log.read_text()
        deadline = time.monotonic() + 30
        while b"waiting" not in log.read_bytes():  # only v2a is started
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for cid in cids:  # the monitor (v2a) and a waiting init (v2b), each in its own
            pid = pid_of(cid)
            assert f"0::/{parent}/{cid}" in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
            assert (unified / parent / cid / "cgroup.procs").read_text().split() == [str(pid)]
        # v2 was chosen: nothing was made in the v1 hierarchies.
        assert [d for d in CG.glob(f"*/{parent}") if d.parent.name != "unified"] == []
        # Python's delete --force of a created container (kill, then release), then the
        # native delete of a stopped one, which also removes the parent v2a made.
        assert run("delete", "--force", "v2b") == 0, log.read_text()
        assert not (unified / parent / "v2b").exists() and (unified / parent / "v2a").exists()
        pid = pid_of("v2a")
        assert run("kill", "v2a", "KILL") == 0, log.read_text()
        assert wait_gone(pid)
        assert run("delete", "v2a") == 0, log.read_text()
        assert not (unified / parent).exists()
    finally:
        for cid in cids:
            run("delete", "--force", cid)
    assert leftovers(state_root) == []
