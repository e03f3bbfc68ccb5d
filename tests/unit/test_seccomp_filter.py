"""solo5-hvt's seccomp program: its layout, and its verdict on every case, by a classic-BPF interpreter.

The interpreter below runs the very instructions ``install`` hands the kernel,
on ``struct seccomp_data`` values, so each verdict pinned here is the one the
kernel would reach (tests/runtime/test_seccomp_runtime.py checks the kernel agrees).
"""

from __future__ import annotations

import os
import re
import struct

import pytest

from urunc.host import seccomp
from urunc.host.seccomp import NR, SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS

ALLOW, KILL = SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_PROCESS
AUDIT_ARCH_I386 = 0x40000003
UNISTD_64 = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"


def run(prog: bytes, nr: int, args: tuple[int, ...] = (), arch: int = seccomp.AUDIT_ARCH_X86_64) -> int:
    """Evaluate a packed classic-BPF seccomp program on one syscall; returns the action."""
    data = struct.pack("<IIQ6Q", nr, arch, 0x401000, *(tuple(args) + (0,) * (6 - len(args))))
    insns = [struct.unpack_from("<HBBI", prog, off) for off in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
        elif code == 0x54:
            acc &= k
        elif code in (0x15, 0x35, 0x45):
            taken = acc == k if code == 0x15 else acc >= k if code == 0x35 else bool(acc & k)
            pc += jt if taken else jf
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"opcode {code:#x} not expected in the program")


PROG = seccomp.hvt_filter()


def test_program_layout() -> None:
    insns = seccomp.build()
    assert len(PROG) == 8 * len(insns) and len(insns) < 4096        # BPF_MAXINSNS
    assert insns[0] == (0x20, 0, 0, 4)                             # load arch first
    assert insns[1][0] == 0x15 and insns[1][3] == seccomp.AUDIT_ARCH_X86_64 and insns[1][1] == 0
    assert insns[2] == (0x20, 0, 0, 0)                             # then the syscall number
    assert insns[3][0] == 0x35 and insns[3][3] == seccomp.X32_SYSCALL_BIT
    assert insns[-2] == (0x06, 0, 0, KILL)                         # the default action
    assert insns[-1] == (0x06, 0, 0, ALLOW)
    # the arch check's false branch and the x32 check's true branch land on the default
    assert 1 + 1 + insns[1][2] == len(insns) - 2
    assert 3 + 1 + insns[3][1] == len(insns) - 2


def test_every_listed_syscall_is_allowed_and_says_who_makes_it() -> None:
    names = [name for name, _ in seccomp.ALLOWED]
    assert len(names) == len(set(names))
    for name, why in seccomp.ALLOWED + seccomp.CHECKED:
        assert name in NR and why.split(":")[0] in ("loader", "libc", "solo5", "the kernel"), (name, why)
    for name in names:
        assert run(PROG, NR[name]) == ALLOW, name
    assert set(NR) == set(names) | {name for name, _ in seccomp.CHECKED}   # no number without a rule


@pytest.mark.parametrize("nr, name", [(101, "ptrace"), (165, "mount"), (57, "fork"), (58, "vfork"),
                                      (42, "connect"), (43, "accept"), (62, "kill"), (200, "tkill"),
                                      (234, "tgkill"), (321, "bpf"), (323, "userfaultfd"),
                                      (250, "keyctl"), (272, "unshare"), (308, "setns"),
                                      (310, "process_vm_readv"), (322, "execveat"), (105, "setuid"),
                                      (90, "chmod"), (87, "unlink"), (425, "io_uring_setup"),
                                      (56, "clone"), (435, "clone3"), (157, "prctl"), (15, "rt_sigreturn"),
                                      (14, "rt_sigprocmask"), (2, "open"), (89, "readlink"),
                                      (317, "seccomp"), (319, "memfd_create")])
def test_calls_outside_the_list_kill_the_process(nr: int, name: str) -> None:
    assert NR.get(name, nr) == nr
    assert run(PROG, nr) == KILL


def test_other_architectures_and_x32_are_killed() -> None:
    assert run(PROG, NR["read"], arch=AUDIT_ARCH_I386) == KILL       # int 0x80: read is 3 there, any nr dies
    assert run(PROG, 20, arch=AUDIT_ARCH_I386) == KILL
    assert run(PROG, seccomp.X32_SYSCALL_BIT | NR["read"]) == KILL


def test_ioctl_only_kvm_and_tunsetiff() -> None:
    for cmd in (0xAE00, 0xAE01, 0xAE80, 0xC008AE05, 0x4090AE82, 0x400454CA):
        # KVM_GET_API_VERSION, CREATE_VM, RUN, a KVM _IOWR, SET_REGS-like, TUNSETIFF
        assert run(PROG, NR["ioctl"], (3, cmd)) == ALLOW, hex(cmd)
    for cmd in (0x5401, 0x400454CB, 0x800454D2, 0x80081272, 0x4C00, 0x5000, 0xAF00, 0x40049409):
        # TCGETS, TUNSETPERSIST, TUNGETIFF, BLKGETSIZE64, LOOP_SET_FD, ..., BTRFS
        assert run(PROG, NR["ioctl"], (3, cmd)) == KILL, hex(cmd)


def test_socket_only_netlink_route() -> None:
    assert run(PROG, NR["socket"], (16, 0x80003, 0)) == ALLOW          # getifaddrs' AF_NETLINK, NETLINK_ROUTE
    assert run(PROG, NR["socket"], (16, 3, 9)) == KILL                 # NETLINK_AUDIT
    assert run(PROG, NR["socket"], (16, 3, 4)) == KILL                 # NETLINK_SOCK_DIAG
    for family in (1, 2, 10, 17):                                      # unix, inet, inet6, packet
        assert run(PROG, NR["socket"], (family, 1, 0)) == KILL


def test_fcntl_only_setfl() -> None:
    assert run(PROG, NR["fcntl"], (3, 4, 0o4000)) == ALLOW             # F_SETFL O_NONBLOCK
    for cmd in (0, 1030, 8, 1033):      # F_DUPFD, F_DUPFD_CLOEXEC, F_SETOWN, F_SETPIPE_SZ
        assert run(PROG, NR["fcntl"], (3, cmd, 0)) == KILL


def test_personality_only_the_query() -> None:
    assert run(PROG, NR["personality"], (0xFFFFFFFF,)) == ALLOW
    # PER_LINUX, READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, PER_LINUX32: setting any persona
    for persona in (0, 0x0400000, 0x0040000, 0x0008):
        assert run(PROG, NR["personality"], (persona,)) == KILL


@pytest.mark.skipif(not os.path.exists(UNISTD_64), reason=f"{UNISTD_64} not installed (linux-libc-dev)")
def test_syscall_numbers_match_the_kernel_headers() -> None:
    with open(UNISTD_64) as f:
        kernel = {name: int(nr) for name, nr in re.findall(r"#define __NR_(\w+) (\d+)", f.read())}
    assert {name: kernel.get(name) for name in NR} == NR
