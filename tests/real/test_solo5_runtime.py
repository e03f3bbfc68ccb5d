"""Solo5's own test programs through the installed urunc, on bundles, as containerd's shim drives it.

``urunc run`` (create, start, wait, delete) gives the container's exit status;
the network test uses ``create``/``start``/``kill``/``delete`` on a namespace
built the way CNI leaves it (tests/helpers/netns.py). Tenders are found on
PATH, as a user installs them.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from _real import SOLO5

from tests.helpers.bundles import base_spec, create, leftovers, urunc, wait_status, write_spec
from tests.helpers.netns import Netns, sh
from tests.helpers.procs import DEAD, state_letter

DESIGN_NAMES = {"hvt": "solo5-hvt", "spt": "solo5-spt"}


def solo5_bundle(path: Path, program: str, monitor: str, args: Sequence[str], *, hypervisor: str | None = None,
                 annotations: dict[str, str] | None = None, netns_path: str | None = None) -> Path:
    """A bundle whose rootfs holds a copy of PROGRAM built for MONITOR, configured by spec annotations."""
    kernel = path / "rootfs" / "unikernel" / f"{program}.{monitor}"
    kernel.parent.mkdir(parents=True)
    shutil.copy2(SOLO5 / f"{program}.{monitor}", kernel)
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns_path is not None:
        namespaces.append({"type": "network", "path": netns_path})
    spec = base_spec(list(args), namespaces=namespaces, annotations={
        "com.urunc.unikernel.unikernelType": "solo5",
        "com.urunc.unikernel.hypervisor": hypervisor or monitor,
        "com.urunc.unikernel.binary": f"/unikernel/{kernel.name}",
        **(annotations or {})})
    write_spec(path, spec)
    return path


def run(state_root: Path, bundle: Path, cid: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    result = urunc(state_root, "run", "--bundle", str(bundle), cid, timeout=timeout)
    assert leftovers(state_root) == [], result.stderr
    return result


@pytest.mark.parametrize("spelling", ["go", "design"])
def test_hello_gets_exactly_its_argument_and_succeeds(tmp_path: Path, state_root: Path, monitor: str,
                                                      spelling: str) -> None:
    hypervisor = monitor if spelling == "go" else DESIGN_NAMES[monitor]
    bundle = solo5_bundle(tmp_path / "b", "test_hello", monitor, ["Hello_Solo5"], hypervisor=hypervisor)
    result = run(state_root, bundle, "hello")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Command line is: 'Hello_Solo5'\nSUCCESS\n" in result.stdout, result.stdout


@pytest.mark.parametrize("program", ["test_quiet", "test_time"])
def test_quiet_and_time_succeed(tmp_path: Path, state_root: Path, monitor: str, program: str) -> None:
    result = run(state_root, solo5_bundle(tmp_path / "b", program, monitor, []), program.replace("_", "-"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nSUCCESS\n" in result.stdout, result.stdout


def bare_status(argv: Sequence[str]) -> int:
    """The tender's end run by hand, as a shell (and containerd) reports it: its code, or 128 + signal."""
    code = subprocess.run(list(argv), capture_output=True, timeout=60, check=False).returncode
    return 128 - code if code < 0 else code


def test_exception_ends_the_container_as_it_ends_the_tender(tmp_path: Path, state_root: Path, monitor: str,
                                                            tenders: dict[str, str]) -> None:
    bundle = solo5_bundle(tmp_path / "b", "test_exception", monitor, [])
    expected = bare_status([tenders[DESIGN_NAMES[monitor]], "--mem=128", "--",
                            str(bundle / "rootfs" / "unikernel" / f"test_exception.{monitor}")])
    assert expected != 0
    if monitor == "spt":
        assert expected == 128 + signal.SIGSEGV    # the spt tender dies of the guest's fault
    result = run(state_root, bundle, "exc")
    assert result.returncode == expected, result.stdout + result.stderr
    assert "Fatal trap" in result.stdout or monitor == "spt", result.stdout


