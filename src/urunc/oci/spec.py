"""The bundle's config.json, read once into a small typed view."""

from __future__ import annotations

import os

from urunc import _errors, _jsonlite
from urunc._files import read_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MAX_CONFIG_BYTES = 16 * 1024 * 1024

# The namespaces the OCI spec names, with their clone(2) flags.
NAMESPACE_FLAGS = {
    "mount": 0x00020000,
    "uts": 0x04000000,
    "ipc": 0x08000000,
    "user": 0x10000000,
    "pid": 0x20000000,
    "network": 0x40000000,
    "cgroup": 0x02000000,
    "time": 0x00000080,
}


class Spec:
    """What urunc uses of an OCI runtime spec; raises BundleError naming any bad value."""

    __slots__ = ("bundle", "raw", "rootfs", "annotations", "args", "env", "cwd", "terminal",
                 "namespaces", "memory_limit", "cpu_quota", "cpu_period", "cpuset", "uid", "gid",
                 "additional_gids", "has_seccomp", "cgroups_path", "hostname", "root_readonly")

    def __init__(self, bundle: str, raw: dict[str, Any]) -> None:
        self.bundle = bundle
        self.raw = raw
        root = _obj(raw.get("root"), "root")
        root_path = root.get("path", "rootfs")
        if not isinstance(root_path, str) or not root_path or "\0" in root_path:
            raise _errors.BundleError(f"invalid root.path {root_path!r} in config.json")
        self.rootfs = os.path.normpath(os.path.join(bundle, root_path))
        self.root_readonly = root.get("readonly") is True
        annotations = _obj(raw.get("annotations"), "annotations")
        self.annotations: dict[str, str] = {}
        for key, value in annotations.items():
            if not isinstance(value, str):
                raise _errors.BundleError(f"annotation {key} must be a string")
            self.annotations[key] = value
        process = _obj(raw.get("process"), "process")
        self.args = _strings(process.get("args"), "process.args")
        self.env = _strings(process.get("env"), "process.env")
        cwd = process.get("cwd", "/")
        self.cwd = _no_nul(cwd, "process.cwd") if isinstance(cwd, str) and cwd else "/"
        self.terminal = bool(process.get("terminal", False))
        user = _obj(process.get("user"), "process.user")
        self.uid = _int(user.get("uid", 0), "process.user.uid", 0, 2**32 - 2)
        self.gid = _int(user.get("gid", 0), "process.user.gid", 0, 2**32 - 2)
        self.additional_gids = tuple(_int(g, "process.user.additionalGids", 0, 2**32 - 2)
                                     for g in (user.get("additionalGids") or []))
        self.hostname = _no_nul(raw["hostname"], "hostname") if isinstance(raw.get("hostname"), str) else ""
        linux = _obj(raw.get("linux"), "linux")
        self.namespaces: list[tuple[str, str]] = []
        for ns in linux.get("namespaces") or []:
            ns = _obj(ns, "linux.namespaces[]")
            kind = ns.get("type")
            if not isinstance(kind, str) or kind not in NAMESPACE_FLAGS:  # (a list is unhashable: fuzzing)
                raise _errors.BundleError(f"unknown namespace type {kind!r:.80} in config.json")
            path = ns.get("path") or ""
            if not isinstance(path, str) or "\0" in path:
                raise _errors.BundleError(f"invalid path {path!r:.80} for {kind} namespace")
            self.namespaces.append((kind, path))
        self.has_seccomp = bool(linux.get("seccomp"))
        cgroups_path = linux.get("cgroupsPath") or ""
        self.cgroups_path = _no_nul(cgroups_path, "linux.cgroupsPath") if isinstance(cgroups_path, str) else ""
        resources = _obj(linux.get("resources"), "linux.resources")
        memory = _obj(resources.get("memory"), "linux.resources.memory")
        limit = memory.get("limit")
        self.memory_limit = None if limit is None else _int(limit, "linux.resources.memory.limit",
                                                            -1, 2**63 - 1)
        if self.memory_limit is not None and self.memory_limit <= 0:
            self.memory_limit = None
        cpu = _obj(resources.get("cpu"), "linux.resources.cpu")
        quota = cpu.get("quota")
        period = cpu.get("period")
        self.cpu_quota = None if quota is None else _int(quota, "linux.resources.cpu.quota", -1, 2**63 - 1)
        self.cpu_period = None if period is None else _int(period, "linux.resources.cpu.period", 0, 2**63 - 1)
        cpus = cpu.get("cpus") or ""
        self.cpuset = cpus if isinstance(cpus, str) else ""

    def namespace_path(self, kind: str) -> str | None:
        """The path to join for KIND, "" to create it, None when the spec does not name it."""
        for ns_kind, path in self.namespaces:
            if ns_kind == kind:
                return path
        return None


def load(bundle: str) -> Spec:
    bundle = os.path.abspath(bundle)
    path = os.path.join(bundle, "config.json")
    try:
        data = read_regular(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise _errors.BundleError(f"missing config.json in bundle {bundle}") from None
    except OSError as exc:
        raise _errors.BundleError(f"cannot read {path}: {exc.strerror}") from None
    return Spec(bundle, _jsonlite.loads_object(data, path, _errors.BundleError))


def _obj(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _errors.BundleError(f"{where} in config.json must be an object")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _errors.BundleError(f"{where} in config.json must be a list of strings")
    for v in value:
        _no_nul(v, where)
    return tuple(value)


def _no_nul(value: str, where: str) -> str:
    """VALUE, which reaches a system call or an argv, where a NUL byte cannot go."""
    if "\0" in value:
        raise _errors.BundleError(f"{where} {value!r:.80} in config.json contains a NUL byte")
    return value


def _int(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _errors.BundleError(f"invalid {where} {value!r} in config.json")
    return int(value)
