"""Boots under firecracker, wherever the binary is on PATH.

Firecracker is not obtainable on the reference machine, so there this test
skips with that reason and the monitor is proven by its golden argv
(tests/unit/test_golden_argv.py). Where the binary exists, a Unikraft kernel
for it is named by URUNC_TEST_KERNEL_FIRECRACKER; the monitor runs the argv
urunc builds and must exit 0 and print the guest's output. The Solo5 tenders
boot Solo5's own test programs in tests/real/.
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

CASES = [("firecracker", "firecracker", "unikraft", True)]


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
