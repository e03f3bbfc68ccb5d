"""The guest's network at ``start``: eth0's address for the guest, a tap for the monitor.

Inside the container's network namespace (the init has joined it), CNI left an
``eth0``; the guest takes it over through a tap and two tc redirects:

    peer ──▶ eth0 ─ingress: u32 match-all, mirred egress redirect─▶ tap ──▶ monitor ──▶ guest
    peer ◀── eth0 ◀─ingress: u32 match-all, mirred egress redirect─ tap ◀── monitor ◀── guest

Decisions:

- **eth0 keeps its address.** Once eth0's ingress is redirected the namespace's
  own stack receives nothing on it, so the address answers nothing there; left
  in place, eth0 stays exactly as CNI made it (CNI DEL and status checks find
  it unchanged, and there is nothing to restore). The guest gets the same IP,
  prefix and gateway *and eth0's MAC*, so frames the peers address to eth0 are
  the guest's, and their neighbour caches stay valid. (The Go urunc does the
  same.)
- **No eth0** (``ctr run`` without ``--cni``): ``setup`` returns None and the
  guest boots without network; so does an eth0 with no IPv4 address.
- **Host networking** (no network namespace in the spec, ``plan.netns ==
  "none"``): nothing is ever attached to the host's interfaces; the guest boots
  without network and a warning goes to the log.
- **One unikernel per namespace.** eth0's ingress can be redirected to one tap
  only: a second container in the namespace finds eth0's ingress qdisc taken
  and fails at ``start`` with a message naming it, before creating anything;
  the first container is untouched.
- **Write-ahead record.** The tap is created non-persistent (it dies with our
  file descriptor), recorded with its ifindex in ``resources.json``, and only
  then made persistent; eth0's ingress qdisc is recorded as soon as it exists.
  :func:`release` (``delete``, and every failure path) removes exactly what the
  record names, in the namespace it names (checked by inode), and only when
  the interface there still has the recorded ifindex, name and kind ``tun``:
  a foreign interface named like our tap is never touched. Nothing is found
  by a name pattern. When the runtime created the namespace itself (``ctr
  run --cni`` runs CNI on ``/proc/PID/ns/net``), the record names that path:
  the namespace ends with the monitor, taking the tap with it, and release
  finds it gone (a reused PID is caught by the inode check).
- **Cheap import.** The rtnetlink requests are our own (:mod:`urunc.host._netlink`,
  stdlib ``_socket`` and ``_struct`` only): importing this module costs well
  under a millisecond, so neither ``start`` nor ``delete`` waits for a netlink
  library (pyroute2 took ~65 ms, even importing only its rtnetlink modules).
"""

from __future__ import annotations

import _socket
import os

from urunc import _errors, _jsonlite, _log
from urunc.host import _netlink as rtnl
from urunc.host import resources
from urunc.unikernel.net import NetInfo

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.unikernel.plan import Plan

ETH = "eth0"
TUN_DEVICE = "/dev/net/tun"
# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
TUNSETPERSIST = 0x400454CB
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
IFF_TUN_EXCL = 0x8000  # fail with EBUSY if the name exists: never attach to a foreign tap
IFNAMSIZ = 16
IFF_UP = 0x1
AF_INET = 2
CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
TC_H_INGRESS = 0xFFFFFFF1
INGRESS_HANDLE = 0xFFFF0000
FILTER_PRIO = 1


# ── pure helpers ─────────────────────────────────────────────────────────────

def tap_name(container_id: str) -> str:
    """The container's tap: unique per container ID, at most 15 characters."""
    import zlib

    return f"tap{zlib.crc32(container_id.encode()):08x}"


def parse_resolv_conf(text: str) -> str:
    """The first IPv4 ``nameserver`` of a resolv.conf, or ""."""
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "nameserver" and is_ipv4(words[1]):
            return words[1]
    return ""


def is_ipv4(text: str) -> bool:
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def resolv_conf_source(config: Any, rootfs: str) -> str | None:
    """Where the container's /etc/resolv.conf comes from: a bind mount in config.json, else the rootfs."""
    mounts = config.get("mounts") if isinstance(config, dict) else None
    for mount in reversed(mounts if isinstance(mounts, list) else []):  # the last mount wins
        if isinstance(mount, dict) and mount.get("destination") == "/etc/resolv.conf":
            source = mount.get("source")
            return source if isinstance(source, str) and source.startswith("/") else None
    from urunc.unikernel import rootfs as _rootfs

    try:
        return _rootfs.resolve(rootfs, "/etc/resolv.conf", "resolv.conf")
    except _errors.UruncError:
        return None


