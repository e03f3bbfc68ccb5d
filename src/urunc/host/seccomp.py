"""A seccomp filter for solo5-hvt, built as classic BPF and installed right before ``execve``.

solo5-spt confines itself, QEMU has ``-sandbox``; solo5-hvt (the KVM tender)
runs unconfined, so the init confines it: ``identity.drop`` sets no_new_privs,
then ``install(hvt_filter())``, then ``execve(solo5-hvt ...)``. The filter
survives the exec and binds the tender from its first instruction, so it
allows the tender's whole life: the kernel's exec, ld.so and glibc start-up,
Solo5's set-up (``tenders/hvt/hvt_main.c``, ``hvt_kvm*.c``, ``hvt_module_*.c``,
``tenders/common/{elf,tap_attach,block_attach}.c``) and its run loop.

    ld arch ── not AUDIT_ARCH_X86_64 ──────────────▶ kill process
    ld nr   ── x32 ABI bit set ───────────────────▶ kill process
            ── one of ALLOWED ────────────────────▶ allow
            ── clone: CLONE_THREAD set ───────────▶ allow (threads, never a new process)
            ── clone3 ────────────────────────────▶ ENOSYS (glibc then uses clone, checked above)
            ── ioctl: type KVMIO or 'T' (tun, tty) ▶ allow
            ── socket: AF_NETLINK ────────────────▶ allow (getifaddrs)
            ── prctl: seccomp / no_new_privs ─────▶ allow
            ── anything else ─────────────────────▶ kill process

Why kill, not an errno: a tender that makes a call outside this list is
broken or compromised; an errno would let it probe the filter and go on in a
state nobody planned, while SIGSYS ends the container at once, visibly (exit
159, and the kernel's audit log names the call). KILL_PROCESS rather than
KILL_THREAD, so the net I/O thread cannot die alone under a running guest.

Why ``execve`` stays allowed: the filter is installed before the tender's own
exec, and classic BPF keeps no state, so it cannot allow exactly one. That
costs nothing: whatever the tender execs inherits this same filter and
no_new_privs, so it gains no call and no privilege (setuid bits are ignored).

Only struct for the program; ``syscalls.seccomp_filter`` installs it. Imported only when the
monitor is hvt, so no other container pays for it.
"""

from __future__ import annotations

import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
ENOSYS = 38

# Classic BPF opcodes (linux/bpf_common.h).
LD_W_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS: A = seccomp_data[k]
JEQ = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
JGE = 0x35        # BPF_JMP | BPF_JGE | BPF_K
JSET = 0x45       # BPF_JMP | BPF_JSET | BPF_K
AND = 0x54        # BPF_ALU | BPF_AND | BPF_K
RET = 0x06        # BPF_RET | BPF_K

