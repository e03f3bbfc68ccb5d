"""The monitor in the spec's cgroup, with limits, on this host's real cgroupfs (v1 hybrid here).

The v2 layout is covered by tests/unit/test_cgroups.py on a fake tree (no v2
controllers on this machine).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers.bundles import hello_bundle, urunc

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
