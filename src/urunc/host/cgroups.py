"""The container's cgroup: created at ``create``, joined by the init, removed at ``delete``.

The monitor *is* the container's process, so its cgroup holds the whole VM:
``ctr task metrics`` reads the monitor's usage from it. Two layouts:

    v1 (one hierarchy per controller, /sys/fs/cgroup/<ctrl>/<path>)
    v2 (one unified hierarchy,          /sys/fs/cgroup/<path>)

chosen from the cgroup mounts (a hybrid host, v1 controllers plus an empty
cgroup2 at /sys/fs/cgroup/unified, counts as v1). The path is the spec's
``linux.cgroupsPath``: absolute from the hierarchy's root, relative to
urunc's own cgroup (runc's fs driver), or, with ``--systemd-cgroup``,
``slice:prefix:name`` mapped to ``<slice path>/<prefix>-<name>.scope`` the way
runc's fs driver lays it out (no systemd is asked).

Memory is sized for the VM, not the spec: guest RAM plus the monitor's own
overhead (``memory_limit_bytes``), since the guest RAM itself already
derives from the spec's limit.
"""

from __future__ import annotations

import errno
import os
import time

from urunc import _errors
from urunc.host import resources

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.oci.spec import Spec
    from urunc.unikernel.plan import Plan

MIB = 1024 * 1024
# QEMU's own RSS is ~28 MiB here (binary, libraries, SeaBIOS, device state); the TCG
# translation cache grows with the guest's code (tens of MiB for a Linux guest); per
# guest MiB come page tables, dirty bitmaps and memslot bookkeeping (well under 1%).
OVERHEAD_BASE_MIB = 64
OVERHEAD_PERCENT = 5
# QEMU: main loop, RCU, one thread per vCPU, up to 64 thread-pool workers; twice that.
DEFAULT_PIDS_BASE = 256
MAX_PATH_DEPTH = 64
CGROUP_ROOT = "/sys/fs/cgroup"
_V2_CONTROLLERS = ("cpuset", "cpu", "io", "memory", "pids")


