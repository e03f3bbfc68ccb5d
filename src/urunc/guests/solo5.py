"""Solo5: the tender's own flags name devices the unikernel declared; the arguments pass exactly.

A Solo5 unikernel runs under its tender (``solo5-hvt`` or ``solo5-spt``):
``TENDER --mem=MB --net:NAME=TAP --net-mac:NAME=MAC --block:NAME=PATH --
KERNEL ARG...``. Device names are those of the ELF manifest the unikernel
carries (read at create: the NET_BASIC device gets the tap, the BLOCK_BASIC
one the disk); ``com.urunc.unikernel.netDevice`` / ``blockDevice`` override.
The arguments after the kernel are the container's, each one argv element,
nothing added: Solo5 is a base many unikernels use, and only MirageOS reads
network flags (``guests/mirage.py`` adds them).

A container has one network (eth0) and one block annotation, and the tender
refuses to start unless every device the manifest declares is attached; so a
manifest declaring a second NET_BASIC or BLOCK_BASIC device, or a block device
without the block annotation, is refused at create, naming the device, rather
than left for the tender to refuse at start.
"""

from __future__ import annotations

from urunc import _errors
from urunc.guests import Guest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.guests.solo5_manifest import Manifest
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


MAX_NAME = 67   # Solo5's MFT_NAME_SIZE (68) less the terminating NUL
_ANNOTATIONS = {"net": "netDevice", "block": "blockDevice"}


def check_name(kind: str, name: str) -> str:
    """A device name from an annotation, as Solo5 accepts it: it reaches ``--net:NAME=``."""
    if not (0 < len(name) <= MAX_NAME and name.isascii() and name.isalnum()):
        raise _errors.BundleError(
            f"invalid {_ANNOTATIONS[kind]} {name!r} (solo5 device names are 1-{MAX_NAME} letters and digits)")
    return name


def _unattachable(manifest: Manifest, devices: dict[str, str], has_block: bool, kernel: str) -> None:
    """Refuse at create what the tender would refuse at start: a declared device left unattached.

    The net device counts as attached (CNI adds eth0 only after create); the
    block device only with a block annotation.
    """
    for kind, manifest_kind in (("net", "NET_BASIC"), ("block", "BLOCK_BASIC")):
        declared = [d.name for d in manifest.devices if d.kind == manifest_kind]
        chosen = devices.get(kind) if kind == "net" or has_block else None
        if chosen and chosen not in declared:
            raise _errors.PlanError(f"{_ANNOTATIONS[kind]} {chosen!r} is not a {manifest_kind} device "
                                    f"of {kernel} (it declares {', '.join(declared) or 'none'})")
        for name in declared:
            if name == chosen:
                continue
            if chosen:
                raise _errors.PlanError(
                    f"{kernel} declares a second {manifest_kind} device {name!r}; urunc attaches one "
                    f"({chosen}) and the tender refuses to start with a declared device unattached")
            raise _errors.PlanError(f"{kernel} declares the block device {name!r}, which needs "
                                    "com.urunc.unikernel.block (a disk image in the rootfs)")


def resolve_devices(plan: Plan, guest: str) -> Plan:
    """Fill the Plan's device names from the kernel's Solo5 manifest where no annotation set them,
    and refuse a manifest whose devices one container cannot all attach."""
    devices = {kind: check_name(kind, name) for kind, name in plan.devices.items()}
    needs_block = bool(plan.block) and "block" not in devices
    from urunc.guests import solo5_manifest

    manifest = solo5_manifest.read(plan.kernel)
    if manifest is None:
        if "net" in devices and not needs_block:
            return plan.replace(devices=devices)
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
    _unattachable(manifest, devices, bool(plan.block), plan.kernel)
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
        return list(plan.args)


GUEST = Solo5()
