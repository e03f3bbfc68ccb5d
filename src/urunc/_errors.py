"""Every error urunc reports, as one tree.

    UruncError                      one-line message, exit code 1
    ├── UsageError                  bad command line (exit code 1 too, as runc's)
    ├── ContainerError              the container named on the command line
    │   ├── NotFound                "container X does not exist" (containerd matches that text)
    │   ├── AlreadyExists
    │   └── WrongState              the state machine forbids the command
    ├── BundleError                 config.json, rootfs, annotations, urunc.json
    ├── ConfigError                 /etc/urunc/config.toml
    ├── PlanError                   unsupported guest, monitor, pair, size, missing binary
    ├── HostError                   a host side effect failed (namespaces, taps, mounts)
    └── NotSupported                a runc command that has no meaning for a unikernel

Messages are lower case, without a trailing period, and name the offending value.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_ERROR = 1


class UruncError(Exception):
    exit_code = EXIT_ERROR

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(UruncError):
    pass


class ContainerError(UruncError):
    pass


class NotFound(ContainerError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} does not exist")


class AlreadyExists(ContainerError):
    def __init__(self, container_id: str) -> None:
        super().__init__(f"container {container_id} already exists")


class WrongState(ContainerError):
    pass


class BundleError(UruncError):
    pass


class ConfigError(UruncError):
    pass


class PlanError(UruncError):
    pass


class HostError(UruncError):
    pass


class NotSupported(UruncError):
    pass
