"""solo5-hvt's seccomp filter installed for real: the kernel's verdicts, and urunc putting it on hvt only.

The real tender runs under the filter for every Solo5 test program in
tests/real/test_hvt_seccomp.py. Here a small C probe, built at test time,
makes the calls the real tender never makes (so only a probe can show the
kernel refuses them) and the narrowed calls in their allowed forms. Each runs
in a forked child that sets no_new_privs and installs the filter exactly as
the init does before execve. Run as the ``[monitors.hvt] path`` of ``urunc
create/start``, the probe prints its own Seccomp line and argv, then tries
socket(AF_INET): the filter must kill it there.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.bundles import base_spec, create, urunc, wait_status, write_spec
from tests.helpers.confine import run_confined

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _plans import elf_with_note, manifest_desc  # noqa: E402

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/netlink.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void seccomp_line(void) {
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
    if (n <= 0) exit(3);
    buf[n] = 0;
    char *line = strstr(buf, "Seccomp:");
    if (!line) exit(4);
    *strchr(line, '\n') = 0;
    printf("%s\n", line);
    close(fd);
}
static void *nothing(void *arg) { return arg; }
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "failed: %s: %s\n", #x, strerror(errno)); return 2; } } while (0)

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strncmp(mode, "--mem=", 6)) {  /* run by urunc as solo5-hvt / solo5-spt */
        seccomp_line();
        for (int i = 1; i < argc; i++) printf("arg: %s\n", argv[i]);
        printf("trying socket(AF_INET)\n");
        socket(AF_INET, SOCK_STREAM, 0);
        printf("survived socket\n");
        return 0;
    }
    if (!strcmp(mode, "status")) { seccomp_line(); return 0; }
    /* The narrowed calls, in the form the real tender makes them. */
    if (!strcmp(mode, "netlink")) { CHECK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE) >= 0); return 0; }
    if (!strcmp(mode, "kvm-ioctl")) { (void)ioctl(0, 0xAE00, 0); return 0; }  /* KVM_GET_API_VERSION */
    if (!strcmp(mode, "personality-query")) { CHECK(personality(0xffffffff) != -1); return 0; }
    if (!strcmp(mode, "fcntl-setfl")) { CHECK(fcntl(1, F_SETFL, O_NONBLOCK) == 0); return 0; }
    /* Each below is outside the filter: under it, the process never reaches the printf. */
    if (!strcmp(mode, "socket-inet")) socket(AF_INET, SOCK_STREAM, 0);
    else if (!strcmp(mode, "netlink-audit")) socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT);
    else if (!strcmp(mode, "ptrace")) ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    else if (!strcmp(mode, "fork")) { pid_t pid = fork(); if (pid == 0) _exit(0); if (pid > 0) waitpid(pid, NULL, 0); }
    else if (!strcmp(mode, "thread")) {
        pthread_t t;
        if (pthread_create(&t, NULL, nothing, NULL) == 0) pthread_join(t, NULL);
    }
    else if (!strcmp(mode, "block-ioctl")) { unsigned long long size; ioctl(0, BLKGETSIZE64, &size); }
    else if (!strcmp(mode, "tty-ioctl")) { struct termios t; ioctl(0, TCGETS, &t); }
    else if (!strcmp(mode, "prctl")) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    else if (!strcmp(mode, "personality-set")) personality(PER_LINUX | READ_IMPLIES_EXEC);
    else if (!strcmp(mode, "fcntl-dup")) fcntl(1, F_DUPFD_CLOEXEC, 10);
    else if (!strcmp(mode, "x32")) syscall(0x40000000 | SYS_getpid);
    else if (!strcmp(mode, "i386")) {  /* getpid through the i386 entry */
        long r;
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20) : "memory");
    }
    else return 9;
    printf("survived %s\n", mode);
    return 0;
}
"""


