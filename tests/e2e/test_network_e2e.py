"""``ctr run --cni`` with urunc: the sample guest answers ping at its pod IP, teardown leaves nothing."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

from tests.helpers.cni import CniNetwork
from tests.helpers.containerd import RUNC_SHIM_ROOT, Containerd
from tests.helpers.probes import ping

RUNTIME = "io.containerd.urunc.v2"


def _in_netns(pid: int, *argv: str) -> str:
    return subprocess.run(["nsenter", "-t", str(pid), "-n", *argv], capture_output=True, text=True,
                          check=True, timeout=30).stdout


def _holders(ino: int) -> list[str]:
    """Processes still in, and mounts of, the network namespace with inode INO."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == ino:
                    found.append(f"pid {entry}")
            except OSError:
                pass
    with open("/proc/self/mountinfo") as f:
        found += [line for line in f if f"net:[{ino}]" in line]
    return found


def test_sample_guest_answers_ping_at_its_cni_ip_and_teardown_leaves_nothing(
        containerd: Containerd, cni: CniNetwork, hello_image: str, unique_id: str) -> None:
    host_links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    containerd.ctr("run", "--cni", "-d", "--runtime", RUNTIME, hello_image, unique_id, "hello", "serve",
                   timeout=120)
    try:
        row = next(line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()
                   if line.startswith(unique_id + " "))
        pid = int(row[1])
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        eth0 = json.loads(_in_netns(pid, "ip", "-j", "addr", "show", "dev", "eth0"))[0]
        ip = next(a["local"] for a in eth0["addr_info"] if a["family"] == "inet")
        assert ipaddress.ip_address(ip) in cni.subnet
        links = json.loads(_in_netns(pid, "ip", "-j", "link", "show"))
        taps = [link["ifname"] for link in links if link["ifname"].startswith("tap")]
        assert len(taps) == 1
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert f"ifname={taps[0]}".encode() in b",".join(cmdline)
        assert f"mac={eth0['address']}".encode() in b",".join(cmdline)
        assert any(arg.startswith(f"netdev.ip={ip}/{cni.subnet.prefixlen}:{cni.gateway}".encode())
                   for arg in cmdline)
        assert ping(ip), containerd.log_tail()
        # The tap's record names the namespace by the host's view of the monitor's PID
        # (inside its own PID namespace the init is PID 1).
        record = json.loads((RUNC_SHIM_ROOT / containerd.namespace / unique_id / "resources.json")
                            .read_text())
        assert [r["netns"] for r in record if r["kind"] == "tap"] == [f"/proc/{pid}/ns/net"]
        # ctr creates the namespace with the task and runs CNI on /proc/PID/ns/net: it ends with
        # the monitor, taking our tap with it. After teardown nothing may hold it.
        netns_ino = os.stat(f"/proc/{pid}/ns/net").st_ino
        containerd.ctr("task", "kill", "-s", "SIGKILL", unique_id)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}/exe") and time.monotonic() < deadline:
            time.sleep(0.1)
        containerd.ctr("task", "delete", unique_id, timeout=60)
        assert _holders(netns_ino) == []
    finally:
        containerd.ctr("task", "delete", "--force", unique_id, check=False)
        containerd.ctr("container", "rm", unique_id, check=False)
    assert not ping(ip, timeout=2)
    assert unique_id not in containerd.ctr("container", "ls", "-q").stdout.split()
    after = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in after.splitlines()}
    names_before = {line.split(":")[1].strip().split("@")[0] for line in host_links.splitlines()}
    assert names - {cni.bridge} <= names_before  # the CNI veth went with the namespace
