"""The runtime's own rtnetlink: wire format without root, then the real kernel in a throw-away namespace.

Root tests run each netlink call in a forked child that joined the namespace
(a netlink socket lives in the namespace it was opened in) and check the
result with iproute2's ``ip`` and ``tc``, independent of the code under test.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import socket
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.netns import GUEST_IP, PEER_IP, Netns, sh
from tests.unit._plans import plan
from urunc import _errors
from urunc.host import _netlink as rtnl
from urunc.host import network, resources, syscalls

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("tc") is None
    or not os.path.exists("/dev/net/tun"),
    reason="needs root (network namespaces, taps), iproute2 and /dev/net/tun",
)


# ── wire format ──────────────────────────────────────────────────────────────

def test_attributes_are_padded_to_four_bytes_and_their_length_excludes_the_padding() -> None:
    assert rtnl.attr(rtnl.IFLA_IFNAME, "eth0") == b"\x09\x00\x03\x00eth0\x00" + b"\x00" * 3
    assert rtnl.attr(rtnl.IFLA_MTU, 1500) == b"\x08\x00\x04\x00\xdc\x05\x00\x00"
    assert rtnl.attr(7, b"") == b"\x04\x00\x07\x00"


def test_nested_attributes_are_flagged_and_parsed_on_demand() -> None:
    inner = rtnl.attr(rtnl.IFLA_INFO_KIND, "tun")
    packed = rtnl.attr(rtnl.IFLA_IFNAME, "tap0") + rtnl.nest(rtnl.IFLA_LINKINFO, inner) + rtnl.attr(rtnl.IFLA_MTU, 9000)
    assert packed[12:16] == (4 + len(inner)).to_bytes(2, "little") + (rtnl.IFLA_LINKINFO | 0x8000).to_bytes(2, "little")
    attrs = rtnl.parse_attrs(packed)
    assert sorted(attrs) == [rtnl.IFLA_IFNAME, rtnl.IFLA_MTU, rtnl.IFLA_LINKINFO]  # the NLA_F_NESTED bit masked
    assert attrs[rtnl.IFLA_LINKINFO] == inner  # raw until asked
    info = attrs.nested(rtnl.IFLA_LINKINFO)
    assert info is not None and info.text(rtnl.IFLA_INFO_KIND) == "tun"
    assert attrs.text(rtnl.IFLA_IFNAME) == "tap0" and attrs.u32(rtnl.IFLA_MTU) == 9000
    assert attrs.nested(rtnl.IFLA_ADDRESS) is None and attrs.u32(rtnl.IFLA_ADDRESS) is None


def test_attribute_values_decode_as_addresses() -> None:
    attrs = rtnl.parse_attrs(rtnl.attr(rtnl.IFLA_ADDRESS, bytes.fromhex("0242ac1100ff"))
                             + rtnl.attr(rtnl.RTA_GATEWAY, bytes([10, 0, 0, 1])))
    assert attrs.mac(rtnl.IFLA_ADDRESS) == "02:42:ac:11:00:ff"
    assert attrs.ipv4(rtnl.RTA_GATEWAY) == "10.0.0.1"
    assert attrs.ipv4(rtnl.IFLA_ADDRESS) is None  # six bytes are no IPv4 address


def test_an_attribute_overrunning_its_message_is_refused() -> None:
    with pytest.raises(_errors.HostError, match="^netlink: malformed attribute$"):
        rtnl.parse_attrs(rtnl.attr(rtnl.IFLA_IFNAME, "eth0")[:6])


def test_layouts_match_the_kernel_headers() -> None:
    sizes = {"IFINFOMSG": 16, "IFADDRMSG": 8, "RTMSG": 12, "TCMSG": 20, "TC_U32_SEL": 16, "TC_U32_KEY": 16,
             "TC_MIRRED": 28}
    assert {name: getattr(rtnl, name).size for name in sizes} == sizes
    assert rtnl.TCMSG.pack(index=3, info=7)[4:8] == b"\x03\x00\x00\x00"
    assert rtnl.TC_MIRRED.pack(ifindex=9)[24:] == b"\x09\x00\x00\x00"
    with pytest.raises(TypeError, match="unknown fields"):
        rtnl.IFINFOMSG.pack(ifindex=1)


def _error(seq: int, code: int) -> bytes:
    return rtnl.message(rtnl.NLMSG_ERROR, 0, seq, code.to_bytes(4, "little", signed=True) + bytes(16))


def test_an_error_reply_carries_the_errno_text() -> None:
    with pytest.raises(_errors.HostError, match="^netlink: No such device$"):
        rtnl.parse_replies(_error(5, -errno.ENODEV), 5, rtnl.IFINFOMSG, [])
    assert rtnl.parse_replies(_error(5, 0), 5, rtnl.IFINFOMSG, []) is True  # the acknowledgement


def test_a_dump_is_read_until_done_and_other_sequence_numbers_are_skipped() -> None:
    link = rtnl.IFINFOMSG.pack(index=4) + rtnl.attr(rtnl.IFLA_IFNAME, "eth0")
    found: list[rtnl.Message] = []
    part = rtnl.message(rtnl.RTM_NEWLINK, 2, 8, link) + rtnl.message(rtnl.RTM_NEWLINK, 2, 7, link)
    assert rtnl.parse_replies(part, 8, rtnl.IFINFOMSG, found) is False
    assert rtnl.parse_replies(_error(7, -errno.EPERM) + rtnl.message(rtnl.NLMSG_DONE, 2, 8, bytes(4)),
                              8, rtnl.IFINFOMSG, found) is True
    assert [(m.kind, m["index"], m.attrs.text(rtnl.IFLA_IFNAME)) for m in found] == [(rtnl.RTM_NEWLINK, 4, "eth0")]


class _Recorder:
    """Stands for the socket: records requests, answers with REPLIES."""

    def __init__(self, replies: list[rtnl.Message]) -> None:
        self.sent: list[tuple[int, int, bytes]] = []
        self.replies = replies

    def request(self, kind: int, flags: int, body: bytes, reply: rtnl.Layout) -> list[rtnl.Message]:
        self.sent.append((kind, flags, body))
        return self.replies


def _rtnl_with(sock: _Recorder) -> network._Rtnl:
    nl = network._Rtnl.__new__(network._Rtnl)
    nl.sock = sock  # type: ignore[assignment]
    return nl


def test_redirect_all_sends_a_u32_match_all_with_a_mirred_egress_redirect_that_redirect_targets_reads() -> None:
    sock = _Recorder([])
    _rtnl_with(sock).redirect_all(3, 7)
    [(kind, flags, body)] = sock.sent
    assert kind == rtnl.RTM_NEWTFILTER and flags == rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    header = rtnl.TCMSG.unpack(body)
    assert header == {"family": 0, "index": 3, "handle": 0, "parent": 0xFFFF0000, "info": 1 << 16 | 0x0300}
    attrs = rtnl.parse_attrs(body[rtnl.TCMSG.size:])
    options = attrs.nested(rtnl.TCA_OPTIONS)
    assert attrs.text(rtnl.TCA_KIND) == "u32" and options is not None
    sel = options[rtnl.TCA_U32_SEL]
    assert rtnl.TC_U32_SEL.unpack(sel) == {**dict.fromkeys(rtnl.TC_U32_SEL.names, 0), "flags": 1, "nkeys": 1}
    assert sel[16:] == bytes(16)  # one key: match u32 0 0 at 0
    actions = options.nested(rtnl.TCA_U32_ACT)
    assert actions is not None and list(actions) == [1]
    action = rtnl.parse_attrs(actions[1])
    parms = action.nested(rtnl.TCA_ACT_OPTIONS)
    assert action.text(rtnl.TCA_ACT_KIND) == "mirred" and parms is not None
    assert rtnl.TC_MIRRED.unpack(parms[rtnl.TCA_MIRRED_PARMS]) == {
        **dict.fromkeys(rtnl.TC_MIRRED.names, 0), "action": 4, "eaction": 1, "ifindex": 7}  # stolen, egress redir
    dumped = rtnl.Message(rtnl.RTM_NEWTFILTER, header, attrs)
    assert _rtnl_with(_Recorder([dumped])).redirect_targets(3) == [7]


# ── the kernel, in whatever namespace the tests run in (no root needed) ──────

def test_a_link_dump_lists_loopback_and_a_missing_link_is_an_error() -> None:
    with rtnl.Socket() as sock:
        links = sock.request(rtnl.RTM_GETLINK, rtnl.NLM_F_DUMP, rtnl.IFINFOMSG.pack(), rtnl.IFINFOMSG)
        assert {m.attrs.text(rtnl.IFLA_IFNAME): m["index"] for m in links}["lo"] == socket.if_nametoindex("lo")
        with pytest.raises(_errors.HostError, match="^netlink: No such device$"):
            sock.request(rtnl.RTM_GETLINK, 0, rtnl.IFINFOMSG.pack(index=2**31 - 1), rtnl.IFINFOMSG)
        [lo] = sock.request(rtnl.RTM_GETLINK, 0, rtnl.IFINFOMSG.pack(index=1), rtnl.IFINFOMSG)  # still in step
        assert lo.attrs.text(rtnl.IFLA_IFNAME) == "lo"


# ── a real namespace (root) ──────────────────────────────────────────────────

def in_netns(path: str | None, fn: Callable[[], Any]) -> Any:
    """FN's result, run in a forked child that joined the network namespace at PATH first (None: stays)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(read)
            try:
                if path is not None:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                    syscalls.setns(fd, network.CLONE_NEWNET, path)
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException:  # noqa: BLE001 - reported to the test
                outcome = (False, traceback.format_exc())
            with os.fdopen(write, "wb") as f:
                pickle.dump(outcome, f)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        pytest.fail("the child died without a result")
    ok, value = pickle.loads(data)
    if not ok:
        pytest.fail(f"in the namespace:\n{value}")
    return value


