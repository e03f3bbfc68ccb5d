"""Spec + UnikernelConfig + config.toml + host facts → one frozen Plan.

Everything that can be decided before the guest runs is decided here, once,
at ``create``; ``start`` reads the Plan back from the state and only adds what
exists at that moment (the network CNI set up in between).
"""

from __future__ import annotations

import os

from urunc import _errors
from urunc._record import Record
from urunc.unikernel import rootfs as _rootfs

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.config import Config
    from urunc.oci.spec import Spec
    from urunc.unikernel.config import UnikernelConfig

MIB = 1024 * 1024
MIN_MEMORY_MIB = 8
MAX_MEMORY_MIB = 1024 * 1024
MAX_VCPUS = 256
MAX_KERNEL_BYTES = 1024 * MIB
MAX_ARGS = 4096
MAX_ARG_BYTES = 32 * 4096  # MAX_ARG_STRLEN: one execve argument, its NUL included
MAX_EXEC_BYTES = 1024 * 1024  # all of them: half of ARG_MAX under the default 8 MiB stack limit
EXEC_HEADROOM = 4096


class Plan(Record):
    __slots__ = (
        "container_id", "bundle", "rootfs", "state_dir",
        "guest", "monitor", "monitor_path", "accel",
        "kernel", "initrd", "block", "block_mountpoint", "version",
        "memory_mib", "vcpus",
        "args", "env", "cwd", "hostname",
        "netns", "uid", "gid", "additional_gids", "seccomp", "terminal",
        "files", "devices", "mounts", "exec_ports", "template", "template_limit_mib",
    )
    # Field types, for the type checker only (annotations create no class attributes).
    container_id: str
    bundle: str
    rootfs: str
    state_dir: str
    guest: str
    monitor: str
    monitor_path: str
    accel: str
    kernel: str
    initrd: str
    block: str
    block_mountpoint: str
    version: str
    memory_mib: int
    vcpus: int
    args: tuple[str, ...]
    env: tuple[str, ...]
    cwd: str
    hostname: str
    netns: str
    uid: int
    gid: int
    additional_gids: tuple[int, ...]
    seccomp: bool
    terminal: bool
    files: dict[str, str]
    devices: dict[str, str]
    mounts: tuple[tuple[Any, ...], ...]  # unikernel/mounts.py: (kind, source, destination, readonly, options)
    exec_ports: int  # exec channels the guest serves and the monitor carries (guests/linux_exec.py)
    template: str  # the templates directory when the guest may start from one, else ""
    template_limit_mib: int


def memory_mib(limit_bytes: int | None, default_mib: int) -> int:
    """Guest memory from the cgroup limit: whole MiB, rounded down (the limit is a ceiling)."""
    if limit_bytes is None:
        return default_mib
    mib = limit_bytes // MIB
    if mib < MIN_MEMORY_MIB:
        raise _errors.PlanError(
            f"memory limit {limit_bytes} bytes is below the {MIN_MEMORY_MIB} MiB a guest needs")
    return min(mib, MAX_MEMORY_MIB)


