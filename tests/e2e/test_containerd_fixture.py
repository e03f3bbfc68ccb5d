"""The private containerd fixture runs plain busybox containers with runc.

These tests pin the test harness itself (daemon, namespace, CNI, clean-up),
with the stock runc shim, so urunc's own e2e tests can trust it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import select
import subprocess
import time
from pathlib import Path

from tests.helpers.cni import CniNetwork
from tests.helpers.containerd import RUNC_SHIM_ROOT, Containerd

RUNC = "io.containerd.runc.v2"
INET = re.compile(r"inet (\d+\.\d+\.\d+\.\d+)/(\d+)")


def assert_namespace_empty(ctd: Containerd, container_id: str) -> None:
    assert ctd.list_ids("tasks") == []
    assert ctd.list_ids("containers") == []
    assert not (RUNC_SHIM_ROOT / ctd.namespace / container_id).exists()


def read_until(proc: subprocess.Popen[str], pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    """Read the process's stdout until *pattern* matches (or fail)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        seen += chunk
        if match := pattern.search(seen.decode(errors="replace")):
            return match
    raise AssertionError(f"{pattern.pattern!r} not in output within {timeout}s: {seen.decode(errors='replace')!r}")


def test_private_daemon_is_not_the_system_one(containerd: Containerd) -> None:
    assert containerd.address != "/run/containerd/containerd.sock"
    assert not str(containerd.root).startswith("/var/lib/containerd")
    assert containerd.namespace.startswith("urunc-test-")
    assert "Server:" in containerd.ctr("version").stdout


def test_container_output_and_exit_code_come_back(
    containerd: Containerd, busybox_root: Path, unique_id: str
) -> None:
    proc = containerd.ctr(
        "run", "--rm", "--runtime", RUNC, "--rootfs", busybox_root, unique_id,
        # (ctr run --rm can end before it copied the last write of a process that exits at
        # once: a race in ctr's own IO, with runc too; the pause lets the copy finish.)
        "/bin/sh", "-c", "echo hello from busybox; echo to-stderr >&2; sleep 0.3; exit 7",
        check=False,
    )
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "hello from busybox\n"
    assert "to-stderr" in proc.stderr
    assert_namespace_empty(containerd, unique_id)


def test_cni_gives_container_an_address_in_test_subnet(
    containerd: Containerd, cni: CniNetwork, busybox_root: Path, unique_id: str
) -> None:
    proc = containerd.ctr(
        "run", "--rm", "--cni", "--runtime", RUNC, "--rootfs", busybox_root, unique_id,
        "/bin/ip", "-4", "addr", "show", "dev", "eth0",
    )
    match = INET.search(proc.stdout)
    assert match, proc.stdout
    address = ipaddress.IPv4Address(match.group(1))
    assert address in cni.subnet and address != cni.gateway
    assert int(match.group(2)) == cni.subnet.prefixlen
    assert_namespace_empty(containerd, unique_id)
    # ctr released the address when the container went away.
    assert not (Path("/var/lib/cni/networks") / cni.name / str(address)).exists()


def test_host_reaches_running_cni_container(
    containerd: Containerd, cni: CniNetwork, busybox_root: Path, unique_id: str
) -> None:
    proc = containerd.ctr_popen(
        "run", "--rm", "--cni", "--runtime", RUNC, "--rootfs", busybox_root, unique_id,
        "/bin/sh", "-c", "ip -4 -o addr show dev eth0; exec sleep 60",
    )
    try:
        address = read_until(proc, INET, timeout=30).group(1)
        assert ipaddress.IPv4Address(address) in cni.subnet
        ping = subprocess.run(["/bin/busybox", "ping", "-c", "1", "-W", "3", address], capture_output=True, text=True)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        containerd.ctr("tasks", "kill", "--signal", "SIGKILL", unique_id, check=False)
        try:
            proc.wait(timeout=30)
        finally:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 137
    assert_namespace_empty(containerd, unique_id)
