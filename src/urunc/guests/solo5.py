"""Solo5 (and MirageOS on it): the tender's own flags name devices the unikernel declared.

A Solo5 unikernel runs under its tender (``solo5-hvt`` or ``solo5-spt``):
``TENDER --mem=MB --net:NAME=TAP --net-mac:NAME=MAC --block:NAME=PATH --
KERNEL ARG...``. Device names are those of the ELF manifest the unikernel
carries (read at create: the first NET_BASIC gets the tap, the first
BLOCK_BASIC the disk); ``com.urunc.unikernel.netDevice`` / ``blockDevice``
override. Arguments after the kernel are each one argv element; MirageOS
reads its network from ``--ipv4=IP/PREFIX --ipv4-gateway=GW`` (a device other
than ``service`` is addressed as ``--NAME-ipv4=``, as MirageOS prefixes the
keys of every non-default network with its name).
"""

from __future__ import annotations

from urunc import _errors
from urunc.guests import Guest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


def resolve_devices(plan: Plan, guest: str) -> Plan:
    """Fill the Plan's device names from the kernel's Solo5 manifest where no annotation set them."""
    devices = dict(plan.devices)
    needs_block = bool(plan.block) and "block" not in devices
    if "net" in devices and not needs_block:
        return plan
    from urunc.host import solo5_manifest

    manifest = solo5_manifest.read(plan.kernel)
    if manifest is None:
        raise _errors.PlanError(
            f"{guest} kernel {plan.kernel} carries no solo5 manifest note",
            hint="a solo5-hvt/spt binary is needed; or set com.urunc.unikernel.netDevice/blockDevice")
    net = manifest.first("NET_BASIC")
    if "net" not in devices and net:
        devices["net"] = net
    if needs_block:
        block = manifest.first("BLOCK_BASIC")
        if not block:
            raise _errors.PlanError(f"{guest} kernel {plan.kernel} declares no block device "
                                    "in its solo5 manifest, so the block annotation cannot attach")
        devices["block"] = block
    return plan.replace(devices=devices)


class Solo5(Guest):
    name = "solo5"
    monitors = frozenset({"hvt", "spt"})
    default_monitor = "hvt"
    storage = frozenset({"block"})
    default_memory_mib = 128

    def prepare(self, plan: Plan) -> Plan:
        return resolve_devices(plan, self.name)

    def tender_args(self, plan: Plan, net: NetInfo | None) -> list[str]:
        args: list[str] = []
        device = plan.devices.get("net")
        if net is not None and device:
            prefix = "--" if device == "service" else f"--{device}-"
            args += [f"{prefix}ipv4={net.cidr}", f"{prefix}ipv4-gateway={net.gateway}"]
        return args + list(plan.args)


GUEST = Solo5()
