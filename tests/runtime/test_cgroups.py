"""The monitor in the spec's cgroup, with limits, on this host's real cgroupfs (v1 hybrid here).

A pure v2 host is had in a mount namespace whose /sys/fs/cgroup is the cgroup2
hierarchy alone: real membership and real mkdir/rmdir rules, but no controller
(v1 holds them all on this machine), so the v2 limits are covered by
tests/unit/test_cgroups.py on a fake tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, hello_bundle, leftovers, urunc

CG = Path("/sys/fs/cgroup")
MIB = 1024 * 1024


def _v1() -> bool:
    return (CG / "memory" / "cgroup.procs").exists()


@pytest.mark.skipif(not _v1(), reason="checks the v1 layout (this machine's)")
def test_monitor_is_placed_limited_and_cgroup_removed_at_delete(tmp_path: Path, state_root: Path) -> None:
    cid = f"cg-{time.monotonic_ns()}"
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"))
    spec = json.loads((bundle / "config.json").read_text())
    spec["linux"]["cgroupsPath"] = f"/urunc-test/{cid}"
    spec["linux"]["resources"] = {"memory": {"limit": 128 * MIB},
                                  "cpu": {"quota": 50000, "period": 100000}, "pids": {"limit": 64}}
    (bundle / "config.json").write_text(json.dumps(spec))
    out = open(tmp_path / "out", "wb")  # noqa: SIM115
    assert urunc(state_root, "create", "--bundle", str(bundle), cid, stdout=out, stderr=out,
                 capture_output=False).returncode == 0
    try:
        assert urunc(state_root, "start", cid).returncode == 0
        pid = json.loads(urunc(state_root, "state", cid, check=True).stdout)["pid"]
        deadline = time.monotonic() + 20
        while b"waiting" not in (tmp_path / "out").read_bytes():
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
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"))
    spec = json.loads((bundle / "config.json").read_text())
    spec["linux"]["cgroupsPath"] = f"urunctest-sub.slice:urunc:{cid}"
    (bundle / "config.json").write_text(json.dumps(spec))
    r = urunc(state_root, "--systemd-cgroup", "create", "--bundle", str(bundle), cid,
              stdout=open(tmp_path / "out", "wb"), stderr=None, capture_output=False)  # noqa: SIM115
    assert r.returncode == 0
    try:
        pid = json.loads(urunc(state_root, "state", cid, check=True).stdout)["pid"]
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
    from tests.helpers.procs import DEAD, state_letter

    unified = Path(f"/proc/{pure_v2}/root/sys/fs/cgroup")
    parent = f"urunc-v2-{os.getpid()}"

    def run(*args: str, out: Path | None = None) -> subprocess.CompletedProcess[bytes]:
        sink = open(out, "ab") if out else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            return subprocess.run(["nsenter", "-t", str(pure_v2), "-m", "--", URUNC, "--root", str(state_root),
                                   *args], stdin=subprocess.DEVNULL, stdout=sink,
                                  stderr=sink if out else subprocess.PIPE, timeout=60, check=False)
        finally:
            if out:
                sink.close()  # type: ignore[union-attr]

    def pid_of(cid: str) -> int:
        return int(json.loads(urunc(state_root, "state", cid, check=True).stdout)["pid"])

    cids = ("v2a", "v2b")
    for cid in cids:
        bundle = hello_bundle(tmp_path / cid, args=("hello", "wait"))
        spec = json.loads((bundle / "config.json").read_text())
        spec["linux"]["cgroupsPath"] = f"/{parent}/{cid}"
        (bundle / "config.json").write_text(json.dumps(spec))
        result = run("create", "--bundle", str(bundle), cid, out=tmp_path / f"{cid}.out")
        assert result.returncode == 0, (tmp_path / f"{cid}.out").read_text()
    try:
        assert run("start", "v2a").returncode == 0
        deadline = time.monotonic() + 30
        while b"waiting" not in (tmp_path / "v2a.out").read_bytes():
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
        assert run("delete", "--force", "v2b").returncode == 0
        assert not (unified / parent / "v2b").exists() and (unified / parent / "v2a").exists()
        pid = pid_of("v2a")
        assert run("kill", "v2a", "KILL").returncode == 0
        deadline = time.monotonic() + 10
        while state_letter(pid) not in DEAD:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        result = run("delete", "v2a")
        assert result.returncode == 0, result.stderr
        assert not (unified / parent).exists()
    finally:
        for cid in cids:
            run("delete", "--force", cid)
    assert leftovers(state_root) == []
