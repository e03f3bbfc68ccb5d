"""solo5-hvt: the Solo5 tender on KVM; flags, ``--``, the kernel, then the guest's own args.

``solo5-hvt --mem=MB [--net:NAME=TAP --net-mac:NAME=MAC] [--block:NAME=PATH]
-- KERNEL [ARG...]``, each its own argv element. Device names come from the
Plan (the unikernel's manifest, or an annotation). The tender's exit status
is the unikernel's.
"""

from __future__ import annotations

from urunc.monitors import Monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.config import Config
    from urunc.guests import Guest
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


class Solo5Tender(Monitor):
    storage = frozenset({"block"})

    def argv(self, plan: Plan, guest: Guest, net: NetInfo | None) -> list[str]:
        argv = [plan.monitor_path, f"--mem={plan.memory_mib}"]
        net_device = plan.devices.get("net")
        if net is not None and net_device:
            # A tender that is not root gets the tap as the fd the init opened (Solo5's @FD form).
            tap = f"@{plan.files['tap_fd']}" if plan.files.get("tap_fd") else net.tap
            argv += [f"--net:{net_device}={tap}", f"--net-mac:{net_device}={net.mac}"]
        block = plan.files.get("block") or plan.block
        if block:
            argv.append(f"--block:{plan.devices['block']}={block}")
        return argv + ["--", plan.kernel] + guest.tender_args(plan, net)


class Hvt(Solo5Tender):
    name = "hvt"
    binary = "solo5-hvt"

    def choose_accel(self, cfg: Config) -> str:
        return self.require_kvm()

    def confine(self) -> None:
        """solo5-hvt has no sandbox of its own (spt confines itself, QEMU has -sandbox)."""
        from urunc.host import seccomp

        seccomp.install(seccomp.hvt_filter())


MONITOR = Hvt()