def _ip_links(ns: Netns) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in json.loads(sh("ip", "-n", ns.name, "-d", "-j", "link", "show"))}


def _redirects(ns: Netns, dev: str) -> list[tuple[str, str, str]]:
    """(kind, mirred action, target) of each action of DEV's ingress filters, as ``tc`` reads them."""
    filters = json.loads(sh("tc", "-n", ns.name, "-j", "filter", "show", "dev", dev, "ingress"))
    return [(f["kind"], f"{a['direction']} {a['mirred_action']}", a["to_dev"])
            for f in filters for a in f.get("options", {}).get("actions", [])]


@needs_root
def test_links_addresses_and_routes_read_as_iproute2_shows_them(netns: Netns) -> None:
    def read() -> Any:
        with network._Rtnl() as nl:
            eth = nl.link_by_name("eth0")
            assert eth is not None
            index = eth["index"]
            return (index, nl.ipv4_address(index), nl.default_gateway(index), eth.attrs.mac(rtnl.IFLA_ADDRESS),
                    eth.attrs.u32(rtnl.IFLA_MTU), network._link_kind(eth), nl.link(index + 1000),
                    sorted(m.attrs.text(rtnl.IFLA_IFNAME) or "" for m in nl.links()))

    index, address, gateway, mac, mtu, kind, absent, names = in_netns(netns.path, read)
    eth = _ip_links(netns)["eth0"]
    assert (index, mac, mtu, kind) == (eth["ifindex"], eth["address"], eth["mtu"], eth["linkinfo"]["info_kind"])
    assert (address, gateway, absent, names) == ((GUEST_IP, 24), PEER_IP, None, ["eth0", "lo"])