def vcpus(quota: int | None, period: int | None, cpuset: str, default: int) -> int:
    """vCPUs from the CPU quota (rounded up), else the cpuset's size, else the default; at least 1."""
    if quota is not None and quota > 0 and period:
        return max(1, min(MAX_VCPUS, -(-quota // period)))
    if cpuset:
        count = 0
        for part in cpuset.split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            try:
                count += (int(hi) - int(lo) + 1) if hi else 1
            except ValueError:
                raise _errors.PlanError(f"invalid cpuset {cpuset!r}") from None
        return max(1, min(MAX_VCPUS, count))
    return max(1, default)


def _split_cmdline(text: str) -> tuple[str, ...]:
    import shlex

    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise _errors.BundleError(f"invalid cmdline annotation {text!r}: {exc}") from None


def build(container_id: str, spec: Spec, ucfg: UnikernelConfig, cfg: Config, state_dir: str) -> Plan:
    from urunc import guests, monitors

    guest = guests.get(ucfg.get("unikernelType"))
    monitor_name = ucfg.get("hypervisor") or guest.default_monitor
    monitor = monitors.get(monitor_name)
    if monitor.name not in guest.monitors:
        raise _errors.PlanError(
            f"guest type {guest.name} does not run on monitor {monitor.name}",
            hint=f"{guest.name} runs on {', '.join(sorted(guest.monitors))}")
    monitor_path = monitor.find_binary(cfg)

    binary = ucfg.get("binary")
    if not os.path.isdir(spec.rootfs):
        raise _errors.BundleError(f"rootfs {spec.rootfs} is not a directory")
    if binary:
        kernel = _rootfs.regular_file(spec.rootfs, binary, "kernel", MAX_KERNEL_BYTES)
    else:
        # Linux guests may boot the host's kernel: an ordinary image carries none.
        host_kernel = guest.default_kernel()
        if host_kernel is None:
            raise _errors.BundleError("missing com.urunc.unikernel.binary (the kernel path in the rootfs)")
        kernel = host_kernel

    initrd = ""
    if ucfg.get("initrd"):
        if "initrd" not in guest.storage:
            raise _errors.PlanError(f"guest type {guest.name} takes no initrd")
        initrd = _rootfs.regular_file(spec.rootfs, ucfg.get("initrd"), "initrd", MAX_KERNEL_BYTES)
    block = ""
    if ucfg.get("block"):
        if "block" not in guest.storage or "block" not in monitor.storage:
            raise _errors.PlanError(f"guest type {guest.name} on {monitor.name} takes no block device")
        block = _rootfs.regular_file(spec.rootfs, ucfg.get("block"), "block")
    mountpoint = ucfg.get("blkMntPoint")
    if mountpoint and not mountpoint.startswith("/"):
        raise _errors.BundleError(f"blkMntPoint {mountpoint!r} must be an absolute path")

    args = spec.args or _split_cmdline(ucfg.get("cmdline"))
    if len(args) > MAX_ARGS or len(spec.env) > MAX_ARGS:
        raise _errors.BundleError(f"more than {MAX_ARGS} arguments or environment variables")
    mem = memory_mib(spec.memory_limit,
                     cfg.monitor_int(monitor.name, "default_memory_mb", guest.default_memory_mib,
                                     MIN_MEMORY_MIB, MAX_MEMORY_MIB))
    cpus = vcpus(spec.cpu_quota, spec.cpu_period, spec.cpuset,
                 cfg.monitor_int(monitor.name, "default_vcpus", 1, 1, MAX_VCPUS))
    netns = spec.namespace_path("network")
    from urunc.unikernel import mounts as _mounts

    shared = "sharedfs" in guest.storage and "sharedfs" in monitor.storage
    volumes = _mounts.for_guest(spec.raw.get("mounts"), guest.name, shared, "files" in guest.storage,
                                "tmpfs" in guest.storage, monitor.name)
    wanted = ucfg.get("mountRootfs").strip().lower()
    if wanted not in ("", "true", "1", "yes", "false", "0", "no"):
        raise _errors.BundleError(f"invalid mountRootfs {wanted!r} (true or false)")
    if wanted in ("true", "1", "yes"):
        if not shared:
            raise _errors.PlanError(f"mountRootfs: {guest.name} on {monitor.name} has no shared filesystem")
        if block:
            raise _errors.PlanError("mountRootfs and block both name the guest's root: give one")
        share_root = True
    else:  # unset: by size, where the guest shares large roots (a Linux guest)
        share_root = bool(wanted == "" and shared and not block and guest.share_rootfs_from
                          and _mounts.rootfs_larger_than(spec.rootfs, guest.share_rootfs_from))
    if share_root:
        volumes = (_mounts.root_share(spec.rootfs, spec.root_readonly), *volumes)
    templates_on, template_dir, limit = cfg.templates()
    plan = Plan(
        container_id=container_id, bundle=spec.bundle, rootfs=spec.rootfs, state_dir=state_dir,
        guest=guest.name, monitor=monitor.name, monitor_path=monitor_path,
        accel=monitor.choose_accel(cfg),
        kernel=kernel, initrd=initrd, block=block, block_mountpoint=mountpoint,
        version=ucfg.get("unikernelVersion"),
        memory_mib=mem, vcpus=cpus,
        args=tuple(args), env=spec.env, cwd=spec.cwd, hostname=spec.hostname,
        netns="none" if netns is None else netns,
        uid=spec.uid, gid=spec.gid, additional_gids=spec.additional_gids,
        seccomp=spec.has_seccomp, terminal=spec.terminal, files={},
        devices={kind: name for kind, name in (("net", ucfg.get("netDevice")),
                                               ("block", ucfg.get("blockDevice"))) if name},
        mounts=volumes,
        exec_ports=guest.exec_ports if monitor.channel else 0,
        template=template_dir if templates_on and guest.templates and monitor.snapshots else "",
        template_limit_mib=limit,
    )
    plan = guest.prepare(plan)
    check_exec_size(plan, guest)
    return plan


def check_exec_size(plan: Plan, guest: Any) -> None:
    """Refuse at create what execve(2) would refuse at start (E2BIG): a monitor argument
    longer than MAX_ARG_STRLEN, or all of them longer than ARG_MAX allows.

    process.args and process.env reach the monitor's argv through the guest: joined
    into its command line (one argument: QEMU's -append) or one argument each (a Solo5
    tender's). Both are pure functions of the Plan (the monitor's argv may write files:
    Firecracker's config); what start adds (the network's parameters) is left room for.
    """
    pieces: list[str] = []
    for part in (lambda: [guest.cmdline(plan, None)], lambda: guest.tender_args(plan, None)):
        try:
            pieces += part()
        except NotImplementedError:
            pass
    limit = MAX_ARG_BYTES - EXEC_HEADROOM
    for piece in pieces:
        size = len(piece.encode(errors="surrogateescape")) + 1
        if size <= limit:
            continue
        if piece in plan.args or piece in plan.env:
            where = "process.args" if piece in plan.args else "process.env"
            raise _errors.BundleError(f"{where} element {piece[:40]!r}... is {size} bytes, more than "
                                      f"the {limit} one {plan.monitor} argument can take")
        raise _errors.BundleError(f"process.args and process.env make a guest command line of {size} bytes, "
                                  f"more than the {limit} one {plan.monitor} argument can take")
    total = sum(len(p.encode(errors="surrogateescape")) + 1 + 8 for p in pieces)
    if total > MAX_EXEC_BYTES:
        raise _errors.BundleError(f"process.args and process.env make {total} bytes of {plan.monitor} "
                                  f"arguments, more than the {MAX_EXEC_BYTES} an execve can take")
