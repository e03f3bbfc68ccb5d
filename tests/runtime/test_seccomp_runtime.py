"""solo5-hvt's seccomp filter installed for real: the kernel's verdicts, and urunc putting it on hvt only.

No solo5-hvt binary can be obtained on this machine, so the tender is stood in
for by a small C program built here at test time (the project rules allow a
stand-in for a binary that cannot be had). In "tender" mode it makes the calls
solo5-hvt makes on Linux (ld.so and glibc start-up, signal handlers, pread of
its kernel, lseek of a disk, shared guest memory, getifaddrs, an eventfd-kicked
I/O thread, epoll + timerfd, ppoll, pwrite) and in "kvm" mode it runs a real
guest on /dev/kvm the way hvt_kvm.c does; other modes each make one call the
filter must refuse. Each runs in a forked child that sets no_new_privs and
installs the filter exactly as the init does before execve. Run as the
``[monitors.hvt] path`` of ``urunc create/start``, it prints its own Seccomp
line and argv, then tries socket(AF_INET): the filter must kill it there.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from _plans import elf_with_note, manifest_desc  # noqa: E402

from urunc.host import seccomp, syscalls  # noqa: E402

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <linux/fs.h>
#include <linux/kvm.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static void on_signal(int s) { (void)s; }
static void *io_thread(void *arg) {
    unsigned long long v;
    return read(*(int *)arg, &v, sizeof v) == sizeof v ? arg : NULL;
}
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
#define CHECK(x) do { if (!(x)) { fprintf(stderr, "failed: %s: %s\n", #x, strerror(errno)); return 2; } } while (0)

/* What solo5-hvt does on Linux, KVM itself aside (no /dev/kvm use here). */
static int tender(const char *self) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    CHECK(sigaction(SIGTERM, &sa, NULL) == 0 && sigaction(SIGINT, &sa, NULL) == 0);
    int fd = open(self, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    char hdr[64];
    CHECK(pread(fd, hdr, sizeof hdr, 0) == sizeof hdr);
    CHECK(lseek(fd, 0, SEEK_END) > 0);
    struct stat st;
    CHECK(fstat(fd, &st) == 0);
    void *mem = mmap(NULL, 1 << 22, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    CHECK(mprotect(mem, 4096, PROT_READ) == 0);
    struct termios t;
    (void)ioctl(0, TCGETS, &t);
    struct ifaddrs *ifa;
    CHECK(getifaddrs(&ifa) == 0);
    freeifaddrs(ifa);
    int efd = eventfd(0, EFD_CLOEXEC);
    CHECK(efd >= 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, io_thread, &efd) == 0);
    unsigned long long one = 1;
    CHECK(write(efd, &one, sizeof one) == sizeof one);
    CHECK(pthread_join(th, NULL) == 0);
    int ep = epoll_create1(EPOLL_CLOEXEC), tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
    CHECK(ep >= 0 && tfd >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = tfd}, out;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev) == 0);
    struct itimerspec its = {.it_value = {0, 1000000}};
    CHECK(timerfd_settime(tfd, 0, &its, NULL) == 0);
    CHECK(epoll_pwait(ep, &out, 1, 1000, NULL) == 1);
    sigset_t mask;
    sigfillset(&mask);
    struct pollfd p = {.fd = efd, .events = POLLIN};
    struct timespec tiny = {0, 1000}, now;
    CHECK(ppoll(&p, 1, &tiny, &mask) >= 0);
    CHECK(syscall(SYS_clock_gettime, CLOCK_REALTIME, &now) == 0);
    void *big = malloc(1 << 20);
    CHECK(big != NULL);
    free(big);
    char block[512] = {0};
    int disk = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(disk >= 0 && pwrite(disk, block, sizeof block, 0) == sizeof block);
    CHECK(munmap(mem, 1 << 22) == 0);
    close(disk); close(tfd); close(ep); close(efd); close(fd);
    seccomp_line();
    printf("tender: done\n");
    return 0;
}


/* hvt_init + hvt_vcpu_init + hvt_vcpu_loop in miniature: a real-mode guest that
 * writes 42 to port 0x500 (as Solo5's hypercalls do) and halts. */
static int kvm_guest(void) {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    CHECK(kvm >= 0);
    CHECK(ioctl(kvm, KVM_GET_API_VERSION, NULL) == 12);
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    CHECK(vm >= 0);
    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    CHECK(vcpu >= 0);
    int runsize = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, NULL);
    CHECK(runsize > 0);
    struct kvm_run *run = mmap(NULL, runsize, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    CHECK(run != MAP_FAILED);
    size_t size = 1 << 20;
    unsigned char *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(mem != MAP_FAILED);
    struct kvm_userspace_memory_region region = {.slot = 0, .memory_size = size, .userspace_addr = (unsigned long)mem};
    CHECK(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) == 0);
    /* mov $0x500,%dx; mov $42,%eax; out %eax,(%dx); hlt */
    static const unsigned char code[] = {0xba, 0x00, 0x05, 0x66, 0xb8, 42, 0, 0, 0, 0x66, 0xef, 0xf4};
    memcpy(mem + 0x1000, code, sizeof code);
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + 100 * sizeof cpuid->entries[0]);
    cpuid->nent = 100;
    CHECK(ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) == 0);
    CHECK(ioctl(vcpu, KVM_SET_CPUID2, cpuid) == 0);
    struct kvm_sregs sregs;
    CHECK(ioctl(vcpu, KVM_GET_SREGS, &sregs) == 0);
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    CHECK(ioctl(vcpu, KVM_SET_SREGS, &sregs) == 0);
    (void)ioctl(kvm, KVM_CHECK_EXTENSION, KVM_CAP_GET_TSC_KHZ);
    struct kvm_regs regs = {.rip = 0x1000, .rflags = 2};
    CHECK(ioctl(vcpu, KVM_SET_REGS, &regs) == 0);
    for (;;) {
        if (ioctl(vcpu, KVM_RUN, NULL) == -1) { CHECK(errno == EINTR); continue; }
        if (run->exit_reason == KVM_EXIT_IO && run->io.port == 0x500) {
            printf("guest said %u\n", *(unsigned *)((char *)run + run->io.data_offset));
            return 0;
        }
        fprintf(stderr, "unexpected exit %u\n", run->exit_reason);
        return 6;
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "tender";
    setvbuf(stdout, NULL, _IONBF, 0);
    if (!strcmp(mode, "tender")) return tender(argv[0]);
    if (!strncmp(mode, "--mem=", 6)) {  /* run by urunc as solo5-hvt / solo5-spt */
        seccomp_line();
        for (int i = 1; i < argc; i++) printf("arg: %s\n", argv[i]);
        printf("trying socket(AF_INET)\n");
        socket(AF_INET, SOCK_STREAM, 0);
        printf("survived socket\n");
        return 0;
    }
    if (!strcmp(mode, "kvm")) return kvm_guest();
    if (!strcmp(mode, "status")) { seccomp_line(); return 0; }
    if (!strcmp(mode, "netlink")) { CHECK(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0) >= 0); return 0; }
    if (!strcmp(mode, "clone3")) {
        long r = syscall(SYS_clone3, NULL, 0);
        printf("clone3: %ld %s\n", r, strerror(errno));
        return r == -1 && errno == ENOSYS ? 0 : 5;
    }
    if (!strcmp(mode, "kvm-ioctl")) { (void)ioctl(0, 0xAE00, 0); return 0; }  /* KVM_GET_API_VERSION */
    /* Each below is outside the filter: under it, the process never reaches the printf. */
    if (!strcmp(mode, "socket-inet")) socket(AF_INET, SOCK_STREAM, 0);
    else if (!strcmp(mode, "ptrace")) ptrace(PTRACE_TRACEME, 0, NULL, NULL);
    else if (!strcmp(mode, "fork")) { pid_t pid = fork(); if (pid == 0) _exit(0); if (pid > 0) waitpid(pid, NULL, 0); }
    else if (!strcmp(mode, "block-ioctl")) { unsigned long long size; ioctl(0, BLKGETSIZE64, &size); }
    else if (!strcmp(mode, "prctl-other")) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
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
    """The probe, linked dynamically (as Solo5 builds its tenders) and statically."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed")
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(PROBE_C)
    built = {}
    for linkage, flags in (("dynamic", []), ("static", ["-static"])):
        out = work / f"probe-{linkage}"
        subprocess.run(["gcc", "-O1", "-pthread", *flags, "-o", str(out), str(work / "probe.c")],
                       check=True, capture_output=True)
        built[linkage] = out
    return built


