"""MirageOS on Solo5: a Solo5 unikernel that also reads its network from the command line.

MirageOS takes ``--ipv4=IP/PREFIX --ipv4-gateway=GW`` before the
application's own arguments; a network device other than ``service`` is
addressed as ``--NAME-ipv4=`` (MirageOS prefixes the keys of every
non-default network with its name). Everything else is Solo5's.
"""

from __future__ import annotations

from urunc.guests.solo5 import Solo5

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


class Mirage(Solo5):
    name = "mirage"

    def tender_args(self, plan: Plan, net: NetInfo | None) -> list[str]:
        args: list[str] = []
        device = plan.devices.get("net")
        if net is not None and device:
            prefix = "--" if device == "service" else f"--{device}-"
            args += [f"{prefix}ipv4={net.cidr}", f"{prefix}ipv4-gateway={net.gateway}"]
        return args + list(plan.args)


GUEST = Mirage()
