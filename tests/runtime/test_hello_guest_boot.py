"""The sample unikernel in guests/hello, booted for real under QEMU (TCG).

Checks the contract the runtime relies on: Unikraft-style command line
(kernel params, `--`, application argv), the exact console format, exit
status 0 through a guest reset under -no-reboot, a byte-reproducible build,
and, with `serve`, answering ping on a tap in a throw-away network namespace.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QEMU = "qemu-system-x86_64"
QBOOT = "/usr/share/qemu/qboot.rom"
BASE_ARGV = [
    "-nodefaults", "-no-user-config", "-display", "none", "-serial", "stdio",
    "-m", "64", "-no-reboot", "-accel", "tcg",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    shutil.which(QEMU) is None or shutil.which("make") is None,
    reason="needs qemu-system-x86 and a gcc/binutils toolchain",
)


def build(out: Path) -> Path:
    subprocess.run(
        ["make", "-s", "-C", str(REPO / "guests" / "hello"), f"BUILD={out}"],
        check=True,
        capture_output=True,
    )
    return out / "hello.elf"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("hello"))


def quote(arg: str) -> str:
    """The encoding the guest's tokenizer undoes (see guests/hello/cmdline.c)."""
    if arg and not any(c in arg for c in " \t\"'"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def boot(kernel: Path, cmdline: str, machine: tuple[str, ...] = ("-M", "pc")) -> str:
    proc = subprocess.run(
        [
            "timeout",
            "30",
            QEMU,
            *BASE_ARGV,
            *machine,
            "-kernel",
            str(kernel),
            "-append",
            cmdline,
        ],
        capture_output=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")
    return proc.stdout.decode()


def test_prints_argv_env_and_net_then_qemu_exits_zero(kernel: Path) -> None:
    out = boot(
        kernel,
        'env.vars=[ K=V "K2=v with spaces" ] netdev.ip=10.0.0.2/24:10.0.0.1:8.8.8.8 -- hello "b c"',
    )
    assert out == (
        "hello from the urunc sample unikernel\n"
        "argc=2\n"
        "argv[0]=<hello>\n"
        "argv[1]=<b c>\n"
        "env[0]=<K=V>\n"
        "env[1]=<K2=v with spaces>\n"
        "net=<10.0.0.2/24:10.0.0.1:8.8.8.8>\n"
        "bye\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["hello", ""],
        [
            "hello",
            "a b",
            "tab\there",
            'dq"',
            "sq'",
            "back\\slash",
            '\\"',
            "\\\\",
            "--",
            "x=y",
        ],
        ["hello", "naïve ✓", "[", "]", "env.vars=[ A=B ]"],
    ],
)
def test_quoted_arguments_arrive_byte_for_byte(kernel: Path, args: list[str]) -> None:
    out = boot(kernel, "-- " + " ".join(quote(a) for a in args))
    expected = "".join(f"argv[{i}]=<{a}>\n" for i, a in enumerate(args))
    assert f"argc={len(args)}\n{expected}bye\n" in out


def test_grammar_details(kernel: Path) -> None:
    out = boot(
        kernel,
        """  a"b c"d  'x\\"y'  "u\\v" ""  foo=1 -- p a"b c"d 'x\\"y' "u\\v" "" """,
    )
    assert 'unknown param=<ab cd>\nunknown param=<x\\"y>\n' in out
    assert 'argv[1]=<ab cd>\nargv[2]=<x\\"y>\nargv[3]=<u\\v>\nargv[4]=<>\n' in out
    assert "unknown param=<foo=1>\n" in out


def test_without_separator_everything_is_kernel_params(kernel: Path) -> None:
    out = boot(kernel, "env.vars=[ A=1 ] env.vars=B=2 hello")
    assert out == (
        "hello from the urunc sample unikernel\n"
        "unknown param=<hello>\n"
        "argc=0\n"
        "env[0]=<A=1>\n"
        "env[1]=<B=2>\n"
        "bye\n"
    )


@pytest.mark.parametrize(
    "machine",
    [("-M", "pc"), ("-M", "pc", "-bios", QBOOT), ("-M", "microvm"), ("-M", "q35")],
    ids=["pc", "pc-qboot", "microvm", "q35"],
)
def test_boots_on_every_machine_type(kernel: Path, machine: tuple[str, ...]) -> None:
    assert boot(kernel, "-- hello", machine).endswith("argv[0]=<hello>\nbye\n")


def test_build_is_reproducible(kernel: Path, tmp_path: Path) -> None:
    again = build(tmp_path / "again")
    assert again.read_bytes() == kernel.read_bytes()


PING = r"""
import os, socket, struct, sys, time
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2)
ident, payload = os.getpid() & 0xFFFF, bytes(range(256)) * 4
for seq in range(1, 4):
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    s.sendto(struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload, (sys.argv[1], 0))
    while True:
        data = s.recv(2048)
        ihl = (data[0] & 0xF) * 4
        if data[ihl] == 0 and struct.unpack("!HH", data[ihl + 4:ihl + 8]) == (ident, seq):
            assert data[ihl + 8:] == payload and csum(data[ihl:]) == 0
            break
print("ok")
"""


@pytest.fixture
def netns() -> Iterator[str]:
    if (
        os.geteuid() != 0
        or shutil.which("ip") is None
        or not os.path.exists("/dev/net/tun")
    ):
        pytest.skip("needs root, iproute2 and /dev/net/tun")
    name = f"hello-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (
            ["ip", "tuntap", "add", "dev", "tap0", "mode", "tap"],
            ["ip", "addr", "add", "10.213.77.1/24", "dev", "tap0"],
            ["ip", "link", "set", "tap0", "up"],
        ):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def test_serve_answers_ping_on_virtio_net(kernel: Path, netns: str) -> None:
    argv = [
        "ip", "netns", "exec", netns, "timeout", "60", QEMU, *BASE_ARGV, "-M", "pc",
        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no,vhost=off",
        "-device", "virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,disable-modern=on",
        "-kernel", str(kernel), "-append", "netdev.ip=10.213.77.2/24:10.213.77.1 -- hello serve",
    ]  # fmt: skip
    qemu = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert qemu.stdout is not None
        deadline = time.monotonic() + 30
        line = b""
        while not line.startswith(b"net up") and time.monotonic() < deadline:
            line = qemu.stdout.readline()
            assert line, "guest ended before bringing the network up"
        assert line == b"net up 10.213.77.2\n"
        ping = subprocess.run(
            ["ip", "netns", "exec", netns, sys.executable, "-c", PING, "10.213.77.2"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert ping.stdout == "ok\n", ping.stderr
    finally:
        qemu.terminate()
        qemu.wait(timeout=10)
