"""urunc features: what this runtime implements, in runc's features JSON."""

from __future__ import annotations

import sys

from urunc import OCI_VERSION, _jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import guests, monitors

    features = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [],
        "mountOptions": [],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "uts"],
            "capabilities": [],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
        },
        "annotations": {
            "io.urunc.guests": ",".join(guests.names()),
            "io.urunc.monitors": ",".join(monitors.names()),
            "io.urunc.matrix": ",".join(f"{g}/{m}" for g, m in guests.matrix()),
        },
    }
    sys.stdout.write(_jsonlite.dumps(features, indent=2) + "\n")
    return 0
