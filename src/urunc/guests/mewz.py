"""Mewz (a WebAssembly unikernel): ``ip=IP/PREFIX gateway=GW`` on QEMU, nothing else.

Mewz ends by writing to QEMU's isa-debug-exit port and drives virtio-net in
modern mode only, hence its extra device and virtio options.
"""

from __future__ import annotations

from urunc.guests import Guest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


class Mewz(Guest):
    name = "mewz"
    monitors = frozenset({"qemu"})
    storage: frozenset[str] = frozenset()
    default_memory_mib = 256
    exit_port = (0x501, 2)
    virtio_modern_only = True

    def cmdline(self, plan: Plan, net: NetInfo | None) -> str:
        if net is None:
            return ""
        return f"ip={net.cidr} gateway={net.gateway}"


GUEST = Mewz()