def container_dns(plan: Plan) -> str:
    """The first nameserver the container's resolv.conf names, "" for none or an unreadable one.

    Both files are outside input read at start: regular files only (a FIFO put there must
    not hang ``start``), bounded; inside the rootfs, the resolved path's last component is
    not followed either (a symlink swapped in after the resolution)."""
    from urunc._files import read_regular

    try:
        config = _jsonlite.loads(read_regular(os.path.join(plan.bundle, "config.json"), 16 << 20))
    except (OSError, ValueError):
        config = {}
    source = resolv_conf_source(config, plan.rootfs)
    if source is None:
        return ""
    inside = source.startswith(plan.rootfs.rstrip("/") + "/")
    try:
        data = read_regular(source, 1 << 20, nofollow=inside)
    except OSError:
        return ""
    return parse_resolv_conf(data[:65536].decode(errors="replace"))


# ── netlink ──────────────────────────────────────────────────────────────────

class _Rtnl:
    """A route-netlink socket in the namespace current when it was opened, with the few calls we need."""

    def __init__(self) -> None:
        self.sock = rtnl.Socket()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> _Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _dump(self, kind: int, header: rtnl.Layout, **fields: int) -> list[rtnl.Message]:
        return self.sock.request(kind, rtnl.NLM_F_DUMP, header.pack(**fields), header)

    def _do(self, kind: int, header: rtnl.Layout, *attrs: bytes, create: bool = False,
            **fields: int) -> list[rtnl.Message]:
        flags = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL if create else 0
        return self.sock.request(kind, flags, header.pack(**fields) + b"".join(attrs), header)

    def links(self) -> list[rtnl.Message]:
        return self._dump(rtnl.RTM_GETLINK, rtnl.IFINFOMSG)

    def link(self, index: int) -> rtnl.Message | None:
        try:
            found = self._do(rtnl.RTM_GETLINK, rtnl.IFINFOMSG, index=index)
        except _errors.HostError:
            return None
        return found[0] if found else None

    def link_by_name(self, name: str) -> rtnl.Message | None:
        for link in self.links():
            if link.attrs.text(rtnl.IFLA_IFNAME) == name:
                return link
        return None

    def set_link(self, index: int, up: bool, mtu: int | None = None) -> None:
        attrs = [rtnl.attr(rtnl.IFLA_MTU, mtu)] if mtu else []
        self._do(rtnl.RTM_NEWLINK, rtnl.IFINFOMSG, *attrs, index=index, change=IFF_UP,
                 flags=IFF_UP if up else 0)

    def del_link(self, index: int) -> None:
        self._do(rtnl.RTM_DELLINK, rtnl.IFINFOMSG, index=index)

    def ipv4_address(self, index: int) -> tuple[str, int] | None:
        for addr in self._dump(rtnl.RTM_GETADDR, rtnl.IFADDRMSG, family=AF_INET):
            if addr["index"] == index and addr["family"] == AF_INET:
                ip = addr.attrs.ipv4(rtnl.IFA_ADDRESS) or addr.attrs.ipv4(rtnl.IFA_LOCAL)
                if ip:
                    return ip, addr["prefixlen"]
        return None

    def default_gateway(self, index: int) -> str:
        for route in self._dump(rtnl.RTM_GETROUTE, rtnl.RTMSG, family=AF_INET):
            gateway = route.attrs.ipv4(rtnl.RTA_GATEWAY)
            if (route["dst_len"] == 0 and route["table"] == rtnl.RT_TABLE_MAIN and gateway
                    and route.attrs.u32(rtnl.RTA_OIF) in (index, None)):
                return gateway
        return ""

    def qdiscs(self, index: int) -> list[rtnl.Message]:
        return [q for q in self._dump(rtnl.RTM_GETQDISC, rtnl.TCMSG, index=index) if q["index"] == index]

    def has_ingress(self, index: int) -> bool:
        return any(q["parent"] == TC_H_INGRESS or q.attrs.text(rtnl.TCA_KIND) in ("ingress", "clsact")
                   for q in self.qdiscs(index))

    def add_ingress(self, index: int) -> None:
        self._do(rtnl.RTM_NEWQDISC, rtnl.TCMSG, rtnl.attr(rtnl.TCA_KIND, "ingress"), create=True,
                 index=index, handle=INGRESS_HANDLE, parent=TC_H_INGRESS)

    def del_ingress(self, index: int) -> None:
        self._do(rtnl.RTM_DELQDISC, rtnl.TCMSG, rtnl.attr(rtnl.TCA_KIND, "ingress"),
                 index=index, handle=INGRESS_HANDLE, parent=TC_H_INGRESS)

    def redirect_all(self, index: int, to_index: int) -> None:
        """``tc filter add dev INDEX parent ffff: protocol all prio 1 u32 match u32 0 0
        action mirred egress redirect dev TO_INDEX``"""
        match_all = rtnl.TC_U32_SEL.pack(flags=rtnl.TC_U32_TERMINAL, nkeys=1) + rtnl.TC_U32_KEY.pack()
        mirred = rtnl.TC_MIRRED.pack(action=rtnl.TC_ACT_STOLEN, eaction=rtnl.TCA_EGRESS_REDIR, ifindex=to_index)
        action = rtnl.nest(1,  # the first action of the list
                           rtnl.attr(rtnl.TCA_ACT_KIND, "mirred"),
                           rtnl.nest(rtnl.TCA_ACT_OPTIONS, rtnl.attr(rtnl.TCA_MIRRED_PARMS, mirred)))
        options = rtnl.nest(rtnl.TCA_OPTIONS,
                            rtnl.attr(rtnl.TCA_U32_SEL, match_all),
                            rtnl.nest(rtnl.TCA_U32_ACT, action))
        self._do(rtnl.RTM_NEWTFILTER, rtnl.TCMSG, rtnl.attr(rtnl.TCA_KIND, "u32"), options, create=True,
                 index=index, parent=INGRESS_HANDLE, info=FILTER_PRIO << 16 | _socket.htons(ETH_P_ALL))

    def redirect_targets(self, index: int) -> list[int]:
        """The ifindexes the ingress filters of INDEX redirect to (u32 + mirred)."""
        targets = []
        for filt in self._dump(rtnl.RTM_GETTFILTER, rtnl.TCMSG, index=index, parent=INGRESS_HANDLE):
            options = filt.attrs.nested(rtnl.TCA_OPTIONS) if filt.attrs.text(rtnl.TCA_KIND) == "u32" else None
            actions = options.nested(rtnl.TCA_U32_ACT) if options is not None else None
            for value in (actions or {}).values():
                action = rtnl.parse_attrs(value)
                act_options = action.nested(rtnl.TCA_ACT_OPTIONS)
                parms = act_options.get(rtnl.TCA_MIRRED_PARMS) if act_options is not None else None
                if action.text(rtnl.TCA_ACT_KIND) == "mirred" and parms is not None:
                    targets.append(rtnl.TC_MIRRED.unpack(parms)["ifindex"])
        return targets


