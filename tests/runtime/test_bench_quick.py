"""`bench/run.py --quick` end to end: every section present, every figure a number.

Runs the real bench (bare QEMU, urunc create/start, runc, a private containerd,
a small density run) with tiny counts, into a temporary directory.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
NEEDED = ("qemu-system-x86_64", "runc", "containerd", "ctr", "make")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or any(shutil.which(b) is None for b in NEEDED)
    or not os.access("/usr/local/bin/urunc", os.X_OK)
    or not (REPO / "build" / "images" / "hello.tar").is_file(),
    reason="needs root, qemu, runc, containerd, the installed urunc and `make images`",
)

STATS = ("median", "p10", "p90", "min", "max", "n")


def stats_ok(value: Any) -> bool:
    return (isinstance(value, dict) and all(k in value for k in STATS)
            and all(isinstance(value[k], int | float) and math.isfinite(value[k]) for k in STATS)
            and value["n"] >= 1)


def test_quick_bench_writes_every_section_with_numbers(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=420, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads((tmp_path / "results.json").read_text())
    sp, cmd, ctd, dens = r["start_path"], r["commands"], r["containerd"], r["density"]
    for contender in ("floor", "runtime", "runtime_with_timestamps"):
        assert stats_ok(sp[contender]["first_line_ms"]) and stats_ok(sp[contender]["exit_ms"]), contender
    for pair in ("first_line_overhead_ms", "exit_overhead_ms", "first_line_ratio", "exit_ratio"):
        assert stats_ok(sp["pairs"][pair]), pair
    phases = sp["phases_ms"]
    for phase in ("create: plan build", "create: cgroup, init into its namespaces, record", "init: monitor argv",
                  "monitor: execve to first guest line"):
        assert stats_ok(phases[phase]), phase
    assert stats_ok(cmd["python_floor_ms"]) and stats_ok(cmd["pairs"]["state_minus_python_ms"])
    for name in ("create", "start", "state", "kill", "delete"):
        assert stats_ok(cmd["urunc_ms"][name]) and stats_ok(cmd["runc_ms"][name]), name
    assert stats_ok(ctd["urunc_unikernel"]["wall_ms"]) and stats_ok(ctd["runc_busybox_true"]["wall_ms"])
    assert stats_ok(ctd["floor_exit_ms"])
    assert stats_ok(ctd["pairs"]["unikernel_minus_busybox_minus_floor_ms"])
    assert dens["failures"] == 0, dens["failure_messages"]
    assert dens["running"] == dens["n"] == 3
    big = r["large_rootfs"]
    if "skipped" not in big:
        for size in ("busybox", "large"):
            assert stats_ok(big[size]["first_output_ms"]) and stats_ok(big[size]["create_ms"]), size
        assert stats_ok(big["pairs"]["first_output_ratio"])
        assert big["busybox"]["shared_root"] == [False] and big["large"]["shared_root"] == [True]
        assert big["busybox"]["memory_mib"] == big["large"]["memory_mib"]
    assert stats_ok(dens["rss_kib"]) and stats_ok(dens["pss_kib"]) and dens["pss_kib"]["median"] > 0
    assert dens["urunc_python_processes"] == 0
    assert dens["monitor_parents_are_bench"] is True
    assert r["meta"]["accel_used"] == ["tcg"]
    ex = r["exec"]
    if "skipped" not in ex:
        assert stats_ok(ex["urunc_linux_guest_ms"]) and stats_ok(ex["runc_ms"])
        assert stats_ok(ex["pairs"]["urunc_minus_runc_ms"])
    tpl = r["templates"]
    if "skipped" not in tpl:
        for kind in ("runc", "cold", "warm"):
            assert stats_ok(tpl["ctr_run_ms"][kind]), kind
        assert stats_ok(tpl["pairs"]["warm_over_runc"]) and stats_ok(tpl["pairs"]["cold_over_runc"])
        assert 0 < tpl["idle_pss_sum_mib"]["warm"] and 0 < tpl["idle_pss_sum_mib"]["cold"]
        assert "## Linux guest templates" in (tmp_path / "results.md").read_text()
    assert len(r["targets"]) == (5 + (0 if "skipped" in big else 2) + (0 if "skipped" in ex else 1)
                                 + (0 if "skipped" in tpl else 2))
    assert all(isinstance(t["value"], int | float) for t in r["targets"])
    md = (tmp_path / "results.md").read_text()
    assert "## Targets" in md and "## Density" in md
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
