"""/etc/urunc/config.toml (urunc.config.load via $URUNC_CONFIG) and every accessor create uses.

Correct result: values of the types and ranges the plan needs, the same from the cache as from the
file. Error: ConfigError, one line.
"""

from __future__ import annotations

import os
import tomllib  # noqa: F401 - imported here so the fuzzer instruments it

from _fuzzlib import fresh, guard, one_line, write

from urunc import _errors
from urunc import config as _config

MONITORS = ("qemu", "firecracker", "hvt", "spt")


def _use(cfg: _config.Config) -> list[object]:
    """What create asks of the config, errors included, in order."""
    seen: list[object] = [cfg.timestamps()]
    for name in MONITORS:
        asks = ((cfg.monitor_str, (name, "path", None)), (cfg.accel, (name,)),
                (cfg.monitor_int, (name, "default_memory_mb", 64, 1, 1 << 20)),
                (cfg.monitor_int, (name, "default_vcpus", 1, 1, 256)),
                (cfg.monitor_int, (name, "shutdown_grace_seconds", 10, 0, 3600)))
        for method, args in asks:
            try:
                value = method(*args)  # type: ignore[operator]
            except _errors.UruncError as exc:
                seen.append(("error", one_line(exc)))
                continue
            seen.append(value)
    return seen


def one(data: bytes) -> None:
    with fresh("config") as tmp:
        path = os.path.join(tmp, "config.toml")
        write(path, data)
        old = os.environ.get("URUNC_CONFIG")
        os.environ["URUNC_CONFIG"] = path
        try:
            with guard():
                results = []
                for _ in range(2):   # the second load comes from the cache when the first wrote one
                    try:
                        cfg = _config.load(cache_dir=os.path.join(tmp, "root"))
                    except _errors.UruncError as exc:
                        one_line(exc)
                        return
                    results.append(_use(cfg))
        finally:
            if old is None:
                del os.environ["URUNC_CONFIG"]
            else:
                os.environ["URUNC_CONFIG"] = old
    assert results[0] == results[1], "the cached config reads differently from the file"
    for value in results[0]:
        assert value is None or isinstance(value, (bool, int, str, tuple)), value
        if isinstance(value, str):
            assert "\0" not in value, f"NUL accepted in {value!r} (a path that reaches a system call)"