@pytest.fixture(scope="module")
def probes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The probe, linked dynamically against glibc as Solo5 builds its tenders."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(PROBE_C)
    out = work / "probe"
    subprocess.run(["gcc", "-O1", "-pthread", "-o", str(out), str(work / "probe.c")], check=True,
                   capture_output=True)
    return {"dynamic": out}


@pytest.mark.parametrize("mode", ["netlink", "kvm-ioctl", "personality-query", "fcntl-setfl"])
def test_narrowed_calls_pass_in_the_form_the_tender_makes_them(probes: dict[str, Path], mode: str) -> None:
    sig, code, out = run_confined([str(probes["dynamic"]), mode])
    assert (sig, code) == (None, 0), out


def test_the_probe_really_runs_confined(probes: dict[str, Path]) -> None:
    assert run_confined([str(probes["dynamic"]), "status"]) == (None, 0, "Seccomp:\t2\n")
    assert run_confined([str(probes["dynamic"]), "status"], confine=False) == (None, 0, "Seccomp:\t0\n")


FORBIDDEN = ["socket-inet", "netlink-audit", "ptrace", "fork", "thread", "block-ioctl", "tty-ioctl", "prctl",
             "personality-set", "fcntl-dup", "x32", "i386"]


@pytest.mark.parametrize("mode", FORBIDDEN)
def test_a_call_outside_the_list_kills_with_sigsys(probes: dict[str, Path], mode: str) -> None:
    free = run_confined([str(probes["dynamic"]), mode], confine=False)
    if mode == "i386" and free[:2] != (None, 0):
        pytest.skip("this kernel has no i386 syscall entry (int 0x80)")
    assert free == (None, 0, f"survived {mode}\n")          # the call itself is harmless unconfined
    sig, code, out = run_confined([str(probes["dynamic"]), mode])
    assert (sig, code, out) == (signal.SIGSYS, None, "")


def _solo5_bundle(path: Path, monitor: str) -> Path:
    unikernel = path / "rootfs" / "unikernel"
    unikernel.mkdir(parents=True)
    (unikernel / "app.elf").write_bytes(elf_with_note(manifest_desc([])))
    spec = base_spec(["app"], annotations={"com.urunc.unikernel.unikernelType": "solo5",
                                           "com.urunc.unikernel.hypervisor": monitor,
                                           "com.urunc.unikernel.binary": "/unikernel/app.elf"})
    write_spec(path, spec)
    return path


def _run_to_exit(tmp_path: Path, state_root: Path, probe: Path, monitor: str) -> str:
    config = tmp_path / f"{monitor}.toml"
    config.write_text(f'[monitors.{monitor}]\npath = "{probe}"\n')
    os.environ["URUNC_CONFIG"] = str(config)
    cid = f"seccomp-{monitor}"
    try:
        bundle = _solo5_bundle(tmp_path / cid, monitor)
        code, out = create(state_root, bundle, cid)
        assert code == 0, out
        started = urunc(state_root, "start", cid)
        assert started.returncode == 0, started.stderr
        wait_status(state_root, cid, "stopped", 20)
        return (bundle / "console.log").read_text()
    finally:
        del os.environ["URUNC_CONFIG"]
        urunc(state_root, "delete", "--force", cid)


def test_urunc_confines_the_hvt_tender(tmp_path: Path, state_root: Path, probes: dict[str, Path]) -> None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("monitor hvt needs kvm but /dev/kvm is not usable")
    out = _run_to_exit(tmp_path, state_root, probes["dynamic"], "hvt")
    assert "Seccomp:\t2" in out, out
    assert "arg: --mem=" in out and "arg: --" in out and "trying socket(AF_INET)" in out, out
    assert "survived socket" not in out, out                 # SIGSYS ended it there


def test_urunc_leaves_spt_to_confine_itself(tmp_path: Path, state_root: Path, probes: dict[str, Path]) -> None:
    out = _run_to_exit(tmp_path, state_root, probes["dynamic"], "spt")
    assert "Seccomp:\t0" in out and "survived socket" in out, out