def _netns_id(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino]


def _create_tap(name: str) -> int:
    """A new, not yet persistent tap; returns the fd that keeps it alive."""
    import fcntl
    import struct

    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack(f"{IFNAMSIZ}sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_TUN_EXCL))
    except OSError as exc:
        os.close(fd)
        if exc.errno == 16:  # EBUSY: the name exists
            raise _errors.HostError(f"cannot create tap {name}: an interface of that name exists") from None
        raise _errors.HostError(f"cannot create tap {name}: {exc.strerror}") from None
    return fd


# ── setup and release ────────────────────────────────────────────────────────

def open_tap(name: str) -> int:
    """Attach to our (persistent) tap as root and return an inheritable fd for the monitor.

    A monitor running as the container's user cannot open /dev/net/tun itself;
    handed this fd (QEMU ``-netdev tap,fd=N``) it needs no access to it at all.
    """
    import fcntl
    import struct

    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack(f"{IFNAMSIZ}sH", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR))
    except OSError as exc:
        os.close(fd)
        raise _errors.HostError(f"cannot attach to tap {name}: {exc.strerror}") from None
    os.set_inheritable(fd, True)
    return fd


def setup(plan: Plan) -> NetInfo | None:
    """Give the guest eth0's network through a new tap; None when there is no network to give."""
    if plan.netns == "none":
        _log.warning(f"container {plan.container_id} has no network namespace (host networking): "
                     "the guest boots without network")
        return None
    with _Rtnl() as nl:
        eth = nl.link_by_name(ETH)
        if eth is None:
            return None
        eth_index = eth["index"]
        address = nl.ipv4_address(eth_index)
        if address is None:
            _log.warning(f"{ETH} of container {plan.container_id} has no IPv4 address: "
                         "the guest boots without network")
            return None
        if nl.has_ingress(eth_index):
            names = []
            for target in nl.redirect_targets(eth_index):
                link = nl.link(target)
                ifname = link.attrs.text(rtnl.IFLA_IFNAME) if link is not None else None
                names.append(ifname or f"ifindex {target}")
            detail = f" redirecting to {', '.join(names)}" if names else ""
            raise _errors.HostError(
                f"{ETH} in network namespace {plan.netns or 'of the container'} already has an ingress qdisc"
                f"{detail}: one unikernel per network namespace")
        gateway = nl.default_gateway(eth_index)
        mac = eth.attrs.mac(rtnl.IFLA_ADDRESS) or ""
        mtu = eth.attrs.u32(rtnl.IFLA_MTU)
        name = tap_name(plan.container_id)
        # Our PID as the host sees it (the host's /proc tells; getpid() says 1 in our PID namespace).
        netns = plan.netns or f"/proc/{os.readlink('/proc/self')}/ns/net"
        entry: dict[str, Any] = {
            "kind": "tap", "netns": netns, "netns_id": _netns_id("/proc/self/ns/net"),
            "name": name, "ifindex": 0, "eth": ETH, "eth_ifindex": eth_index, "eth_ingress": False,
        }
        fd = _create_tap(name)
        index: int | None = None
        try:
            entry["ifindex"] = _socket.if_nametoindex(name)
            index = resources.record(plan.state_dir, entry, None)
            import fcntl

            fcntl.ioctl(fd, TUNSETPERSIST, 1)
        except BaseException:
            os.close(fd)  # the tap is not persistent yet: it goes with this fd
            if index is not None:
                _release_in(nl, entry)
            raise
        os.close(fd)
        try:
            nl.set_link(entry["ifindex"], up=True, mtu=mtu)
            nl.add_ingress(entry["ifindex"])
            nl.redirect_all(entry["ifindex"], eth_index)
            entry["eth_ingress"] = True  # write-ahead: eth0 had no ingress qdisc a moment ago
            resources.record(plan.state_dir, entry, index)
            try:
                nl.add_ingress(eth_index)
            except _errors.HostError:
                entry["eth_ingress"] = False  # someone else's, added in between: not ours to remove
                resources.record(plan.state_dir, entry, index)
                raise
            nl.redirect_all(eth_index, entry["ifindex"])
        except BaseException:
            _release_in(nl, entry)
            raise
    return NetInfo(ip=address[0], prefix=address[1], gateway=gateway, mac=mac,
                   dns=container_dns(plan), tap=name, hostname=plan.hostname)


