"""The guest takes over eth0 of its network namespace: tap, tc redirects, release.

Each test builds what CNI would: a container namespace whose ``eth0`` is one
end of a veth pair with an address and a default route, the other end in a
peer namespace (the "bridge side") from which the guest is pinged. Checks use
iproute2's ``ip`` and ``tc``, independent of the runtime's own netlink code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, create, hello_bundle, urunc, wait_status
from tests.helpers.netns import GUEST_IP, PEER_IP, Netns, sh

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None
    or not os.path.exists("/dev/net/tun"),
    reason="needs root, iproute2 and /dev/net/tun",
)


def serve_bundle(path: Path, netns_path: str | None, args: tuple[str, ...] = ("hello", "serve")) -> Path:
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns_path is not None:
        namespaces.append({"type": "network", "path": netns_path})
    return hello_bundle(path, args=args, namespaces=namespaces)


def run(root: Path, bundle: Path, cid: str) -> subprocess.CompletedProcess[str]:
    code, text = create(root, bundle, cid)
    assert code == 0, text
    return urunc(root, "start", cid)


def resources(root: Path, cid: str) -> list[dict[str, object]]:
    path = root / cid / "resources.json"
    return json.loads(path.read_text()) if path.exists() else []


def tap_of(root: Path, cid: str) -> dict[str, object]:
    return next(r for r in resources(root, cid) if r["kind"] == "tap")


def test_guest_answers_ping_on_eth0_ip_and_delete_leaves_nothing(
        tmp_path: Path, state_root: Path, netns: Netns) -> None:
    before = netns.snapshot()
    bundle = serve_bundle(tmp_path / "b", netns.path)
    started = run(state_root, bundle, "n1")
    assert started.returncode == 0, started.stderr
    tap = tap_of(state_root, "n1")
    links = netns.links()
    assert links[str(tap["name"])] == tap["ifindex"]
    assert sorted(netns.qdiscs()) == sorted(["lo noqueue", "eth0 noqueue", "eth0 ingress",
                                             f"{tap['name']} pfifo_fast", f"{tap['name']} ingress"])
    filters = "\n".join(netns.filters())
    assert f"Egress Redirect to device {tap['name']}" in filters
    assert "Egress Redirect to device eth0" in filters
    assert netns.ping(), (bundle / "console.log").read_text()
    console = (bundle / "console.log").read_text()
    mac = json.loads(sh("ip", "-n", netns.name, "-j", "link", "show", "eth0"))[0]["address"]
    assert f"net=<{GUEST_IP}/24:{PEER_IP}>" in console
    qemu_cmdline = Path(f"/proc/{json.loads(urunc(state_root, 'state', 'n1').stdout)['pid']}/cmdline").read_bytes()
    assert f"mac={mac}".encode() in qemu_cmdline  # the guest took eth0's MAC
    assert urunc(state_root, "delete", "--force", "n1").returncode == 0
    assert netns.snapshot() == before
    # eth0 keeps the address CNI gave it, before, during and after.
    assert f"{GUEST_IP}/24" in sh("ip", "-n", netns.name, "-o", "addr", "show", "dev", "eth0")


def test_twenty_cycles_grow_no_interface_qdisc_or_filter(
        tmp_path: Path, state_root: Path, netns: Netns) -> None:
    before = netns.snapshot()
    bundle = serve_bundle(tmp_path / "b", netns.path)
    for i in range(20):
        result = run(state_root, bundle, f"cycle{i}")
        assert result.returncode == 0, result.stderr
        assert len(netns.links()) == len(before[0]) + 1
        assert urunc(state_root, "delete", "--force", f"cycle{i}").returncode == 0
        assert netns.snapshot() == before, f"cycle {i}"
    assert list(state_root.iterdir()) == []


def test_a_foreign_tap_with_our_name_is_refused_and_untouched(
        tmp_path: Path, state_root: Path, netns: Netns) -> None:
    from urunc.host.network import tap_name

    sh("ip", "-n", netns.name, "tuntap", "add", "dev", tap_name("f1"), "mode", "tap")
    sh("ip", "-n", netns.name, "tuntap", "add", "dev", "tapdeadbeef", "mode", "tap")
    before = netns.snapshot()
    bundle = serve_bundle(tmp_path / "b", netns.path)
    started = run(state_root, bundle, "f1")
    assert started.returncode != 0
    assert f"cannot create tap {tap_name('f1')}: an interface of that name exists" in started.stderr
    assert netns.snapshot() == before
    assert urunc(state_root, "delete", "--force", "f1").returncode == 0
    assert netns.snapshot() == before  # both foreign taps, same ifindex, nothing added


def test_foreign_taps_survive_a_normal_run(tmp_path: Path, state_root: Path, netns: Netns) -> None:
    sh("ip", "-n", netns.name, "tuntap", "add", "dev", "tap00000000", "mode", "tap")
    before = netns.snapshot()
    started = run(state_root, serve_bundle(tmp_path / "b", netns.path), "f2")
    assert started.returncode == 0, started.stderr
    assert urunc(state_root, "delete", "--force", "f2").returncode == 0
    assert netns.snapshot() == before


def test_second_unikernel_in_the_namespace_fails_and_leaves_the_first_working(
        tmp_path: Path, state_root: Path, netns: Netns) -> None:
    before = netns.snapshot()
    assert run(state_root, serve_bundle(tmp_path / "b1", netns.path), "first").returncode == 0
    assert netns.ping()
    with_first = netns.snapshot()
    second = run(state_root, serve_bundle(tmp_path / "b2", netns.path), "second")
    assert second.returncode != 0
    first_tap = tap_of(state_root, "first")["name"]
    assert (f"eth0 in network namespace {netns.path} already has an ingress qdisc redirecting to "
            f"{first_tap}: one unikernel per network namespace") in second.stderr
    assert netns.snapshot() == with_first
    assert urunc(state_root, "delete", "--force", "second").returncode == 0
    assert netns.snapshot() == with_first
    assert netns.ping()
    assert urunc(state_root, "delete", "--force", "first").returncode == 0
    assert netns.snapshot() == before


def test_no_eth0_boots_without_network(tmp_path: Path, state_root: Path) -> None:
    ns = Netns(with_eth0=False)
    try:
        before = ns.snapshot()
        bundle = serve_bundle(tmp_path / "b", ns.path, args=("hello", "x"))
        assert run(state_root, bundle, "bare").returncode == 0
        wait_status(state_root, "bare", "stopped", 30)
        console = (bundle / "console.log").read_text()
        assert "argv[1]=<x>" in console and "net=<" not in console
        assert [r for r in resources(state_root, "bare") if r["kind"] == "tap"] == []
        assert ns.snapshot() == before
        assert urunc(state_root, "delete", "bare").returncode == 0
    finally:
        ns.delete()


def test_host_networking_attaches_nothing_to_the_host_and_warns(tmp_path: Path, state_root: Path) -> None:
    host_links = sh("ip", "-o", "link", "show")
    host_qdiscs = sh("tc", "qdisc", "show")
    bundle = serve_bundle(tmp_path / "b", None, args=("hello", "x"))
    log = tmp_path / "log.json"
    with open(bundle / "console.log", "wb") as sink:
        code = subprocess.run([URUNC, "--root", str(state_root), "--log", str(log), "--log-format", "json",
                               "create", "--bundle", str(bundle), "host"], stdin=subprocess.DEVNULL,
                              stdout=sink, stderr=sink, timeout=30, check=False).returncode
    assert code == 0
    assert urunc(state_root, "start", "host").returncode == 0
    wait_status(state_root, "host", "stopped", 30)
    assert "net=<" not in (bundle / "console.log").read_text()
    warnings = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(w["level"] == "warning" and "host networking" in w["msg"] for w in warnings)
    assert sh("ip", "-o", "link", "show") == host_links
    assert sh("tc", "qdisc", "show") == host_qdiscs
    assert urunc(state_root, "delete", "host").returncode == 0


FAIL_HALFWAY = r"""
import sys
from urunc.host import network
from urunc.unikernel.plan import Plan
calls = []
real = network._Rtnl.redirect_all
def redirect_all(self, index, to_index):
    calls.append(index)
    if len(calls) == 2:  # the second redirect: eth0 -> tap, after the tap and eth0's qdisc exist
        raise OSError("injected failure")
    real(self, index, to_index)