@needs_root
def test_set_link_and_del_link(netns: Netns) -> None:
    sh("ip", "-n", netns.name, "link", "add", "va", "type", "veth", "peer", "name", "vb")
    before = _ip_links(netns)["va"]
    assert before["mtu"] != 1400 and "UP" not in before["flags"]

    def set_link(name: str, up: bool, mtu: int | None = None) -> None:
        with network._Rtnl() as nl:
            link = nl.link_by_name(name)
            assert link is not None
            nl.set_link(link["index"], up=up, mtu=mtu)

    in_netns(netns.path, lambda: set_link("va", True, 1400))
    va = _ip_links(netns)["va"]
    assert va["mtu"] == 1400 and "UP" in va["flags"]
    in_netns(netns.path, lambda: set_link("va", False))
    va = _ip_links(netns)["va"]
    assert va["mtu"] == 1400 and "UP" not in va["flags"]

    def del_link(name: str) -> None:
        with network._Rtnl() as nl:
            link = nl.link_by_name(name)
            assert link is not None
            nl.del_link(link["index"])

    in_netns(netns.path, lambda: del_link("vb"))  # va goes with its peer
    assert sorted(_ip_links(netns)) == ["eth0", "lo"]


@needs_root
def test_ingress_qdisc_and_redirect_round_trip(netns: Netns) -> None:
    def redirect() -> Any:
        with network._Rtnl() as nl:
            eth = nl.link_by_name("eth0")
            assert eth is not None
            index = eth["index"]
            assert not nl.has_ingress(index)
            nl.add_ingress(index)
            with pytest.raises(_errors.HostError, match="^netlink: File exists$"):
                nl.add_ingress(index)
            nl.redirect_all(index, 1)
            return nl.has_ingress(index), nl.redirect_targets(index), sorted(q.attrs.text(rtnl.TCA_KIND) or ""
                                                                             for q in nl.qdiscs(index))

    assert in_netns(netns.path, redirect) == (True, [1], ["ingress", "noqueue"])
    assert _redirects(netns, "eth0") == [("u32", "egress redirect", "lo")]

    index = _ip_links(netns)["eth0"]["ifindex"]

    def remove() -> Any:
        with network._Rtnl() as nl:
            nl.del_ingress(index)
            return nl.has_ingress(index), nl.redirect_targets(index)

    assert in_netns(netns.path, remove) == (False, [])
    assert "ingress" not in sh("tc", "-n", netns.name, "qdisc", "show", "dev", "eth0")


