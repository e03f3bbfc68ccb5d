"""`make demo` pulls only what the demo runs; `make test` still gets everything (dry runs of make)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _dry_run(target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    result = subprocess.run(["make", "-n", "-C", str(REPO), target], capture_output=True, text=True,
                            timeout=120, check=True)
    return result.stdout


def test_make_demo_fetches_no_linux_kernel_and_installs_no_docker() -> None:
    out = _dry_run("demo")
    assert "packaging/demo.sh" in out and "guests/hello" in out
    for unneeded in ("fetch-kernel.sh", "guests/linux", "guests/pause", " docker.io ", "containernetworking-plugins",
                     "skopeo"):
        assert unneeded not in out, unneeded


def test_make_test_still_builds_and_installs_everything() -> None:
    out = _dry_run("test")
    for needed in ("fetch-kernel.sh", "guests/linux", "guests/pause", "guests/hello", " docker.io ",
                   "containernetworking-plugins", "skopeo", "qemu-system-x86", "containerd"):
        assert needed in out, needed
