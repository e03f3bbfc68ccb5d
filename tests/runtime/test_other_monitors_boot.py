"""Boots under firecracker, solo5-hvt and solo5-spt, wherever the binary is on PATH.

None of them is obtainable on the reference machine, so there these tests
skip with that reason and the monitors are proven by their golden argv
(tests/unit/test_golden_argv.py). Where the binary exists, a guest kernel for
it is named by an environment variable (URUNC_TEST_KERNEL_FIRECRACKER: a
Unikraft kernel for Firecracker; URUNC_TEST_KERNEL_HVT / _SPT: a Solo5
hello-world built for that tender); the monitor runs the argv urunc builds
and must exit 0 and print the guest's output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "unit"))
from _plans import plan  # noqa: E402

from urunc import guests, monitors  # noqa: E402

CASES = [("firecracker", "firecracker", "unikraft", True), ("hvt", "solo5-hvt", "solo5", True),
         ("spt", "solo5-spt", "solo5", False)]


@pytest.mark.parametrize("monitor, binary, guest, needs_kvm", CASES, ids=[c[0] for c in CASES])
def test_boot(tmp_path: object, monitor: str, binary: str, guest: str, needs_kvm: bool) -> None:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} not on PATH")
    if needs_kvm and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip(f"{binary} needs /dev/kvm")
    kernel = os.environ.get(f"URUNC_TEST_KERNEL_{monitor.upper()}")
    if not kernel:
        pytest.skip(f"{binary} found, but no guest kernel named by URUNC_TEST_KERNEL_{monitor.upper()}")
    p = plan(guest=guest, monitor=monitor, monitor_path=path, kernel=kernel, state_dir=str(tmp_path),
             args=("hello",), env=(), memory_mib=128)
    p = guests.get(guest).prepare(p)
    argv = monitors.get(monitor).argv(p, guests.get(guest), None)
    done = subprocess.run(argv, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert done.stdout
