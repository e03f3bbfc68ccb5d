"""A seccomp filter for solo5-hvt, built as classic BPF and installed right before ``execve``.

solo5-spt confines itself, QEMU has ``-sandbox``; solo5-hvt (the KVM tender)
runs unconfined, so the init confines it: ``identity.drop`` sets no_new_privs,
then ``install(hvt_filter())``, then ``execve(solo5-hvt ...)``. The filter
survives the exec and binds the tender from its first instruction, so it
allows the tender's whole life: the kernel's exec, the dynamic loader and
glibc's start-up (the tender is dynamically linked), Solo5's set-up and its
run loop.

The list is what the real tender makes: Solo5 v0.9.0's ``solo5-hvt``, built
unchanged with ``./configure.sh && make`` on Debian 12 (glibc 2.36), traced
with ``strace -f`` over every one of Solo5's own ``test_*.hvt`` programs (tap
by name and as ``@FD``, a block device, SIGTERM while running). Each entry
says who makes the call: ``loader`` (ld.so mapping libc), ``libc`` (glibc's
start-up and what its functions call underneath) or ``solo5`` (the tender's
own code, ``tenders/hvt/*.c`` and ``tenders/common/*.c``).
``tests/real/test_hvt_seccomp.py`` runs the real tender under it for every
``test_*.hvt``; a tender built against another libc may make calls this list
lacks, and dies of SIGSYS at the first (the kernel's audit log names it).

    ld arch ── not AUDIT_ARCH_X86_64 ─────────────────▶ kill process
    ld nr   ── x32 ABI bit set ──────────────────────▶ kill process
            ── one of ALLOWED ───────────────────────▶ allow
            ── ioctl: type KVMIO, or TUNSETIFF ──────▶ allow
            ── socket: AF_NETLINK, NETLINK_ROUTE ────▶ allow (getifaddrs)
            ── fcntl: F_SETFL ───────────────────────▶ allow (O_NONBLOCK on a tap fd)
            ── personality: 0xffffffff (query) ──────▶ allow
            ── anything else ────────────────────────▶ kill process

Not allowed, because v0.9.0's tender never makes them: clone and clone3 (it
has no threads: the vCPU loop and the poll hypercall share one), prctl,
rt_sigreturn (its SIGINT/SIGTERM handler ends the process with ``errx``,
it never returns), rt_sigprocmask and tgkill (glibc's ``abort``, reached only
through a failed ``assert`` in the tender: its message is written, then SIGSYS
ends it instead of SIGABRT; either way a signal ends the container).

Why kill, not an errno: a tender that makes a call outside this list is
broken or compromised; an errno would let it probe the filter and go on in a
state nobody planned, while SIGSYS ends the container at once, visibly (exit
159, and the kernel's audit log names the call).

Why ``execve`` stays allowed: the filter is installed before the tender's own
exec, and classic BPF keeps no state, so it cannot allow exactly one. That
costs nothing: whatever the tender execs inherits this same filter and
no_new_privs, so it gains no call and no privilege (setuid bits are ignored),
and without clone it cannot make a process to exec anything beside itself.

Only struct for the program; ``syscalls.seccomp_filter`` installs it. Imported only when the
monitor is hvt, so no other container pays for it.
"""

from __future__ import annotations

import struct

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ALLOW = 0x7FFF0000

# Classic BPF opcodes (linux/bpf_common.h).
LD_W_ABS = 0x20   # BPF_LD | BPF_W | BPF_ABS: A = seccomp_data[k]
JEQ = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
JGE = 0x35        # BPF_JMP | BPF_JGE | BPF_K
AND = 0x54        # BPF_ALU | BPF_AND | BPF_K
RET = 0x06        # BPF_RET | BPF_K