def _setup_plan(tmp_path: Path, netns: Netns, container_id: str) -> Any:
    state = tmp_path / container_id
    state.mkdir()
    return plan(container_id=container_id, bundle=str(tmp_path), rootfs=str(tmp_path / "rootfs"),
                state_dir=str(state), netns=netns.path)


def _setup(p: Any) -> dict[str, Any] | None:
    net = network.setup(p)
    return None if net is None else net.to_dict()  # a frozen Record does not unpickle


@needs_root
def test_setup_gives_eth0_to_a_tap_and_release_removes_it(tmp_path: Path, netns: Netns) -> None:
    before = netns.snapshot()
    p = _setup_plan(tmp_path, netns, "net1")
    net = in_netns(netns.path, lambda: _setup(p))
    tap = network.tap_name("net1")
    links = _ip_links(netns)
    eth = links["eth0"]
    assert net == {"ip": GUEST_IP, "prefix": 24, "gateway": PEER_IP, "mac": eth["address"], "dns": "", "tap": tap,
                   "hostname": "c1"}
    assert links[tap]["linkinfo"]["info_kind"] == "tun" and "UP" in links[tap]["flags"]
    assert links[tap]["mtu"] == eth["mtu"]
    assert sorted(q for q in netns.qdiscs() if q.endswith(" ingress")) == ["eth0 ingress", f"{tap} ingress"]
    assert _redirects(netns, "eth0") == [("u32", "egress redirect", tap)]
    assert _redirects(netns, tap) == [("u32", "egress redirect", "eth0")]
    [record] = resources.load(p.state_dir)
    assert (record["ifindex"], record["eth_ifindex"], record["eth_ingress"]) == (links[tap]["ifindex"],
                                                                                   eth["ifindex"], True)

    def targets() -> Any:
        with network._Rtnl() as nl:
            return nl.redirect_targets(eth["ifindex"]), nl.redirect_targets(record["ifindex"])

    assert in_netns(netns.path, targets) == ([record["ifindex"]], [eth["ifindex"]])

    def release_and_come_back() -> bool:  # from the host's namespace, as `delete` does
        own = os.stat("/proc/self/ns/net").st_ino
        network.release(record)
        return os.stat("/proc/self/ns/net").st_ino == own

    assert in_netns(None, release_and_come_back) is True
    assert netns.snapshot() == before


@needs_root
def test_a_second_container_in_the_namespace_is_refused_naming_the_first_tap(tmp_path: Path, netns: Netns) -> None:
    in_netns(netns.path, lambda: _setup(_setup_plan(tmp_path, netns, "first")))
    during = netns.snapshot()
    second = _setup_plan(tmp_path, netns, "second")

    def refused() -> str:
        with pytest.raises(_errors.HostError) as info:
            network.setup(second)
        return str(info.value)

    message = in_netns(netns.path, refused)
    assert f"already has an ingress qdisc redirecting to {network.tap_name('first')}" in message
    assert netns.snapshot() == during and resources.load(second.state_dir) == []


@needs_root
def test_a_setup_failing_halfway_removes_what_it_made(tmp_path: Path, netns: Netns) -> None:
    before = netns.snapshot()
    p = _setup_plan(tmp_path, netns, "halfway")

    def fail_on_the_second_redirect() -> str:
        real = network._Rtnl.redirect_all
        calls: list[int] = []

        def redirect_all(self: network._Rtnl, index: int, to_index: int) -> None:
            calls.append(index)
            if len(calls) == 2:  # eth0 -> tap, after the tap and eth0's qdisc exist
                raise OSError("injected failure")
            real(self, index, to_index)

        network._Rtnl.redirect_all = redirect_all  # type: ignore[method-assign]
        with pytest.raises(OSError) as info:
            network.setup(p)
        return str(info.value)

    assert in_netns(netns.path, fail_on_the_second_redirect) == "injected failure"
    assert netns.snapshot() == before
    [record] = resources.load(p.state_dir)
    assert record["eth_ingress"] is True
    in_netns(None, lambda: network.release(record))  # releasing the record again is harmless
    assert netns.snapshot() == before
