"""One module per virtual machine monitor; each builds its argv element by element."""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.config import Config
    from urunc.guests import Guest
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan

_MODULES = {
    "qemu": "urunc.monitors.qemu",
    "firecracker": "urunc.monitors.firecracker",
    "hvt": "urunc.monitors.hvt",
    "spt": "urunc.monitors.spt",
}
# Other spellings of com.urunc.unikernel.hypervisor: the design document's names for the Solo5
# tenders (the Go urunc's are the canonical hvt and spt). A Plan always holds the canonical name.
ALIASES = {"solo5-hvt": "hvt", "solo5-spt": "spt"}


class Monitor:
    name = ""
    binary = ""
    storage: frozenset[str] = frozenset({"initrd", "block"})
    channel = False  # serial ports for a host <-> guest channel (a Linux guest's exec)
    fd_sets = False  # takes a disk as an inherited fd (one its user could not open)
    snapshots = False  # restores a VM from a template's memory file and device state

    def find_binary(self, cfg: Config) -> str:
        """The monitor binary: config.toml's ``path``, else PATH; missing fails at create."""
        configured = cfg.monitor_str(self.name, "path", None)
        if configured:
            if os.access(configured, os.X_OK) and os.path.isfile(configured):
                return configured
            raise _errors.PlanError(f"monitor binary {configured} for {self.name} is not executable")
        for directory in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
            candidate = os.path.join(directory or ".", self.binary)
            if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
                return candidate
        raise _errors.PlanError(f"monitor binary {self.binary} for {self.name} not found on PATH",
                                hint="install it or set path under [monitors." + self.name + "]")

    def choose_accel(self, cfg: Config) -> str:
        return ""

    def require_kvm(self) -> str:
        """For monitors that only run on KVM: fail at create when /dev/kvm is unusable."""
        if not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise _errors.PlanError(f"monitor {self.name} needs kvm but /dev/kvm is not usable")
        return "kvm"

    def argv(self, plan: Plan, guest: Guest, net: NetInfo | None) -> list[str]:
        raise NotImplementedError

    def hand_over(self, plan: Plan) -> tuple[Plan, list[int]]:
        """As root, at start, in the container's namespaces: descriptors the monitor inherits
        (sockets it could not bind itself), and the Plan naming them in ``files``."""
        return plan, []

    def snapshot(self, plan: Plan, guest: Guest, net: NetInfo | None, out: str) -> None:
        """Boot a template VM (``snapshots``), wait until its guest says it is ready, write the
        devices' state to OUT (the memory stays in the template's memory file)."""
        raise NotImplementedError

    def pause_vm(self, state_dir: str) -> bool:
        """Stop the running VM's vCPUs by the monitor's own means; False: it has none (the
        cgroup freezer does it)."""
        return False

    def resume_vm(self, state_dir: str) -> None:
        """Let a VM that ``pause_vm`` stopped go on."""

    def confine(self) -> None:
        """Right before ``execve``, after the identity is dropped: a sandbox the monitor lacks."""


def names() -> list[str]:
    return sorted(_MODULES)


def get(name: str) -> Monitor:
    module_name = _MODULES.get(ALIASES.get(name, name))
    if module_name is None:
        raise _errors.PlanError(f"unknown monitor {name!r}",
                                hint=f"known: {', '.join(sorted([*_MODULES, *ALIASES]))}")
    module = __import__(module_name, fromlist=["MONITOR"])
    monitor: Monitor = module.MONITOR
    return monitor
