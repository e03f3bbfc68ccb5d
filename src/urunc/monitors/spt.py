"""solo5-spt: the Solo5 tender as a seccomp-confined process; same flags as solo5-hvt, no KVM."""

from __future__ import annotations

from urunc.monitors.hvt import Solo5Tender


class Spt(Solo5Tender):
    name = "spt"
    binary = "solo5-spt"


MONITOR = Spt()
