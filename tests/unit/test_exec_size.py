"""process.args/env that execve(2) would refuse at start (E2BIG) fail at create, in one line."""

from __future__ import annotations

import os

import pytest
from _bundles import build
from _plans import elf_with_note, manifest_desc

from urunc import _errors
from urunc.unikernel.plan import EXEC_HEADROOM, MAX_ARG_BYTES, MAX_EXEC_BYTES

SOLO5_KERNEL = elf_with_note(manifest_desc([(b"service0", 2)]))
LIMIT = MAX_ARG_BYTES - EXEC_HEADROOM


def test_one_huge_argument_to_a_command_line_guest_fails_at_create(tmp_path: object) -> None:
    with pytest.raises(_errors.BundleError, match=f"guest command line of .* bytes, more than the {LIMIT} "
                                                  "one qemu argument can take"):
        build(str(tmp_path), {"unikernelType": "unikraft", "hypervisor": "qemu"}, args=["app", "a" * (1 << 20)])


def test_one_huge_argument_to_a_tender_is_named(tmp_path: object) -> None:
    with pytest.raises(_errors.BundleError, match=r"process.args element 'bbbb.*'\.\.\. is 1048577 bytes"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt"}, kernel=SOLO5_KERNEL,
              args=["app", "b" * (1 << 20)])


def test_many_arguments_each_short_enough_are_bounded_together(tmp_path: object) -> None:
    args = ["c" * (LIMIT - 100)] * (MAX_EXEC_BYTES // LIMIT + 2)
    with pytest.raises(_errors.BundleError, match=f"more than the {MAX_EXEC_BYTES} an execve can take"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt"}, kernel=SOLO5_KERNEL, args=args)


@pytest.mark.parametrize("monitor", ["qemu", "firecracker"])
def test_ordinary_arguments_pass_and_the_check_writes_nothing(tmp_path: object, monitor: str) -> None:
    plan = build(str(tmp_path), {"unikernelType": "unikraft", "hypervisor": monitor},
                 args=["app", *["d" * 1000] * 100])
    assert len(plan.args) == 101
    # the Plan is pure: Firecracker's config file is written at create, not while planning
    assert os.listdir(os.path.join(str(tmp_path), "state")) == []
