"""Route netlink (rtnetlink) with the standard library alone: a socket, messages, attributes.

urunc needs a dozen rtnetlink requests (links, addresses, routes, qdiscs, tc
filters), at ``start`` and at ``delete``. This module imports only the built-in
``_socket`` and ``_struct`` (``socket`` itself pulls in enum and selectors, ~10
ms), so importing it costs a fraction of a millisecond where pyroute2 cost ~65.

The wire format (<linux/netlink.h>, <linux/rtnetlink.h>), in host byte order::

    message    nlmsghdr {u32 len, u16 type, u16 flags, u32 seq, u32 pid}, family header, attributes
    attribute  rtattr {u16 len, u16 type}, value, zero padding to 4 bytes
    nested     an attribute whose value is attributes (flagged NLA_F_NESTED when we send it)

Every request asks for an acknowledgement: it ends with NLMSG_ERROR, whose
errno is 0 for success. A dump ends with NLMSG_DONE instead. Replies carry the
request's sequence number; any other (a late reply to an abandoned request) is
skipped. Attributes are kept undecoded, by type, and read on demand: the kernel
does not flag every nested attribute, so only the reader knows which are.
"""

from __future__ import annotations

import _socket
import os
from _struct import Struct

from urunc import _errors

# <linux/netlink.h>
NETLINK_ROUTE = 0
NLM_F_REQUEST = 0x01
NLM_F_ACK = 0x04
NLM_F_DUMP = 0x300
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLA_F_NESTED = 1 << 15
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
# <linux/rtnetlink.h>
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_GETADDR = 22
RTM_GETROUTE = 26
RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46
RT_TABLE_MAIN = 254
RTA_OIF, RTA_GATEWAY = 4, 5
TCA_KIND, TCA_OPTIONS = 1, 2
# <linux/if_link.h>, <linux/if_addr.h>
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO = 1, 3, 4, 18
IFLA_INFO_KIND = 1
IFA_ADDRESS, IFA_LOCAL = 1, 2
# <linux/pkt_cls.h>, <linux/tc_act/tc_mirred.h>
TCA_U32_SEL, TCA_U32_ACT = 5, 7
TC_U32_TERMINAL = 1
TCA_ACT_KIND, TCA_ACT_OPTIONS = 1, 2
TC_ACT_STOLEN = 4
TCA_MIRRED_PARMS = 2
TCA_EGRESS_REDIR = 1

_NLMSGHDR = Struct("=IHHII")
_RTATTR = Struct("=HH")
_U32 = Struct("=I")
_ERRNO = Struct("=i")


class Layout:
    """A C struct of integers: its ``_struct`` format (pad bytes as ``x``) and its fields' names."""

    __slots__ = ("struct", "names")

    def __init__(self, fmt: str, names: tuple[str, ...]) -> None:
        self.struct = Struct(fmt)
        self.names = names

    @property
    def size(self) -> int:
        return self.struct.size

    def pack(self, **fields: int) -> bytes:
        """The struct with FIELDS set and every other field 0."""
        unknown = fields.keys() - set(self.names)
        if unknown:
            raise TypeError(f"unknown fields {sorted(unknown)}")
        return self.struct.pack(*(fields.get(name, 0) for name in self.names))

    def unpack(self, data: bytes, offset: int = 0) -> dict[str, int]:
        return dict(zip(self.names, self.struct.unpack_from(data, offset), strict=True))


# Family headers (<linux/rtnetlink.h>, <linux/if_addr.h>): fields named after the C members, prefix dropped.
IFINFOMSG = Layout("=BxHiII", ("family", "type", "index", "flags", "change"))
IFADDRMSG = Layout("=BBBBI", ("family", "prefixlen", "flags", "scope", "index"))
RTMSG = Layout("=BBBBBBBBI", ("family", "dst_len", "src_len", "tos", "table", "protocol", "scope", "type", "flags"))
TCMSG = Layout("=BxxxiIII", ("family", "index", "handle", "parent", "info"))
# tc structs (<linux/pkt_cls.h>, <linux/tc_act/tc_mirred.h>); the __be fields are all zero here.
TC_U32_SEL = Layout("=BBBxHHhhI", ("flags", "offshift", "nkeys", "offmask", "off", "offoff", "hoff", "hmask"))
TC_U32_KEY = Layout("=IIii", ("mask", "val", "off", "offmask"))
TC_MIRRED = Layout("=IIiiiiI", ("index", "capab", "action", "refcnt", "bindcnt", "eaction", "ifindex"))


def _align(length: int) -> int:
    return (length + 3) & ~3


