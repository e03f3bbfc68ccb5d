"""Firecracker: ``firecracker --no-api --config-file FILE``, FILE written into the state dir.

The JSON config holds ``boot-source`` (kernel, ``boot_args`` = the guest's
command line, initrd), ``machine-config``, ``drives`` and
``network-interfaces``; it is written at start, when the tap exists, as
``<state dir>/firecracker.json`` (write, fsync, rename). Firecracker keeps its
own seccomp filters on. It needs KVM.
"""

from __future__ import annotations

import os

from urunc import _errors, _jsonlite
from urunc._files import write_atomic
from urunc.monitors import Monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.config import Config
    from urunc.guests import Guest
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan

CONFIG_NAME = "firecracker.json"


class Firecracker(Monitor):
    name = "firecracker"
    binary = "firecracker"
    storage = frozenset({"initrd", "block"})

    def choose_accel(self, cfg: Config) -> str:
        return self.require_kvm()

    def config(self, plan: Plan, guest: Guest, net: NetInfo | None) -> dict[str, Any]:
        boot_args = guest.cmdline(plan, net)
        if guest.cmdline_program_name:
            # QEMU's multiboot loader puts the kernel's path first and the guest skips that
            # word; Firecracker passes boot_args alone, so the skipped word is ours to give.
            boot_args = f"unikernel {boot_args}" if boot_args else "unikernel"
        boot: dict[str, Any] = {"kernel_image_path": plan.kernel, "boot_args": boot_args}
        initrd = plan.files.get("initrd") or plan.initrd
        if initrd:
            boot["initrd_path"] = initrd
        drives = []
        block = plan.files.get("block") or plan.block
        if block:
            drives.append({"drive_id": "d0", "path_on_host": block,
                           "is_root_device": False, "is_read_only": False})
        interfaces = []
        if net is not None:
            interfaces.append({"iface_id": "eth0", "host_dev_name": net.tap, "guest_mac": net.mac})
        return {
            "boot-source": boot,
            "machine-config": {"vcpu_count": plan.vcpus, "mem_size_mib": plan.memory_mib, "smt": False},
            "drives": drives,
            "network-interfaces": interfaces,
        }

    def argv(self, plan: Plan, guest: Guest, net: NetInfo | None) -> list[str]:
        path = os.path.join(plan.state_dir, CONFIG_NAME)
        data = (_jsonlite.dumps(self.config(plan, guest, net), indent=2) + "\n").encode()
        try:
            write_atomic(path, data, tmp=path + ".tmp")
        except OSError as exc:
            raise _errors.HostError(f"cannot write firecracker config {path}: {exc.strerror}") from None
        return [plan.monitor_path, "--no-api", "--config-file", path]


MONITOR = Firecracker()
