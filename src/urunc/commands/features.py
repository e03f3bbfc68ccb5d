"""urunc features: what this runtime implements, in runc's features JSON (OCI runtime-spec features.md).

Each entry says what urunc does with a unikernel container's spec; a spec
without unikernel annotations goes to runc, whose own ``runc features``
describes that path. Fields urunc cannot honestly fill are left out, which
the spec reads as "unknown" (an empty list would claim "none").
"""

from __future__ import annotations

import sys

from urunc import OCI_VERSION, _jsonlite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import __version__, guests, monitors
    from urunc.oci import hooks
    from urunc.oci.spec import NAMESPACE_FLAGS

    features = {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        # createContainer and startContainer are refused at create (no container mount namespace).
        "hooks": list(hooks.RUNTIME_SIDE),
        "linux": {
            # A new user namespace is refused at create; joining one by path is accepted.
            "namespaces": sorted(kind for kind in NAMESPACE_FLAGS if kind != "user"),
            # process.capabilities is not applied: the monitor runs as process.user, and a
            # user other than root has no capabilities at all.
            "capabilities": [],
            # --systemd-cgroup: systemd's slice:prefix:name paths, laid out as runc's fs
            # driver does; no systemd unit is asked for, and there is no rootless mode.
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": False, "rdma": False},
            # A spec with linux.seccomp confines the monitor with its own filter (QEMU's
            # -sandbox; solo5-spt's own; solo5-hvt always gets urunc's allowlist), not with
            # the spec's rules, so the actions, operators and architectures are not listed.
            "seccomp": {"enabled": True},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {
            "io.urunc.version": __version__,
            "io.urunc.seccomp": "the monitor's own filter when linux.seccomp is set; its rules are not applied",
            "io.urunc.guests": ",".join(guests.names()),
            "io.urunc.monitors": ",".join(monitors.names()),
            "io.urunc.matrix": ",".join(f"{g}/{m}" for g, m in guests.matrix()),
        },
    }
    sys.stdout.write(_jsonlite.dumps(features, indent=2) + "\n")
    return 0
