"""/etc/urunc/config.toml (or $URUNC_CONFIG): monitor paths, defaults, accelerator.

Read only by ``create`` (tomllib costs ~20 ms to import here); every later
command reads the decisions from the container's Plan.

    [monitors.qemu]
    path = "/usr/bin/qemu-system-x86_64"
    accel = "auto"            # auto | kvm | tcg
    default_memory_mb = 256
    default_vcpus = 1

    [timestamps]
    enabled = false           # phase timestamps for the bench

    [templates]               # Linux guests start from a booted template (guests/linux_template.py)
    enabled = false
    dir = "/var/lib/urunc/templates"
    max_size_mb = 4096
"""

from __future__ import annotations

import marshal
import os

from urunc import _errors
from urunc._files import read_regular

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/etc/urunc/config.toml"
ACCELS = ("auto", "kvm", "tcg")
MAX_BYTES = 1024 * 1024  # config.toml (and its cache): a few hundred bytes in practice


class Config:
    __slots__ = ("path", "data")

    def __init__(self, path: str, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def monitor(self, name: str) -> dict[str, Any]:
        monitors = self.data.get("monitors", {})
        section = monitors.get(name, {}) if isinstance(monitors, dict) else {}
        if not isinstance(section, dict):
            raise _errors.ConfigError(f"[monitors.{name}] in {self.path} must be a table")
        return section

    def monitor_int(self, name: str, key: str, default: int, low: int, high: int) -> int:
        value = self.monitor(name).get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _errors.ConfigError(
                f"invalid {key} {value!r} in [monitors.{name}] of {self.path} (allowed {low}..{high})")
        return int(value)

    def monitor_str(self, name: str, key: str, default: str | None) -> str | None:
        value = self.monitor(name).get(key, default)
        if value is not None and (not isinstance(value, str) or "\0" in value):
            raise _errors.ConfigError(f"invalid {key} {value!r} in [monitors.{name}] of {self.path}")
        return value

    def accel(self, monitor: str) -> str:
        value = self.monitor_str(monitor, "accel", "auto")
        if value not in ACCELS:
            raise _errors.ConfigError(
                f"invalid accel {value!r} in [monitors.{monitor}] of {self.path} (use auto, kvm or tcg)")
        return value

    def templates(self) -> tuple[bool, str, int]:
        """[templates]: (enabled, dir, max_size_mb)."""
        section = self.data.get("templates", {})
        if not isinstance(section, dict):
            raise _errors.ConfigError(f"[templates] in {self.path} must be a table")
        enabled = section.get("enabled", False)
        directory = section.get("dir", "/var/lib/urunc/templates")
        limit = section.get("max_size_mb", 4096)
        if not isinstance(enabled, bool):
            raise _errors.ConfigError(f"invalid enabled {enabled!r} in [templates] of {self.path} (true or false)")
        if not isinstance(directory, str) or not directory.startswith("/") or "\0" in directory \
                or len(directory) > 200:
            raise _errors.ConfigError(f"invalid dir {directory!r} in [templates] of {self.path} "
                                      "(an absolute path of at most 200 bytes)")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 64 <= limit <= 1 << 30:
            raise _errors.ConfigError(f"invalid max_size_mb {limit!r} in [templates] of {self.path} "
                                      "(allowed 64..1073741824)")
        return enabled, os.path.normpath(directory), limit

    def timestamps(self) -> bool:
        section = self.data.get("timestamps", {})
        return bool(isinstance(section, dict) and section.get("enabled", False))


CACHE_NAME = ".urunc-config.cache"


def load(cache_dir: str | None = None) -> Config:
    """The config, parsed by tomllib once per version of the file.

    Importing tomllib costs ~20 ms here, on every ``create``; the parsed tables
    are kept in CACHE_DIR (marshal, a built-in module) keyed by the file's
    identity and change times, so only the first create after an edit pays.
    """
    path = os.environ.get("URUNC_CONFIG") or DEFAULT_PATH
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return Config(path, {})
    except OSError as exc:
        raise _errors.ConfigError(f"cannot read {path}: {exc.strerror}") from None
    key = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    cache = os.path.join(cache_dir, CACHE_NAME) if cache_dir else None
    if cache:
        try:
            cached_key, cached_data = marshal.loads(read_regular(cache, MAX_BYTES, nofollow=True))
            if cached_key == key and isinstance(cached_data, dict):
                return Config(path, cached_data)
        except (OSError, EOFError, ValueError, TypeError):
            pass
    try:
        raw = read_regular(path, MAX_BYTES)
    except OSError as exc:
        raise _errors.ConfigError(f"cannot read {path}: {exc.strerror}") from None
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _errors.ConfigError(f"malformed {path}: {exc}") from None
    except RecursionError:
        raise _errors.ConfigError(f"malformed {path}: nested too deeply") from None
    if cache:
        _write_cache(cache, key, data)
    return Config(path, data)


def _write_cache(cache: str, key: tuple[object, ...], data: dict[str, Any]) -> None:
    try:
        blob = marshal.dumps((key, data))  # type: ignore[arg-type]  # ValueError for TOML dates: no cache
        os.makedirs(os.path.dirname(cache), mode=0o711, exist_ok=True)
        from urunc._files import write_atomic

        write_atomic(cache, blob)
    except (OSError, ValueError):
        pass