network._Rtnl.redirect_all = redirect_all
values = {n: "" for n in Plan.__slots__}
values.update(container_id="halfway", bundle=sys.argv[1], rootfs=sys.argv[1], state_dir=sys.argv[1],
              netns=sys.argv[2], args=(), env=(), files={})
try:
    network.setup(Plan(**values))
except OSError as exc:
    print("failed:", exc)
"""


def test_a_setup_failing_halfway_removes_what_it_made(tmp_path: Path, netns: Netns) -> None:
    before = netns.snapshot()
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:/usr/local/lib/urunc/python"}
    result = subprocess.run(["ip", "netns", "exec", netns.name, sys.executable, "-c", FAIL_HALFWAY,
                             str(tmp_path), netns.path], capture_output=True, text=True, env=env,
                            timeout=60, check=False)
    assert result.stdout == "failed: injected failure\n", result.stderr
    assert netns.snapshot() == before
    # The write-ahead record names the tap and eth0's qdisc; releasing it again is harmless.
    record = json.loads((tmp_path / "resources.json").read_text())
    assert [(r["kind"], r["eth_ingress"]) for r in record] == [("tap", True)]
    # (In a child, as a second process releasing the same record would.)
    again = subprocess.run([sys.executable, "-c", "import json, sys; from urunc.host import network; "
                            "network.release(json.loads(sys.argv[1]))", json.dumps(record[0])],
                           capture_output=True, text=True, env=env, timeout=60, check=False)
    assert again.returncode == 0, again.stderr
    assert netns.snapshot() == before