def test_blk_uses_the_image_file_not_a_host_path(tmp_path: Path, state_root: Path, monitor: str) -> None:
    # /disk.img is an absolute symlink naming a host file that also exists inside the rootfs:
    # resolved inside the rootfs, it is the image's copy; the host file must stay untouched.
    host_file = tmp_path / "host" / "disk.img"
    host_file.parent.mkdir()
    host_file.write_bytes(bytes(1 << 20))
    bundle = solo5_bundle(tmp_path / "b", "test_blk", monitor, [],
                          annotations={"com.urunc.unikernel.block": "/disk.img"})
    rootfs = bundle / "rootfs"
    inside = rootfs / str(host_file).lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_bytes(bytes(1 << 20))
    (rootfs / "disk.img").symlink_to(host_file)
    result = run(state_root, bundle, "blk")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nSUCCESS\n" in result.stdout, result.stdout
    assert inside.read_bytes()[:10] == b"0123456789"          # test_blk wrote its pattern there
    assert host_file.read_bytes() == bytes(1 << 20)


def _cmdline(pid: int) -> list[str]:
    return [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]


def test_net_attaches_its_device_answers_ping_and_leaves_nothing(
        tmp_path: Path, state_root: Path, monitor: str, netns: Netns) -> None:
    mac = json.loads(sh("ip", "-n", netns.name, "-j", "link", "show", "eth0"))[0]["address"]
    sh("ip", "-n", netns.peer, "addr", "add", "10.0.0.1/24", "dev", "br0")   # test_net answers as 10.0.0.2
    before = netns.snapshot()
    bundle = solo5_bundle(tmp_path / "b", "test_net", monitor, ["verbose"], netns_path=netns.path)
    code, out = create(state_root, bundle, "net")
    assert code == 0, out
    try:
        assert urunc(state_root, "start", "net").returncode == 0
        pid = int(wait_status(state_root, "net", "running")["pid"])  # type: ignore[call-overload]
        argv = _cmdline(pid)
        kernel = argv[argv.index("--") + 1]
        assert argv[argv.index("--") + 2:] == ["verbose"]           # its own argument only
        assert kernel.endswith(f"test_net.{monitor}") or kernel.startswith("/proc/self/fd/")
        assert f"--net-mac:service0={mac}" in argv and any(a.startswith("--net:service0=") for a in argv)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(["ip", "netns", "exec", netns.peer, "/bin/busybox", "ping", "-c", "1", "-W", "1",
                               "10.0.0.2"], capture_output=True, timeout=10).returncode == 0:
                break
        else:
            pytest.fail("test_net did not answer ping: " + (bundle / "console.log").read_text())
        time.sleep(1)
        assert urunc(state_root, "state", "net").returncode == 0
        assert wait_status(state_root, "net", "running", 1)["pid"] == pid
        assert urunc(state_root, "kill", "net", "KILL").returncode == 0
        wait_status(state_root, "net", "stopped", 20)
    finally:
        assert urunc(state_root, "delete", "--force", "net").returncode == 0
    console = (bundle / "console.log").read_text()
    assert f"[service0] Serving ping on 10.0.0.2, with MAC: {mac.replace(':', '')}" in console, console
    assert "Received ping, sending reply" in console
    assert "Error in command line" not in console
    assert netns.snapshot() == before
    assert leftovers(state_root) == []
    assert state_letter(pid) in DEAD


def test_net_2if_is_refused_at_create_naming_the_second_device(tmp_path: Path, state_root: Path,
                                                               monitor: str, netns: Netns) -> None:
    before = netns.snapshot()
    bundle = solo5_bundle(tmp_path / "b", "test_net_2if", monitor, ["verbose"], netns_path=netns.path)
    code, out = create(state_root, bundle, "net2")
    assert code != 0
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "'service1'" in lines[0] and "(service0)" in lines[0], out
    assert leftovers(state_root) == []
    assert netns.snapshot() == before
