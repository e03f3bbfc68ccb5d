"""The few Linux calls Python 3.11's os module lacks (setns, unshare, mount, prctl, seccomp, openat2).

They come from the C extension ``urunc.host._linux`` (built by the installer;
~0.1 ms to import) or, in a source checkout without it, from ctypes (~4.5 ms
to import, paid by every container init). Both raise OSError; the functions
here turn that into one-line HostErrors.
"""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_SET_PDEATHSIG = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SYS_OPENAT2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_IN_ROOT = 0x10


class _Ctypes:
    """The extension's functions through ctypes, for a checkout where it is not built."""

    def __init__(self) -> None:
        import ctypes

        self.ct = ctypes
        self.libc = ctypes.CDLL(None, use_errno=True)

    def _check(self, result: int) -> None:
        if result != 0:
            err = self.ct.get_errno()
            raise OSError(err, os.strerror(err))

    def setns(self, fd: int, nstype: int) -> None:
        self._check(self.libc.setns(fd, nstype))

    def unshare(self, flags: int) -> None:
        self._check(self.libc.unshare(flags))

    def mount(self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None) -> None:
        def enc(s: str | None) -> bytes | None:
            return None if s is None else s.encode()

        self._check(self.libc.mount(enc(source), target.encode(), enc(fstype), self.ct.c_ulong(flags), enc(data)))

    def prctl(self, option: int, arg: int) -> None:
        ul = self.ct.c_ulong
        self._check(self.libc.prctl(option, ul(arg), ul(0), ul(0), ul(0)))

    def seccomp_filter(self, program: bytes) -> None:
        import ctypes as ct
        if not program or len(program) % 8 or len(program) // 8 > 4096:
            raise ValueError(f"seccomp program of {len(program)} bytes is not 1 to 4096 instructions")

        class SockFprog(ct.Structure):
            _fields_ = [("len", ct.c_ushort), ("filter", ct.c_void_p)]

        buf = ct.create_string_buffer(program, len(program))
        fprog = SockFprog(len(program) // 8, ct.addressof(buf))
        ul = ct.c_ulong
        self._check(self.libc.prctl(PR_SET_SECCOMP, ul(SECCOMP_MODE_FILTER), ct.byref(fprog), ul(0), ul(0)))


    def openat2(self, dirfd: int, path: str, flags: int, resolve: int) -> int:
        import struct

        how = self.ct.create_string_buffer(struct.pack("=QQQ", flags & 0xFFFFFFFF, 0, resolve), 24)
        syscall = self.libc.syscall
        syscall.restype = self.ct.c_long
        fd: int = syscall(self.ct.c_long(SYS_OPENAT2), self.ct.c_int(dirfd), os.fsencode(path), how,
                          self.ct.c_size_t(24))
        if fd < 0:
            err = self.ct.get_errno()
            raise OSError(err, os.strerror(err))
        return fd


def _load() -> ModuleType | _Ctypes:
    try:
        from urunc.host import _linux  # type: ignore[attr-defined]
    except ImportError:
        return _Ctypes()
    return _linux  # type: ignore[no-any-return]


_impl = _load()


def _call(what: str, fn: Callable[..., None], *args: object) -> None:
    """FN(*ARGS); an OSError becomes a one-line HostError starting with WHAT."""
    try:
        fn(*args)
    except OSError as exc:
        raise _errors.HostError(f"{what}: {exc.strerror or os.strerror(exc.errno or 0)}") from None


def setns(fd: int, nstype: int, what: str) -> None:
    _call(f"cannot join {what}", _impl.setns, fd, nstype)


def unshare(flags: int) -> None:
    _call(f"cannot create namespaces (flags {flags:#x})", _impl.unshare, flags)


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _call(f"cannot mount {target}", _impl.mount, source, target, fstype, flags, data)


def prctl(option: int, arg: int) -> None:
    _call(f"prctl {option}", _impl.prctl, option, arg)


def seccomp_filter(program: bytes) -> None:
    """Install PROGRAM (a struct sock_filter array) on the calling thread; needs no_new_privs."""
    _call("cannot install the seccomp filter", _impl.seccomp_filter, program)


def open_in_root(root_fd: int, path: str, flags: int) -> int:
    """Open PATH as if ROOT_FD were ``/``: ``..`` and every symlink, absolute or not, resolve
    inside it (openat2 RESOLVE_IN_ROOT), and no /proc magic link is followed. Raises OSError."""
    fd: int = _impl.openat2(root_fd, path, flags | os.O_CLOEXEC, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    return fd
