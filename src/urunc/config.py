"""/etc/urunc/config.toml (or $URUNC_CONFIG): monitor paths, defaults, accelerator.

Read only by ``create`` (tomllib costs ~10 ms to import); every later
command reads the decisions from the container's Plan.

    [monitors.qemu]
    path = "/usr/bin/qemu-system-x86_64"
    accel = "auto"            # auto | kvm | tcg
    default_memory_mb = 256
    default_vcpus = 1

    [timestamps]
    enabled = false           # phase timestamps for the bench
"""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT_PATH = "/etc/urunc/config.toml"
ACCELS = ("auto", "kvm", "tcg")


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
        if value is not None and not isinstance(value, str):
            raise _errors.ConfigError(f"invalid {key} {value!r} in [monitors.{name}] of {self.path}")
        return value

    def accel(self, monitor: str) -> str:
        value = self.monitor_str(monitor, "accel", "auto")
        if value not in ACCELS:
            raise _errors.ConfigError(
                f"invalid accel {value!r} in [monitors.{monitor}] of {self.path} (use auto, kvm or tcg)")
        return value

    def timestamps(self) -> bool:
        section = self.data.get("timestamps", {})
        return bool(isinstance(section, dict) and section.get("enabled", False))


def load() -> Config:
    path = os.environ.get("URUNC_CONFIG") or DEFAULT_PATH
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return Config(path, {})
    except OSError as exc:
        raise _errors.ConfigError(f"cannot read {path}: {exc.strerror}") from None
    import tomllib

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise _errors.ConfigError(f"malformed {path}: {exc}") from None
    return Config(path, data)