def release(resource: dict[str, Any]) -> None:
    """Remove what RESOURCE records, in its namespace, if that is still the one we used."""
    from urunc.host import syscalls

    path = resource.get("netns") or ""
    try:
        # O_NONBLOCK: a FIFO put where the namespace was opens at once, and then fails the
        # identity check below like anything else that is not the namespace we used.
        target = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        return  # the namespace is gone, and our interfaces with it
    except OSError as exc:
        raise _errors.HostError(f"cannot open network namespace {path}: {exc.strerror}") from None
    try:
        st = os.fstat(target)
        if [st.st_dev, st.st_ino] != list(resource.get("netns_id") or []):
            return  # not the namespace we used (a /proc/PID path whose PID was reused)
        own = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            # A netlink socket stays in the namespace it was opened in: open it there, come back.
            syscalls.setns(target, CLONE_NEWNET, f"network namespace {path}")
            try:
                nl = _Rtnl()
            finally:
                syscalls.setns(own, CLONE_NEWNET, "own network namespace")
        finally:
            os.close(own)
    finally:
        os.close(target)
    with nl:
        _release_in(nl, resource)


def _release_in(nl: _Rtnl, resource: dict[str, Any]) -> None:
    tap_index = resource.get("ifindex") or 0
    tap = nl.link(tap_index) if tap_index else None
    ours = (tap is not None and tap.attrs.text(rtnl.IFLA_IFNAME) == resource.get("name")
            and _link_kind(tap) == "tun")
    eth_index = resource.get("eth_ifindex") or 0
    if resource.get("eth_ingress") and eth_index:
        eth = nl.link(eth_index)
        # Only our qdisc: eth0's ingress must redirect nowhere but to our tap.
        named = eth is not None and eth.attrs.text(rtnl.IFLA_IFNAME) == resource.get("eth")
        if named and nl.has_ingress(eth_index):
            if all(t == tap_index for t in nl.redirect_targets(eth_index)):
                nl.del_ingress(eth_index)
    if ours:
        nl.del_link(tap_index)  # its own qdisc and filter go with it


def _link_kind(link: rtnl.Message) -> str | None:
    info = link.attrs.nested(rtnl.IFLA_LINKINFO)
    return info.text(rtnl.IFLA_INFO_KIND) if info is not None else None
