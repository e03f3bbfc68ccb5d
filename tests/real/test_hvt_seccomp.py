"""The real solo5-hvt under urunc's seccomp filter, for every one of Solo5's test programs.

Each program runs under the tender from ../shared exactly as urunc's init
runs it (no_new_privs, the filter, execve: tests/helpers/confine.py), and
must behave as it does unconfined: the same exit, its own SUCCESS line,
ping answered on its taps (by name, which goes through getifaddrs and
TUNSETIFF, and as ``@FD``, which goes through fcntl), and SIGTERM handled by
the tender itself. Any call outside the list would end it with SIGSYS.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from _real import SOLO5, kvm_usable

from tests.helpers.confine import finish, run_confined, spawn_confined

pytestmark = pytest.mark.skipif(not kvm_usable(), reason="solo5-hvt needs /dev/kvm")

TUNSETIFF, IFF_TAP, IFF_NO_PI = 0x400454CA, 0x0002, 0x1000
# Each program: (arguments, exits by itself).
PROGRAMS = {
    "test_hello": (["Hello_Solo5"], True),
    "test_quiet": ([], True),
    "test_time": ([], True),
    "test_exception": ([], True),
    "test_blk": ([], True),
    "test_net": (["verbose"], False),
    "test_net_2if": (["verbose"], False),
}
# test_net answers on 10.0.0.2; test_net_2if on 10.0.0.2 (service0) and 10.1.0.2 (service1).
GUEST_IPS = {"service0": ("10.0.0.1", "10.0.0.2"), "service1": ("10.1.0.1", "10.1.0.2")}


def tender(shared: Path) -> str:
    return str(shared / "solo5" / "solo5-hvt")


def test_every_hvt_program_of_the_folder_has_a_case(shared: Path) -> None:
    assert {p.stem for p in (shared / "solo5").glob("test_*.hvt")} == set(PROGRAMS)


def _disk(tmp_path: Path) -> Path:
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(1 << 20))
    return disk


@pytest.mark.parametrize("name", ["test_hello", "test_quiet", "test_time", "test_blk"])
def test_a_program_that_ends_succeeds_confined(shared: Path, tmp_path: Path, name: str) -> None:
    args, _ = PROGRAMS[name]
    block = [f"--block:storage={_disk(tmp_path)}"] if name == "test_blk" else []
    sig, code, out = run_confined([tender(shared), "--mem=32", *block, "--", str(SOLO5 / f"{name}.hvt"), *args])
    assert (sig, code) == (None, 0), out
    assert "\nSUCCESS\n" in out and "solo5_exit(0) called" in out, out
    if block:
        assert (tmp_path / "disk.img").read_bytes()[:10] == b"0123456789"    # it wrote and read back


def test_the_crashing_program_ends_as_it_does_unconfined(shared: Path) -> None:
    argv = [tender(shared), "--mem=32", "--", str(SOLO5 / "test_exception.hvt")]
    free = run_confined(argv, confine=False)
    confined = run_confined(argv)
    assert confined[:2] == free[:2] and confined[0] != signal.SIGSYS, confined
    assert "Fatal trap" in confined[2], confined[2]


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"urunc-s5-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=False)


def _taps(netns: str, devices: list[str]) -> dict[str, str]:
    """One tap per device in NETNS, addressed as the peer of the guest's IP."""
    taps = {}
    for i, device in enumerate(devices):
        tap = f"tap{i}"
        host_ip, _ = GUEST_IPS[device]
        for cmd in (["tuntap", "add", tap, "mode", "tap"], ["link", "set", tap, "up"],
                    ["addr", "add", f"{host_ip}/24", "dev", tap]):
            subprocess.run(["ip", "-n", netns, *cmd], check=True)
        taps[device] = tap
    return taps


def _ping(netns: str, ip: str, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", netns, "/bin/busybox", "ping", "-c", "1", "-W", "1", ip],
                          capture_output=True, timeout=10, check=False).returncode == 0:
            return True
    return False


def _open_tap_as_fd3(name: str) -> None:
    """In the child, in the netns: the tap opened as urunc's init hands it over (--net:NAME=@3)."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    os.dup2(fd, 3)


@pytest.mark.parametrize("name, by_fd", [("test_net", False), ("test_net", True), ("test_net_2if", False)],
                         ids=["test_net-tap-name", "test_net-tap-fd", "test_net_2if"])
def test_a_network_program_answers_ping_confined_until_sigterm(shared: Path, netns: str, name: str,
                                                               by_fd: bool) -> None:
    if shutil.which("ip") is None or not os.path.exists("/dev/net/tun"):
        pytest.skip("needs iproute2 and /dev/net/tun")
    devices = ["service0", "service1"] if name == "test_net_2if" else ["service0"]
    taps = _taps(netns, devices)
    prepare = None
    if by_fd:
        nets = ["--net:service0=@3"]
        prepare = lambda: _open_tap_as_fd3(taps["service0"])  # noqa: E731
    else:
        nets = [f"--net:{device}={tap}" for device, tap in taps.items()]
    argv = [tender(shared), "--mem=32", *nets, "--", str(SOLO5 / f"{name}.hvt"), "verbose"]
    pid, out_fd = spawn_confined(argv, netns=f"/var/run/netns/{netns}", prepare=prepare)
    try:
        for device in devices:
            assert _ping(netns, GUEST_IPS[device][1]), device
        assert os.waitpid(pid, os.WNOHANG) == (0, 0)           # still serving
    finally:
        os.kill(pid, signal.SIGTERM)
        sig, code, out = finish(pid, out_fd)
    assert (sig, code) == (None, 1), out                           # the tender's handler: errx(1, ...)
    assert "Exiting on signal 15" in out, out
    for device in devices:
        assert f"[{device}] Received ping, sending reply" in out, out
