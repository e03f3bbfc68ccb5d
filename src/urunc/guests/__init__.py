"""One module per guest type; each declares what it can use and speaks its own command line.

A guest knows its command-line dialect, the monitors it runs on, the storage
it takes, and what it needs of the machine (a PC or a minimal one, an exit
port, ...) in terms no monitor owns: each monitor maps those to its own
flags or config. The support matrix is derived from these declarations,
never written out by hand.
"""

from __future__ import annotations

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan

_MODULES = {
    "unikraft": "urunc.guests.unikraft",
    "solo5": "urunc.guests.solo5",
    "mirage": "urunc.guests.mirage",
    "rumprun": "urunc.guests.rumprun",
    "osv": "urunc.guests.osv",
    "mewz": "urunc.guests.mewz",
    "linux": "urunc.guests.linux",
}


class Guest:
    name = ""
    monitors: frozenset[str] = frozenset()
    default_monitor = "qemu"
    storage: frozenset[str] = frozenset()   # "initrd", "block", "sharedfs"
    network = True
    share_rootfs_from = 0                   # rootfs bytes from which it is shared by default; 0: never
    exec_ports = 0                          # host <-> guest exec channels it serves (linux_exec.py)
    default_memory_mib = 64
    # What the guest needs of the machine, in no monitor's terms (each monitor maps them):
    platform = "pc"                         # "pc": a PC (BIOS memory map, PCI); "minimal": PVH, virtio-mmio
    exit_port: tuple[int, int] | None = None  # (I/O port, size) it writes its exit status to
    panic_exits = False                     # a guest kernel panic must end the VM as a failure
    virtio_modern_only = False              # its virtio drivers speak only virtio 1.0
    cmdline_program_name = False            # its first command-line word is a program name it skips
    templates = False                       # it can start from a booted template (urunc/templates.py)
    template_ready = b""                    # the console line that says a template VM waits for its job

    def default_kernel(self) -> str | None:
        """A host kernel for images that carry none (Linux guests); None: the image must."""
        return None

    def prepare(self, plan: Plan) -> Plan:
        """Pure create-time checks and additions to the Plan (no side effect)."""
        return plan

    def write_files(self, plan: Plan) -> Plan:
        """Create-time files in the state dir (it exists by now); returns the Plan naming them."""
        return plan

    def cmdline(self, plan: Plan, net: NetInfo | None) -> str:
        """The kernel command line, one string (QEMU -append, Firecracker boot_args)."""
        raise NotImplementedError

    def start_files(self, plan: Plan, net: NetInfo | None) -> None:
        """Start-time work on files prepared at create, once the network is known."""

    def template_files(self, plan: Plan) -> list[str]:
        """Host files a template of this guest depends on, besides the kernel (its key hashes them)."""
        raise NotImplementedError

    def template_rootfs(self, plan: Plan) -> str:
        """A digest of the container's files when the template holds them ("" when it does not)."""
        return ""

    def write_template_boot(self, plan: Plan) -> Plan:
        """Files that boot a template VM into the state of waiting for its job, in plan.state_dir."""
        raise NotImplementedError

    def before_exec(self, plan: Plan) -> None:
        """The last moment before the monitor runs (as root, in the container's namespaces)."""

    def tender_args(self, plan: Plan, net: NetInfo | None) -> list[str]:
        """Arguments after the kernel path, each its own argv element (Solo5 tenders)."""
        raise NotImplementedError


def names() -> list[str]:
    return sorted(_MODULES)


def matrix() -> list[tuple[str, str]]:
    """Every supported (guest type, monitor) pair, derived from the guests' declarations."""
    from urunc import monitors

    known = set(monitors.names())
    return sorted((name, monitor) for name in _MODULES for monitor in get(name).monitors
                  if monitor in known)


def get(name: str) -> Guest:
    module_name = _MODULES.get(name)
    if module_name is None:
        raise _errors.PlanError(f"unknown guest type {name!r}", hint=f"known: {', '.join(names())}")
    module = __import__(module_name, fromlist=["GUEST"])
    guest: Guest = module.GUEST
    return guest