# struct seccomp_data: nr (u32), arch (u32), instruction_pointer (u64), args[6] (u64).
OFF_NR, OFF_ARCH = 0, 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of args[index] (little endian); ioctl's cmd, socket's domain and
    protocol, fcntl's cmd and personality's argument live there (the kernel reads them as int)."""
    return 16 + 8 * index


# x86_64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
NR = {
    "read": 0, "write": 1, "close": 3, "lseek": 8, "mmap": 9, "mprotect": 10, "munmap": 11,
    "brk": 12, "rt_sigaction": 13, "ioctl": 16, "pread64": 17, "pwrite64": 18, "access": 21,
    "socket": 41, "sendto": 44, "recvmsg": 47, "bind": 49, "getsockname": 51, "execve": 59,
    "fcntl": 72, "personality": 135, "arch_prctl": 158, "set_tid_address": 218,
    "clock_gettime": 228, "exit_group": 231, "epoll_ctl": 233, "openat": 257, "newfstatat": 262,
    "set_robust_list": 273, "epoll_pwait": 281, "timerfd_create": 283, "timerfd_settime": 286,
    "epoll_create1": 291, "prlimit64": 302, "getrandom": 318, "rseq": 334,
}

# Allowed without looking at arguments: (syscall, who makes it and why).
ALLOWED = (
    ("execve", "the kernel: the tender's own exec, as the filter is installed just before it"),
    # ld.so loading libc.so.6
    ("access", "loader: looks for /etc/ld.so.preload"),
    ("openat", "loader: ld.so.cache and libc.so.6; solo5: /dev/kvm, the unikernel, /dev/net/tun, the disk"),
    ("newfstatat", "loader: sizes ld.so.cache and libc.so.6"),
    ("read", "loader: libc's ELF header; solo5: frames from the tap (net read hypercall)"),
    ("pread64", "loader: libc's program headers; solo5: elf_load reads the unikernel, block reads"),
    ("mmap", "loader: maps libc; libc: TLS; solo5: guest memory, the vcpu's kvm_run area"),
    ("mprotect", "loader: RELRO; solo5: elf_load protects the guest's text and rodata"),
    ("munmap", "loader: unmaps ld.so.cache"),
    ("close", "loader: ld.so.cache and libc.so.6; solo5: elf_load and tap_attach close what they opened"),
    # glibc start-up and what glibc functions call
    ("brk", "libc: malloc's heap (calloc of the hvt state, getifaddrs' list)"),
    ("arch_prctl", "libc: sets the thread pointer (TLS) at start-up"),
    ("set_tid_address", "libc: start-up"),
    ("set_robust_list", "libc: start-up"),
    ("rseq", "libc: glibc >= 2.35 registers the thread's restartable sequence"),
    ("prlimit64", "libc: reads the stack limit at start-up"),
    ("getrandom", "libc: malloc seeds its tcache key on first use"),
    ("bind", "libc: getifaddrs (tap_attach checks the tap exists) binds its netlink socket"),
    ("getsockname", "libc: getifaddrs"),
    ("sendto", "libc: getifaddrs sends its RTM_GETLINK/RTM_GETADDR dumps"),
    ("recvmsg", "libc: getifaddrs reads the dumps"),
    ("clock_gettime", "libc: the vDSO answers solo5's clock reads unless the clocksource has no vDSO"),
    ("exit_group", "libc: exit(), the unikernel's status (solo5_exit, abort: 255) or errx's 1"),
    # Solo5's tender itself
    ("write", "solo5: the guest console (puts hypercall) to fd 1, warnings to fd 2, frames to the tap"),
    ("pwrite64", "solo5: block writes"),
    ("lseek", "solo5: block_attach sizes the disk with SEEK_END"),
    ("rt_sigaction", "solo5: hvt_main's SIGINT and SIGTERM handlers"),
    ("epoll_create1", "solo5: hvt_module_net and the poll hypercall (epoll over the taps and a timerfd)"),
    ("epoll_ctl", "solo5: registers the taps and the timerfd"),
    ("epoll_pwait", "solo5: the poll hypercall waits"),
    ("timerfd_create", "solo5: the poll hypercall's timeout"),
    ("timerfd_settime", "solo5: arms that timeout"),
)

KVMIO = 0xAE                         # ioctl type byte of every KVM_* ioctl
TUNSETIFF = 0x400454CA               # _IOW('T', 202, int)
AF_NETLINK, NETLINK_ROUTE = 16, 0
F_SETFL = 4
PERSONALITY_QUERY = 0xFFFFFFFF       # personality(0xffffffff) reads the persona, changes nothing

# Checked on an argument: (syscall, who makes it and why).
CHECKED = (
    ("ioctl", "solo5: KVM ioctls (KVMIO) on /dev/kvm, the VM and the vcpu; TUNSETIFF on /dev/net/tun"),
    ("socket", "libc: only AF_NETLINK/NETLINK_ROUTE, getifaddrs in tap_attach; no IP, no unix socket"),
    ("fcntl", "solo5: only F_SETFL, tap_attach sets O_NONBLOCK on a tap handed over as --net:NAME=@FD"),
    ("personality", "solo5: only the query, hvt_drop_privileges refuses to run with READ_IMPLIES_EXEC"),
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
    ioctl = [_stmt(LD_W_ABS, _arg_low(1)), _jump(JEQ, TUNSETIFF, 2, 0), _stmt(AND, 0xFF00),
             _jump(JEQ, KVMIO << 8, 0, 1), allow, kill]
    socket = [_stmt(LD_W_ABS, _arg_low(0)), _jump(JEQ, AF_NETLINK, 0, 3),
              _stmt(LD_W_ABS, _arg_low(2)), _jump(JEQ, NETLINK_ROUTE, 0, 1), allow, kill]
    fcntl = [_stmt(LD_W_ABS, _arg_low(1)), _jump(JEQ, F_SETFL, 0, 1), allow, kill]
    personality = [_stmt(LD_W_ABS, _arg_low(0)), _jump(JEQ, PERSONALITY_QUERY, 0, 1), allow, kill]
    blocks = {"ioctl": ioctl, "socket": socket, "fcntl": fcntl, "personality": personality}
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
