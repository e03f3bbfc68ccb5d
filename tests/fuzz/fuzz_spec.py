"""The bundle's config.json as urunc reads it (urunc.oci.spec.load): every field it uses.

Correct result: a Spec whose fields have the types and ranges the runtime relies on.
Error: BundleError, one line.
"""

from __future__ import annotations

import os

from _fuzzlib import fresh, guard, one_line, write

from urunc import _errors
from urunc.oci import spec as _spec

_U32 = 2**32 - 2


def _strs(value: object) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, str) for v in value)


def one(data: bytes) -> None:
    with fresh("bundle") as bundle:
        write(os.path.join(bundle, "config.json"), data)
        with guard():
            try:
                s = _spec.load(bundle)
            except _errors.UruncError as exc:
                one_line(exc)
                return
        # every string below reaches a system call or an argv: a NUL there fails later, as a traceback
        assert isinstance(s.rootfs, str) and os.path.isabs(s.rootfs) and "\0" not in s.rootfs, s.rootfs
        for value in (*s.args, *s.env, s.cwd, s.hostname, s.cgroups_path, *(p for _, p in s.namespaces)):
            assert "\0" not in value, f"NUL accepted in {value!r}"
        assert isinstance(s.annotations, dict)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in s.annotations.items())
        assert _strs(s.args) and _strs(s.env)
        assert isinstance(s.cwd, str) and s.cwd and isinstance(s.hostname, str)
        assert isinstance(s.terminal, bool) and isinstance(s.has_seccomp, bool)
        for n in (s.uid, s.gid, *s.additional_gids):
            assert type(n) is int and 0 <= n <= _U32, n
        assert all(kind in _spec.NAMESPACE_FLAGS and isinstance(path, str) for kind, path in s.namespaces)
        for kind in _spec.NAMESPACE_FLAGS:
            assert s.namespace_path(kind) in (None, *(p for _, p in s.namespaces))
        assert s.memory_limit is None or (type(s.memory_limit) is int and s.memory_limit > 0)
        assert s.cpu_quota is None or type(s.cpu_quota) is int
        assert s.cpu_period is None or type(s.cpu_period) is int
        assert isinstance(s.cpuset, str) and isinstance(s.cgroups_path, str)