# ── attributes ───────────────────────────────────────────────────────────────

def attr(kind: int, value: bytes | str | int) -> bytes:
    """One attribute, padded: a str goes NUL-terminated, an int as a u32."""
    if isinstance(value, str):
        value = value.encode() + b"\0"
    elif isinstance(value, int):
        value = _U32.pack(value)
    length = _RTATTR.size + len(value)
    return _RTATTR.pack(length, kind) + value + bytes(_align(length) - length)


def nest(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


class Attrs(dict[int, bytes]):
    """Attributes by type (the first of each type), their values undecoded."""

    def text(self, kind: int) -> str | None:
        value = self.get(kind)
        return None if value is None else value.split(b"\0", 1)[0].decode(errors="replace")

    def u32(self, kind: int) -> int | None:
        value = self.get(kind)
        return None if value is None else int(_U32.unpack_from(value)[0])

    def ipv4(self, kind: int) -> str | None:
        value = self.get(kind)
        return _socket.inet_ntoa(value) if value is not None and len(value) == 4 else None

    def mac(self, kind: int) -> str | None:
        value = self.get(kind)
        return None if value is None else value.hex(":")

    def nested(self, kind: int) -> Attrs | None:
        value = self.get(kind)
        return None if value is None else parse_attrs(value)


def parse_attrs(data: bytes) -> Attrs:
    attrs = Attrs()
    offset = 0
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size or offset + length > len(data):
            raise _errors.HostError("netlink: malformed attribute")
        attrs.setdefault(kind & NLA_TYPE_MASK, data[offset + _RTATTR.size:offset + length])
        offset += _align(length)
    return attrs


# ── messages ─────────────────────────────────────────────────────────────────

class Message:
    """One reply: its netlink type, its family header's fields (``msg["index"]``), its attributes."""

    __slots__ = ("kind", "fields", "attrs")

    def __init__(self, kind: int, fields: dict[str, int], attrs: Attrs) -> None:
        self.kind = kind
        self.fields = fields
        self.attrs = attrs

    def __getitem__(self, name: str) -> int:
        return self.fields[name]

    def __repr__(self) -> str:
        return f"Message(kind={self.kind}, fields={self.fields}, attrs={dict(self.attrs)})"


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def parse_replies(data: bytes, seq: int, header: Layout, found: list[Message]) -> bool:
    """Append the replies to request SEQ in DATA (one datagram) to FOUND; whether that was the last.

    A failed request raises HostError ``netlink: <strerror>``.
    """
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, reply_seq, _pid = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or offset + length > len(data):
            raise _errors.HostError("netlink: malformed message")
        start, end = offset + _NLMSGHDR.size, offset + length
        offset += _align(length)
        if reply_seq != seq:
            continue
        if kind in (NLMSG_ERROR, NLMSG_DONE):  # both begin with an int: 0 or -errno
            error = -_ERRNO.unpack_from(data, start)[0] if end - start >= _ERRNO.size else 0
            if error > 0:
                raise _errors.HostError(f"netlink: {os.strerror(error)}")
            return True
        if end - start < header.size:
            raise _errors.HostError("netlink: malformed message")
        found.append(Message(kind, header.unpack(data, start), parse_attrs(data[start + header.size:end])))
    return False


class Socket:
    """A route-netlink socket, in the network namespace current when it is opened."""

    def __init__(self) -> None:
        try:
            self._sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        except OSError as exc:
            raise _errors.HostError(f"netlink: {exc.strerror}") from None
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Socket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, flags: int, body: bytes, reply: Layout) -> list[Message]:
        """Send a request (BODY: family header and attributes) and return its replies, read as REPLY.

        NLM_F_REQUEST and NLM_F_ACK are added to FLAGS; with NLM_F_DUMP the kernel
        ends the replies with NLMSG_DONE and no acknowledgement.
        """
        self._seq += 1
        found: list[Message] = []
        try:
            self._sock.send(message(kind, NLM_F_REQUEST | NLM_F_ACK | flags, self._seq, body))
            while not parse_replies(self._recv(), self._seq, reply, found):
                pass
        except OSError as exc:
            raise _errors.HostError(f"netlink: {exc.strerror}") from None
        return found

    def _recv(self) -> bytes:
        # The datagram's size first (MSG_TRUNC returns it): a dump's may exceed any fixed buffer.
        size = self._sock.recv_into(bytearray(1), 1, _socket.MSG_PEEK | _socket.MSG_TRUNC)
        data = self._sock.recv(size)
        if not data:
            raise _errors.HostError("netlink: empty reply")
        return data