def run_confined(argv: list[str], confine: bool = True) -> tuple[int | None, int | None, str]:
    """Fork; in the child set no_new_privs, install the hvt filter (as host/init.py does), exec ARGV.

    Returns (terminating signal or None, exit status or None, output).
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            null = os.open("/dev/null", os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(w, 1)
            os.dup2(w, 2)
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            if confine:
                seccomp.install(seccomp.hvt_filter())
            os.execv(argv[0], argv)
        finally:
            os._exit(99)
    os.close(w)
    chunks = []
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode(errors="replace")
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status), None, out
    return None, os.WEXITSTATUS(status), out


@pytest.mark.parametrize("linkage", ["dynamic", "static"])
def test_a_tender_doing_what_hvt_does_runs_to_completion(probes: dict[str, Path], linkage: str) -> None:
    sig, code, out = run_confined([str(probes[linkage]), "tender"])
    assert (sig, code) == (None, 0), out
    assert "Seccomp:\t2" in out and "tender: done" in out


def test_a_real_kvm_guest_runs_under_the_filter(probes: dict[str, Path]) -> None:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("/dev/kvm is not usable")
    sig, code, out = run_confined([str(probes["dynamic"]), "kvm"])
    assert (sig, code, out) == (None, 0, "guest said 42\n")


@pytest.mark.parametrize("mode", ["netlink", "clone3", "kvm-ioctl"])
def test_narrowed_calls_pass_in_their_allowed_form(probes: dict[str, Path], mode: str) -> None:
    sig, code, out = run_confined([str(probes["dynamic"]), mode])
    assert (sig, code) == (None, 0), out
    if mode == "clone3":
        assert "Function not implemented" in out   # ENOSYS: glibc falls back to clone


FORBIDDEN = ["socket-inet", "ptrace", "fork", "block-ioctl", "prctl-other", "x32", "i386"]


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