# struct seccomp_data: nr (u32), arch (u32), instruction_pointer (u64), args[6] (u64).
OFF_NR, OFF_ARCH = 0, 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of args[index] (little endian); ioctl's cmd, socket's
    domain, prctl's option and clone's flags all live there (the kernel reads them as int)."""
    return 16 + 8 * index


# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
NR = {
    "read": 0, "write": 1, "open": 2, "close": 3, "fstat": 5, "lseek": 8, "mmap": 9,
    "mprotect": 10, "munmap": 11, "brk": 12, "rt_sigaction": 13, "rt_sigprocmask": 14,
    "rt_sigreturn": 15, "ioctl": 16, "pread64": 17, "pwrite64": 18, "writev": 20, "access": 21,
    "madvise": 28, "readlink": 89, "socket": 41, "sendto": 44, "recvmsg": 47, "bind": 49, "getsockname": 51,
    "clone": 56, "execve": 59, "exit": 60, "fcntl": 72, "prctl": 157, "arch_prctl": 158,
    "futex": 202, "epoll_wait": 232, "set_tid_address": 218, "clock_gettime": 228,
    "exit_group": 231, "epoll_ctl": 233, "openat": 257, "newfstatat": 262, "set_robust_list": 273,
    "epoll_pwait": 281, "timerfd_create": 283, "timerfd_settime": 286, "eventfd2": 290,
    "epoll_create1": 291, "ppoll": 271, "prlimit64": 302, "getrandom": 318, "memfd_create": 319,
    "seccomp": 317, "rseq": 334, "clone3": 435,
}

# Allowed without looking at arguments: (syscall, why solo5-hvt makes it).
ALLOWED = (
    # the exec and the start-up of a dynamically linked glibc program
    ("execve", "the tender's own exec: the filter is installed just before it"),
    ("brk", "malloc's heap, ld.so"),
    ("arch_prctl", "glibc sets the thread pointer (TLS) at start-up"),
    ("set_tid_address", "glibc start-up"),
    ("set_robust_list", "glibc start-up and every new thread"),
    ("rseq", "glibc >= 2.35 registers restartable sequences per thread"),
    ("prlimit64", "glibc reads the stack limit at start-up"),
    ("getrandom", "malloc seeds its tcache key"),
    ("access", "ld.so looks for /etc/ld.so.preload"),
    ("readlink", "a statically linked glibc resolves /proc/self/exe at start-up"),
    ("openat", "ld.so opens libraries; the tender opens /dev/kvm, the kernel, /dev/net/tun, the disk"),
    ("open", "the same for a tender built against musl, which calls open, not openat"),
    ("newfstatat", "ld.so and stdio stat their files (glibc >= 2.33)"),
    ("fstat", "the same on older glibc and musl; hvt_seccomp_linux sizes its exported filter"),
    ("close", "ld.so, elf_load, tap_attach and the net module close what they opened"),
    ("mmap", "ld.so maps libraries; guest memory; the vcpu's kvm_run area; thread stacks"),
    ("mprotect", "ld.so's RELRO; elf_load protects guest segments; thread stack guards"),
    ("munmap", "ld.so and malloc give mappings back"),
    ("madvise", "glibc releases a finished thread's stack"),
    # the tender's own work
    ("read", "ld.so reads libraries; tap frames in; eventfd kicks of the net I/O thread"),
    ("pread64", "elf_load reads the unikernel; block reads; ld.so reads ELF headers"),
    ("write", "the guest console (puts hypercall to fd 1), stderr, tap frames out, eventfd kicks"),
    ("writev", "glibc's fatal-error messages on stderr"),
    ("pwrite64", "block writes"),
    ("lseek", "block_attach sizes the disk with SEEK_END"),
    ("fcntl", "tap_attach sets O_NONBLOCK on a tap handed over as --net:NAME=@FD"),
    ("rt_sigaction", "hvt_main installs SIGINT and SIGTERM handlers"),
    ("rt_sigprocmask", "ppoll's mask, pthread_create, thread start-up"),
    ("rt_sigreturn", "return from the SIGINT/SIGTERM handler"),
    ("ppoll", "the poll hypercall (Solo5 <= 0.8)"),
    ("epoll_create1", "the poll hypercall (later Solo5)"),
    ("epoll_ctl", "the poll hypercall registers the tap fds"),
    ("epoll_pwait", "the poll hypercall waits"),
    ("epoll_wait", "the same where glibc's epoll_wait is not epoll_pwait"),
    ("timerfd_create", "the poll hypercall's timeout (later Solo5)"),
    ("timerfd_settime", "arms that timeout"),
    ("eventfd2", "KVM_IOEVENTFD kick of the net ring's I/O thread (later Solo5)"),
    ("clock_gettime", "the walltime hypercall when the vDSO cannot answer"),
    ("futex", "pthread_join and glibc's locks"),
    ("exit", "the net I/O thread ends"),
    ("exit_group", "the tender ends with the unikernel's exit status"),
    ("bind", "getifaddrs (tap_attach checks the tap exists and is up) on its netlink socket"),
    ("getsockname", "getifaddrs"),
    ("sendto", "getifaddrs sends its RTM_GETLINK/RTM_GETADDR dumps"),
    ("recvmsg", "getifaddrs reads the dumps"),
    ("seccomp", "a tender that confines itself (hvt_seccomp_linux.c) stacks its own, narrower filter"),
    ("memfd_create", "that tender exports its libseccomp program through a memfd"),
)

KVMIO, TTY_OR_TUN = 0xAE, ord("T")   # ioctl type byte: KVM_* ioctls; TUNSETIFF, TCGETS
AF_NETLINK = 16
CLONE_THREAD = 0x10000
PRCTL_OPTIONS = (21, 22, 38, 39)     # PR_GET_SECCOMP, PR_SET_SECCOMP, PR_SET/GET_NO_NEW_PRIVS

# Checked on an argument: (syscall, why).
CHECKED = (
    ("ioctl", "only KVM ioctls (KVMIO) and 'T' ioctls (TUNSETIFF on /dev/net/tun, isatty's TCGETS)"),
    ("socket", "only AF_NETLINK: getifaddrs in tap_attach; no IP socket, no unix socket"),
    ("clone", "only with CLONE_THREAD: the net I/O thread; never a new process"),
    ("clone3", "ENOSYS, so glibc falls back to clone, whose flags a filter can read"),
    ("prctl", "only the seccomp and no_new_privs options, for a tender that confines itself"),
)


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, jt: int, jf: int) -> tuple[int, int, int, int]:
    if not (0 <= jt < 256 and 0 <= jf < 256):
        raise ValueError(f"bpf jump out of range: {jt} {jf}")
    return (code, jt, jf, k)


def _checked_blocks() -> list[tuple[str, list[tuple[int, int, int, int]]]]:
    """Per checked syscall, the instructions after its JEQ; each block ends in a RET."""
    allow, kill = _stmt(RET, SECCOMP_RET_ALLOW), _stmt(RET, SECCOMP_RET_KILL_PROCESS)
    ioctl = [_stmt(LD_W_ABS, _arg_low(1)), _stmt(AND, 0xFF00),
             _jump(JEQ, KVMIO << 8, 1, 0), _jump(JEQ, TTY_OR_TUN << 8, 0, 1), allow, kill]
    socket = [_stmt(LD_W_ABS, _arg_low(0)), _jump(JEQ, AF_NETLINK, 0, 1), allow, kill]
    clone = [_stmt(LD_W_ABS, _arg_low(0)), _jump(JSET, CLONE_THREAD, 0, 1), allow, kill]
    clone3 = [_stmt(RET, SECCOMP_RET_ERRNO | ENOSYS)]
    prctl = [_stmt(LD_W_ABS, _arg_low(0))]
    n = len(PRCTL_OPTIONS)
    for i, option in enumerate(PRCTL_OPTIONS):
        prctl.append(_jump(JEQ, option, n - i - 1, 0) if i < n - 1 else _jump(JEQ, option, 0, 1))
    prctl += [allow, kill]
    blocks = {"ioctl": ioctl, "socket": socket, "clone": clone, "clone3": clone3, "prctl": prctl}
    return [(name, blocks[name]) for name, _ in CHECKED]


def build() -> list[tuple[int, int, int, int]]:
    """The program as (code, jt, jf, k) instructions."""
    names = [name for name, _ in ALLOWED]
    blocks = _checked_blocks()
    prog: list[tuple[int, int, int, int]] = [_stmt(LD_W_ABS, OFF_ARCH)]
    # Layout: header (4), one JEQ per allowed call, the checked blocks, RET kill, RET allow.
    tail = sum(1 + len(block) for _, block in blocks)
    kill_at = 4 + len(names) + tail
    allow_at = kill_at + 1
    prog.append(_jump(JEQ, AUDIT_ARCH_X86_64, 0, kill_at - 2))
    prog.append(_stmt(LD_W_ABS, OFF_NR))
    prog.append(_jump(JGE, X32_SYSCALL_BIT, kill_at - 4, 0))
    for name in names:
        prog.append(_jump(JEQ, NR[name], allow_at - len(prog) - 1, 0))
    for name, block in blocks:
        prog.append(_jump(JEQ, NR[name], 0, len(block)))
        prog += block
    prog.append(_stmt(RET, SECCOMP_RET_KILL_PROCESS))
    prog.append(_stmt(RET, SECCOMP_RET_ALLOW))
    return prog


def hvt_filter() -> bytes:
    """solo5-hvt's filter as the bytes of a struct sock_filter array."""
    return pack(build())


def pack(prog: list[tuple[int, int, int, int]]) -> bytes:
    return b"".join(struct.pack("<HBBI", *insn) for insn in prog)


def install(program: bytes) -> None:
    """Confine the calling thread (and what it execs) with PROGRAM; no_new_privs must be set.

    No TSYNC: the init is single-threaded when it execs the monitor.
    """
    from urunc.host import syscalls

    syscalls.seccomp_filter(program)
