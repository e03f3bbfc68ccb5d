"""urunc.host.syscalls' two backends, the C extension and its ctypes fallback, on the real kernel.

Each check runs in a forked child (namespaces, mounts, no_new_privs and seccomp
are one-way) and reports through its exit status.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import socket
import struct
import subprocess
import sysconfig
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from urunc import _errors
from urunc.host import syscalls

SRC = Path(__file__).resolve().parents[2] / "src" / "urunc" / "host" / "_linux.c"
CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
NR_UNAME = 63  # x86-64
AUDIT_ARCH_X86_64 = 0xC000003E


@pytest.fixture(scope="module")
def extension(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    if shutil.which("gcc") is None or not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        pytest.skip("needs gcc and the Python headers (python3-dev) to build the extension")
    out = tmp_path_factory.mktemp("ext") / f"_linux{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-parameter", "-shared", "-fPIC",
                    f"-I{sysconfig.get_paths()['include']}", "-o", str(out), str(SRC)], check=True)
    spec = importlib.util.spec_from_file_location("_linux", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["extension", "ctypes"])
def impl(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    backend = request.getfixturevalue("extension") if request.param == "extension" else syscalls._Ctypes()
    monkeypatch.setattr(syscalls, "_impl", backend)
    return backend


def in_child(check: Callable[[], None]) -> None:
    """Run CHECK in a forked child; fail with its exception text if it raised."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        code = 0
        try:
            check()
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            os.write(w, f"{type(exc).__name__}: {exc}".encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        message = f.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, message


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces and mounts need root")


@needs_root
def test_unshare_and_setns_back(impl: Any) -> None:
    host_name = socket.gethostname()

    def check() -> None:
        own = os.open("/proc/self/ns/uts", os.O_RDONLY)
        syscalls.unshare(CLONE_NEWUTS)
        socket.sethostname("urunc-syscalls-test")
        assert socket.gethostname() == "urunc-syscalls-test"
        syscalls.setns(own, CLONE_NEWUTS, "uts namespace")
        assert socket.gethostname() == host_name

    in_child(check)
    assert socket.gethostname() == host_name


@needs_root
def test_mount_stays_in_a_slave_namespace(impl: Any, tmp_path: Path) -> None:
    target = tmp_path / "m"
    target.mkdir()

    def check() -> None:
        syscalls.unshare(CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
        syscalls.mount("tmpfs", str(target), "tmpfs", 0, "size=1m")
        (target / "inside").write_text("x")

    in_child(check)
    assert list(target.iterdir()) == []


def test_prctl_no_new_privs(impl: Any) -> None:
    def check() -> None:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        assert "NoNewPrivs:\t1" in Path("/proc/self/status").read_text()

    in_child(check)
    assert "NoNewPrivs:\t0" in Path("/proc/self/status").read_text()


def test_seccomp_filter_confines_the_caller(impl: Any) -> None:
    def stmt(code: int, k: int) -> bytes:
        return struct.pack("<HBBI", code, 0, 0, k)

    def jeq(k: int, jt: int, jf: int) -> bytes:
        return struct.pack("<HBBI", 0x15, jt, jf, k)

    program = b"".join([
        stmt(0x20, 4), jeq(AUDIT_ARCH_X86_64, 0, 3),    # arch: anything else is allowed
        stmt(0x20, 0), jeq(NR_UNAME, 0, 1),             # nr == uname ...
        stmt(0x06, 0x00050000 | errno.EPERM),           # ... fails with EPERM
        stmt(0x06, 0x7FFF0000),                         # the rest is allowed
    ])

    def check() -> None:
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
        syscalls.seccomp_filter(program)
        with pytest.raises(PermissionError):
            os.uname()
        assert "Seccomp:\t2" in Path("/proc/self/status").read_text()

    in_child(check)
    os.uname()


def test_errors_are_one_line_host_errors(impl: Any) -> None:
    with pytest.raises(_errors.HostError, match="^cannot join net namespace: Bad file descriptor$"):
        syscalls.setns(-1, 0, "net namespace")
    with pytest.raises(ValueError, match="not 1 to 4096 instructions"):
        syscalls.seccomp_filter(b"\0" * 12)



def test_open_in_root_resolves_every_symlink_and_dotdot_inside_the_root(impl: Any, tmp_path: Path) -> None:
    host = tmp_path / "host.txt"
    host.write_text("host\n")
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / str(host).lstrip("/")).parent.mkdir(parents=True)
    (root / str(host).lstrip("/")).write_text("inside\n")
    (root / "abs").symlink_to(host)                      # absolute: read as rooted at root
    (root / "up").symlink_to("../../../../../../" + str(host).lstrip("/"))
    (root / "etc" / "proc").symlink_to("/proc/self/root" + str(host))  # through a magic link
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("abs", "up", "../../../../" + str(host).lstrip("/")):
            fd = syscalls.open_in_root(root_fd, name, os.O_RDONLY)
            try:
                assert os.read(fd, 100) == b"inside\n", name
                assert not os.get_inheritable(fd)
            finally:
                os.close(fd)
        with pytest.raises(OSError) as info:
            syscalls.open_in_root(root_fd, "etc/proc", os.O_RDONLY)
        assert info.value.errno in (errno.ENOENT, errno.ELOOP, errno.EXDEV)
    finally:
        os.close(root_fd)
