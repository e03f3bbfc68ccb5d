"""What the guest learns about its network: taken from the container's eth0 at start."""

from __future__ import annotations

from urunc._record import Record


class NetInfo(Record):
    """eth0's address as the guest must take it over, and the tap the monitor attaches."""

    __slots__ = ("ip", "prefix", "gateway", "mac", "dns", "tap", "hostname")
    ip: str
    prefix: int
    gateway: str
    mac: str
    dns: str
    tap: str
    hostname: str

    @property
    def mask(self) -> str:
        bits = (0xFFFFFFFF << (32 - self.prefix)) & 0xFFFFFFFF if self.prefix else 0
        return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))

    @property
    def cidr(self) -> str:
        return f"{self.ip}/{self.prefix}"
