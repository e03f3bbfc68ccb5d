"""A container rootfs boots as a Linux microVM under QEMU and QEMU's exit status
is the application's (guests/linux/init.c, urunc.guests.linux_initrd).

Needs build/linux/vmlinux, build/linux/modules (guests/linux/fetch-kernel.sh),
build/linux/urunc-init (make -C guests/linux), qemu-system-x86_64 and a static
busybox (Debian's busybox-static) to make the rootfs from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from urunc.guests.linux_initrd import urunc_init_entries, write_initrd

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "build" / "linux"
VMLINUX = BUILD / "vmlinux"
INIT = BUILD / "urunc-init"
MODULES = BUILD / "modules"
BUSYBOX = Path("/bin/busybox")
QEMU = shutil.which("qemu-system-x86_64")

CMDLINE = (
    "console=ttyS0 panic=-1 tsc_early_khz=2000000 tsc=reliable cryptomgr.notests "
    "loglevel=3 rdinit=/.urunc/init"
)
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NINEP_MODULES = ["virtio_mmio", "9pnet_virtio", "9p"]

missing = [
    str(p) for p in (VMLINUX, INIT, MODULES / "order", BUSYBOX) if not p.exists()
]
pytestmark = [
    pytest.mark.skipif(
        bool(missing),
        reason=f"missing {', '.join(missing)} (run guests/linux/fetch-kernel.sh "
        "and make -C guests/linux; install busybox-static)",
    ),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed"),
]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rootfs")
    (root / "bin").mkdir()
    (root / "etc").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    for applet in (
        "sh",
        "printf",
        "env",
        "echo",
        "ls",
        "cat",
        "pwd",
        "hostname",
        "httpd",
    ):
        (root / "bin" / applet).symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    return root


def boot(
    tmp_path: Path,
    rootfs: Path | None,
    args: Sequence[str],
    env: Sequence[str] = (PATH_ENV,),
    cwd: str = "/",
    modules: Sequence[str] = (),
    root: str | None = None,
    qemu_extra: Sequence[str] = (),
) -> subprocess.CompletedProcess[bytes]:
    argv = qemu_argv(tmp_path, rootfs, args, env, cwd, modules, root, qemu_extra)
    result = subprocess.run(
        argv, check=False, stdin=subprocess.DEVNULL, capture_output=True, timeout=90
    )
    assert result.returncode != 124, f"guest hung: {result.stdout[-2000:]!r}"
    return result


def qemu_argv(
    tmp_path: Path,
    rootfs: Path | None,
    args: Sequence[str],
    env: Sequence[str] = (PATH_ENV,),
    cwd: str = "/",
    modules: Sequence[str] = (),
    root: str | None = None,
    qemu_extra: Sequence[str] = (),
    net: dict[str, str] | None = None,
) -> list[str]:
    initrd = tmp_path / "initrd"
    write_initrd(
        initrd,
        rootfs,
        urunc_init_entries(
            init=INIT,
            args=args,
            env=env,
            cwd=cwd,
            modules=MODULES,
            module_names=list(modules),
            root=root,
            net=net,
        ),
    )
    assert QEMU is not None
    return [
        "timeout", "60",
        QEMU,
        "-M", "microvm",
        "-accel", "tcg",
        "-m", "256",
        "-nodefaults", "-no-user-config", "-display", "none",
        "-serial", "stdio",
        "-no-reboot",
        "-kernel", str(VMLINUX),
        "-initrd", str(initrd),
        "-append", CMDLINE,
        "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        *qemu_extra,
    ]  # fmt: skip


def test_output_reaches_stdout_and_exit_code_becomes_qemus(
    tmp_path: Path, rootfs: Path
) -> None:
    result = boot(tmp_path, rootfs, ["sh", "-c", "echo hi; exit 3"])
    assert (result.stdout, result.returncode) == (b"hi\n", 3)


def test_exit_zero_gives_zero_and_no_kernel_noise(tmp_path: Path, rootfs: Path) -> None:
    result = boot(tmp_path, rootfs, ["sh", "-c", "exit 0"])
    assert (result.stdout, result.returncode) == (b"", 0)


def test_args_env_and_cwd_reach_the_app_exactly(tmp_path: Path, rootfs: Path) -> None:
    args = ["a  b", "", "q\"u'o", "new\nline", "ü€", "-c"]
    script = 'printf "[%s]" "$0" "$@"; printf "<%s>" "$FOO" "$EMPTY"; pwd'
    env = [PATH_ENV, "FOO= x =y\nz ", "EMPTY="]
    result = boot(
        tmp_path, rootfs, ["sh", "-c", script, *args], env=env, cwd="/work dir/sub"
    )
    expected = "".join(f"[{a}]" for a in args) + "< x =y\nz ><>/work dir/sub\n"
    assert result.stdout.decode() == expected
    assert result.returncode == 0


def test_env_is_exactly_the_given_list(tmp_path: Path, rootfs: Path) -> None:
    result = boot(tmp_path, rootfs, ["/bin/env"], env=["A=1", "B=two words"])
    assert result.stdout == b"A=1\nB=two words\n"


@pytest.mark.parametrize(
    ("script", "status"),
    [("exit 4", 5), ("exit 255", 255), ("kill -9 $$", 137)],
    ids=["even-code-maps-to-code-or-1", "255", "killed-by-signal-9"],
)
def test_exit_status_mapping(
    tmp_path: Path, rootfs: Path, script: str, status: int
) -> None:
    assert boot(tmp_path, rootfs, ["sh", "-c", script]).returncode == status


def test_unknown_program_ends_the_vm_with_127_and_says_why(
    tmp_path: Path, rootfs: Path
) -> None:
    result = boot(tmp_path, rootfs, ["no-such-program"])
    assert result.returncode == 127
    assert (
        b"urunc-init: exec no-such-program: No such file or directory" in result.stdout
    )


def test_rootfs_shared_over_9p_instead_of_in_the_initrd(
    tmp_path: Path, rootfs: Path
) -> None:
    result = boot(
        tmp_path,
        None,
        ["sh", "-c", "echo hi from 9p; ls /etc; exit 3"],
        modules=NINEP_MODULES,
        root="9p rootfs trans=virtio,version=9p2000.L,msize=524288,cache=loose",
        qemu_extra=[
            "-fsdev", f"local,id=fs0,path={rootfs},security_model=none",
            "-device", "virtio-9p-device,fsdev=fs0,mount_tag=rootfs",
        ],
    )  # fmt: skip
    assert (result.stdout, result.returncode) == (b"hi from 9p\npasswd\n", 3)


def test_guest_kernel_panic_makes_qemu_fail(tmp_path: Path, rootfs: Path) -> None:
    result = boot(
        tmp_path,
        rootfs,
        ["sh", "-c", "echo c > /proc/sysrq-trigger; exit 0"],
        modules=["virtio_mmio", "pvpanic_mmio"],
        qemu_extra=["-device", "pvpanic", "-action", "panic=exit-failure"],
    )
    assert result.returncode == 1


@pytest.fixture
def netns() -> Iterator[str]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("needs root and iproute2 to make a network namespace")
    name = f"urunc-lg-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        run_in = ["ip", "netns", "exec", name]
        subprocess.run(
            [*run_in, "ip", "tuntap", "add", "dev", "tap0", "mode", "tap"], check=True
        )
        subprocess.run(
            [*run_in, "ip", "addr", "add", "10.213.88.1/24", "dev", "tap0"], check=True
        )
        subprocess.run([*run_in, "ip", "link", "set", "tap0", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_guest_serves_http_on_its_configured_address(
    tmp_path: Path, rootfs: Path, netns: str
) -> None:
    www = rootfs / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("hello from the guest\n")
    argv = qemu_argv(
        tmp_path,
        rootfs,
        ["httpd", "-f", "-p", "80", "-h", "/www"],
        modules=["virtio_mmio", "virtio_net"],
        net={"ip": "10.213.88.2/24", "gw": "10.213.88.1", "mac": "52:54:00:0d:58:02"},
        qemu_extra=[
            "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off",
            "-device", "virtio-net-device,netdev=n0,mac=52:54:00:0d:58:02",
        ],
    )  # fmt: skip
    qemu = subprocess.Popen(
        ["ip", "netns", "exec", netns, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 45
        page = b""
        while time.monotonic() < deadline and qemu.poll() is None:
            # busybox wget's own -T option crashes in Debian's static build.
            fetch = subprocess.run(
                ["ip", "netns", "exec", netns, "timeout", "3",
                 str(BUSYBOX), "wget", "-q", "-O", "-", "http://10.213.88.2/"],
                check=False, capture_output=True,
            )  # fmt: skip
            if fetch.returncode == 0:
                page = fetch.stdout
                break
            time.sleep(0.2)
        assert page == b"hello from the guest\n"
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)