def memory_limit_bytes(guest_mib: int) -> int:
    """Guest RAM + 64 MiB + 5% of guest RAM, in bytes."""
    overhead = OVERHEAD_BASE_MIB + -(-guest_mib * OVERHEAD_PERCENT // 100)
    return (guest_mib + overhead) * MIB


def default_pids_limit(vcpus: int) -> int:
    return DEFAULT_PIDS_BASE + vcpus


# -- the host's layout --------------------------------------------------------------------------
def read_mounts(mounts_text: str, cgroups_text: str) -> tuple[int, dict[str, str]]:
    """(version, {controller: mount point}) from /proc/self/mounts and /proc/cgroups text.

    v2 when a cgroup2 filesystem is mounted and no v1 hierarchy carries a
    controller; its single mount point is under the key "".
    """
    known = set()
    for line in cgroups_text.splitlines():
        fields = line.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 4 and fields[3] == "1":
            known.add(fields[0])
    v1: dict[str, str] = {}
    unified = ""
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        point = fields[1].replace("\\040", " ")
        if fields[2] == "cgroup2" and (not unified or point == CGROUP_ROOT):
            unified = point
        elif fields[2] == "cgroup":
            for option in fields[3].split(","):
                if option in known and option not in v1:
                    v1[option] = point
    if v1:
        return 1, v1
    if unified:
        return 2, {"": unified}
    raise _errors.HostError("no cgroup filesystem is mounted")


def host_layout() -> tuple[int, dict[str, str]]:
    try:
        with open("/proc/self/mounts") as f:
            mounts = f.read()
        with open("/proc/cgroups") as f:
            cgroups = f.read()
    except OSError as exc:
        raise _errors.HostError(f"cannot read the cgroup mounts: {exc.strerror}") from None
    return read_mounts(mounts, cgroups)


def own_cgroups(text: str) -> dict[str, str]:
    """{controller: path} from /proc/self/cgroup text; v2's line is under ""."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and not parts[1]:
            own[""] = parts[2]
        for controller in parts[1].split(","):
            if controller:
                own[controller] = parts[2]
    return own


# -- the container's path -----------------------------------------------------------------------
def _clean(path: str, what: str) -> str:
    if "\0" in path or "\n" in path:
        raise _errors.BundleError(f"invalid {what} {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts or len(parts) > MAX_PATH_DEPTH or any(len(p) > 255 for p in parts):
        raise _errors.BundleError(f"invalid {what} {path!r}")
    return "/".join(parts)


def systemd_path(value: str) -> str:
    """``slice:prefix:name`` → ``/<slice path>/<prefix>-<name>.scope`` (runc's fs layout).

    A slice ``a-b-c.slice`` nests as ``a.slice/a-b.slice/a-b-c.slice``; an empty
    slice means ``system.slice``.
    """
    parts = value.split(":")
    if len(parts) != 3 or not parts[2]:
        raise _errors.BundleError(f"invalid systemd cgroupsPath {value!r} (want slice:prefix:name)")
    slice_name, prefix, name = parts
    if "/" in value:
        raise _errors.BundleError(f"invalid systemd cgroupsPath {value!r}")
    slice_name = slice_name or "system.slice"
    if not slice_name.endswith(".slice"):
        raise _errors.BundleError(f"invalid systemd slice {slice_name!r}")
    segments: list[str] = []
    if slice_name != "-.slice":
        stem = slice_name[: -len(".slice")]
        words = stem.split("-")
        if not stem or any(not w for w in words):
            raise _errors.BundleError(f"invalid systemd slice {slice_name!r}")
        for i in range(1, len(words) + 1):
            segments.append("-".join(words[:i]) + ".slice")
    unit = name if name.endswith(".slice") else (f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
    return "/" + "/".join([*segments, _clean(unit, "systemd cgroupsPath")])


def container_path(cgroups_path: str, container_id: str, systemd: bool) -> str:
    """The spec's path, normalised: "/x/y" (from the root) or "x/y" (below urunc's own)."""
    if systemd:
        return systemd_path(cgroups_path or f"system.slice:urunc:{container_id}")
    if not cgroups_path:
        return container_id
    cleaned = _clean(cgroups_path, "linux.cgroupsPath")
    if not cleaned:
        raise _errors.BundleError(f"invalid linux.cgroupsPath {cgroups_path!r} (the root cgroup)")
    return "/" + cleaned if cgroups_path.startswith("/") else cleaned


def host_dirs(version: int, mounts: dict[str, str], own: dict[str, str], path: str) -> dict[str, str]:
    """{controller: directory} of the container's cgroup in each hierarchy."""
    dirs: dict[str, str] = {}
    for controller, point in mounts.items():
        if path.startswith("/"):
            inner = path.lstrip("/")
        else:
            inner = os.path.join(own.get(controller, "/").lstrip("/"), path)
        directory = os.path.join(point, inner)
        if directory not in dirs.values():
            dirs[controller] = directory
    return dirs


# -- limits --------------------------------------------------------------------------------------
def _resources(spec: Spec) -> dict[str, Any]:
    linux = spec.raw.get("linux")
    resources = linux.get("resources") if isinstance(linux, dict) else None
    return resources if isinstance(resources, dict) else {}


def pids_limit(spec: Spec, vcpus: int) -> int:
    pids = _resources(spec).get("pids")
    limit = pids.get("limit") if isinstance(pids, dict) else None
    if limit is None or (isinstance(limit, int) and not isinstance(limit, bool) and limit <= 0):
        return default_pids_limit(vcpus)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit > 4 * 1024 * 1024:
        raise _errors.BundleError(f"invalid linux.resources.pids.limit {limit!r} in config.json")
    return int(limit)


def _shares(spec: Spec) -> int | None:
    cpu = _resources(spec).get("cpu")
    shares = cpu.get("shares") if isinstance(cpu, dict) else None
    if shares is None or shares == 0:
        return None
    if isinstance(shares, bool) or not isinstance(shares, int) or not 2 <= shares <= 262144:
        raise _errors.BundleError(f"invalid linux.resources.cpu.shares {shares!r} in config.json")
    return int(shares)


def _cpuset(value: str, what: str) -> str:
    if value and not set(value) <= set("0123456789,- "):
        raise _errors.BundleError(f"invalid {what} {value!r} in config.json")
    return value.replace(" ", "")


def limits(spec: Spec, plan: Plan, version: int) -> dict[str, dict[str, str]]:
    """{controller: {file: value}} in the order they must be written."""
    cpu = _resources(spec).get("cpu")
    mems = cpu.get("mems") if isinstance(cpu, dict) else None
    if mems is not None and not isinstance(mems, str):
        raise _errors.BundleError(f"invalid linux.resources.cpu.mems {mems!r} in config.json")
    mems = _cpuset(mems or "", "linux.resources.cpu.mems")
    cpus = _cpuset(spec.cpuset, "linux.resources.cpu.cpus")
    memory = memory_limit_bytes(plan.memory_mib)
    quota = spec.cpu_quota if spec.cpu_quota is not None and spec.cpu_quota > 0 else None
    period = spec.cpu_period or 100000
    if not 1000 <= period <= 1000000:
        raise _errors.BundleError(f"invalid linux.resources.cpu.period {period} in config.json")
    if quota is not None and quota < 1000:
        raise _errors.BundleError(f"invalid linux.resources.cpu.quota {quota} in config.json")
    shares = _shares(spec)
    pids = pids_limit(spec, plan.vcpus)
    out: dict[str, dict[str, str]] = {}
    if version == 1:
        out["memory"] = {"memory.limit_in_bytes": str(memory)}
        cpu_files = {"cpu.cfs_period_us": str(period)}
        if quota is not None:
            cpu_files["cpu.cfs_quota_us"] = str(quota)
        if shares is not None:
            cpu_files["cpu.shares"] = str(shares)
        out["cpu"] = cpu_files
        out["pids"] = {"pids.max": str(pids)}
        cpuset_files = {}
        if cpus:
            cpuset_files["cpuset.cpus"] = cpus
        if mems:
            cpuset_files["cpuset.mems"] = mems
        out["cpuset"] = cpuset_files
    else:
        files = {"memory.max": str(memory), "cpu.max": f"{quota if quota is not None else 'max'} {period}",
                 "pids.max": str(pids)}
        if shares is not None:
            files["cpu.weight"] = str(1 + ((shares - 2) * 9999) // 262142)
        if cpus:
            files["cpuset.cpus"] = cpus
        if mems:
            files["cpuset.mems"] = mems
        out[""] = files
    return out


# -- side effects --------------------------------------------------------------------------------
def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise _errors.HostError(f"cannot write {value!r} to {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _missing(directory: str, root: str) -> list[str]:
    """DIRECTORY and its ancestors below ROOT that do not exist yet, outermost first."""
    missing = []
    d = directory
    while d != root and len(d) > len(root) and not os.path.isdir(d):
        missing.append(d)
        d = os.path.dirname(d)
    return missing[::-1]


def setup(state_dir: str, container_id: str, spec: Spec, plan: Plan, systemd: bool,
          root: str = CGROUP_ROOT, layout: tuple[int, dict[str, str]] | None = None,
          own_text: str | None = None) -> list[str]:
    """Create the container's cgroup with its limits; return the files the init writes to join.

    v1: each hierarchy's ``tasks`` (see ``join``); v2: ``cgroup.procs``.

    Every directory created is recorded in resources.json before it is made,
    so ``delete`` (or a failed create) removes exactly those, deepest first;
    a cgroup that existed before is joined and limited but never removed.
    """
    path = container_path(spec.cgroups_path, container_id, systemd)
    version, mounts = layout if layout is not None else host_layout()
    if own_text is None:
        with open("/proc/self/cgroup") as f:
            own_text = f.read()
    dirs = host_dirs(version, mounts, own_cgroups(own_text), path)
    wanted = limits(spec, plan, version)
    created: list[str] = []
    points = {}
    for controller, directory in dirs.items():
        point = mounts[controller]
        points[directory] = point
        created += _missing(directory, point)
    if created:
        leaves = [d for d in dirs.values() if d in created]
        resources.record(state_dir, {"kind": "cgroup", "dirs": created, "leaves": leaves})
    for directory in created:
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _errors.HostError(f"cannot create cgroup {directory}: {exc.strerror}") from None
        if version == 1 and os.path.exists(os.path.join(directory, "cpuset.cpus")):
            # A new v1 cpuset is empty and refuses tasks until it has CPUs and memory nodes.
            parent = os.path.dirname(directory)
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(directory, name)):
                    _write(os.path.join(directory, name), _read(os.path.join(parent, name)))
    if version == 2:
        _enable_v2_controllers(mounts[""], dirs[""])
    procs = []
    for controller, directory in dirs.items():
        for name, value in wanted.get(controller, {}).items():
            target = os.path.join(directory, name)
            if os.path.exists(target):
                _write(target, value)
        procs.append(os.path.join(directory, "tasks" if version == 1 else "cgroup.procs"))
    return procs


def _enable_v2_controllers(point: str, directory: str) -> None:
    """Delegate our controllers down every level from the root to DIRECTORY's parent."""
    try:
        available = _read(os.path.join(point, "cgroup.controllers")).split()
    except OSError:
        return
    wanted = " ".join(f"+{c}" for c in _V2_CONTROLLERS if c in available)
    if not wanted:
        return
    level = point
    rel = os.path.relpath(os.path.dirname(directory), point)
    for part in ([] if rel == "." else rel.split("/")) + [""]:
        _write(os.path.join(level, "cgroup.subtree_control"), wanted)
        level = os.path.join(level, part)


def join(files: list[str]) -> None:
    """Move the calling process into the cgroup (in the init, before any unshare).

    "0" names the writer. Written to v1's ``tasks`` it moves only the calling
    thread, which for the single-threaded init (no thread of its own yet) is the whole
    process, and the kernel then skips the global threadgroup lock whose RCU
    grace period makes a ``cgroup.procs`` write cost 6-15 ms here (0.3 ms
    this way). Must run before the init starts any thread.
    """
    for name in files:
        _write(name, "0")


def leave(files: list[str]) -> None:
    """Move the calling process from the cgroup it joined (FILES, as ``join`` took them)
    to the root of each hierarchy, where any process may go: a cgroup with a process in
    it cannot be removed."""
    for name in files:
        directory = os.path.dirname(name)
        while directory != "/" and not os.path.ismount(directory):
            directory = os.path.dirname(directory)
        _write(os.path.join(directory, os.path.basename(name)), "0")


def checked(resource: dict[str, Any], mount_points: list[str] | None = None) -> tuple[list[str], list[str]]:
    """The directories and leaves of a cgroup entry of resources.json, each checked to lie
    strictly below a cgroup mount (normalised, no ``..``): a damaged or forged entry never
    names another directory to remove or a process tree to kill."""
    dirs, leaves = resource.get("dirs"), resource.get("leaves") or []
    if (not isinstance(dirs, list) or not isinstance(leaves, list)
            or not all(isinstance(d, str) for d in dirs + leaves) or not set(leaves) <= set(dirs)):
        raise _errors.HostError("malformed cgroup entry in resources.json")
    if mount_points is None:
        mount_points = list(host_layout()[1].values())
    for directory in dirs:
        if ("\0" in directory or os.path.normpath(directory) != directory
                or not any(directory.startswith(point.rstrip("/") + "/") for point in mount_points)):
            raise _errors.HostError(f"refusing cgroup {directory!r:.200} in resources.json: "
                                    "not below a cgroup mount")
    return dirs, leaves


def kill_members(resource: dict[str, Any], timeout: float = 10.0) -> None:
    """SIGKILL every process left in the leaves this container created, and wait until they are gone.

    Only the container's init (then its monitor) ever joins them, so whatever is there is
    this container's: what finds the init when its record is too damaged to name it. A
    leaf with cgroups below it is no container's leaf and is refused.
    """
    import _signal  # type: ignore[import-not-found]  # not `signal`: its enum import costs ~7 ms
    import select

    _dirs, leaves = checked(resource)
    members = _members(leaves)
    if not members:
        return
    dying = select.poll()
    pidfds: list[int] = []
    waiting: set[int] = set()
    try:
        for pid in members:
            try:
                pidfd = os.pidfd_open(pid)
            except OSError:
                continue  # gone already
            pidfds.append(pidfd)
            try:
                # Still listed now that the pidfd pins which process PID is: a member, never
                # a process that took the number of one that exited meanwhile.
                if pid in _members(leaves):
                    _signal.pidfd_send_signal(pidfd, 9)
                    dying.register(pidfd, select.POLLIN)
                    waiting.add(pidfd)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout
        while waiting:  # a pidfd polls readable once its process has exited
            for fd, _ in dying.poll(max(1, int((deadline - time.monotonic()) * 1000))):
                dying.unregister(fd)
                waiting.discard(fd)
            if waiting and time.monotonic() > deadline:
                raise _errors.HostError(f"processes in cgroup {leaves[0]} did not die")
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


def _members(leaves: list[str]) -> set[int]:
    """The processes in LEAVES (but this one), as cgroup.procs lists them."""
    found: set[int] = set()
    for leaf in leaves:
        try:
            with os.scandir(leaf) as entries:
                if any(e.is_dir(follow_symlinks=False) for e in entries):
                    raise _errors.HostError(f"refusing to kill the processes of cgroup {leaf}: "
                                            "it has cgroups below it")
            with open(os.path.join(leaf, "cgroup.procs"), "rb") as f:
                pids = f.read(1 << 20).split()
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise _errors.HostError(f"cannot read cgroup {leaf}: {exc.strerror}") from None
        found.update(int(p) for p in pids if p.isdigit())
    found.discard(os.getpid())
    return found


def release(resource: dict[str, Any], mount_points: list[str] | None = None) -> None:
    """Remove the directories this container created, deepest first (see ``checked``).

    An ancestor shared with another container is left while not empty; a
    leaf may stay busy for a moment while the dead monitor is reaped.
    """
    dirs, leaf_list = checked(resource, mount_points)
    leaves = set(leaf_list)
    for directory in sorted(dirs, key=lambda d: -d.count("/")):
        deadline = time.monotonic() + 2.0
        while True:
            try:
                os.rmdir(directory)
            except FileNotFoundError:
                pass
            except OSError as exc:
                if exc.errno == errno.EBUSY and directory in leaves and time.monotonic() < deadline:
                    time.sleep(0.01)
                    continue
                if directory in leaves or exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    raise _errors.HostError(f"cannot remove cgroup {directory}: {exc.strerror}") from None
            break
