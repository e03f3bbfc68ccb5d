"""Real bundle directories for Plan-building tests: a rootfs with a kernel, fake monitor binaries."""

from __future__ import annotations

import os

from urunc.config import Config
from urunc.oci.spec import Spec
from urunc.unikernel import plan as _plan
from urunc.unikernel.config import UnikernelConfig


def fake_monitors(tmp: str) -> dict[str, dict[str, str]]:
    """[monitors.NAME] path = an executable that is never run."""
    sections = {}
    for name in ("qemu", "firecracker", "hvt", "spt"):
        path = os.path.join(tmp, f"fake-{name}")
        with open(path, "w") as f:
            f.write("#!/bin/false\n")
        os.chmod(path, 0o755)
        sections[name] = {"path": path}
    return sections


def build(tmp: str, values: dict[str, str], kernel: bytes = b"\x7fELF", files: dict[str, bytes] | None = None,
          resources: dict[str, object] | None = None, monitors: dict[str, dict[str, object]] | None = None,
          args: list[str] | None = None) -> _plan.Plan:
    bundle = os.path.join(tmp, "bundle")
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "unikernel"), exist_ok=True)
    with open(os.path.join(rootfs, "unikernel", "app.elf"), "wb") as f:
        f.write(kernel)
    for name, data in (files or {}).items():
        with open(os.path.join(rootfs, name.lstrip("/")), "wb") as f:
            f.write(data)
    raw = {"root": {"path": "rootfs"}, "process": {"args": args if args is not None else ["app"], "env": []},
           "linux": {"resources": resources or {}}}
    sections = fake_monitors(tmp)
    for name, extra in (monitors or {}).items():
        sections[name].update(extra)
    values = {"binary": "/unikernel/app.elf", **values}
    cfg = Config(os.path.join(tmp, "config.toml"), {"monitors": sections})
    ucfg = UnikernelConfig(values, {k: "annotations" for k in values})
    state_dir = os.path.join(tmp, "state")
    os.makedirs(state_dir, exist_ok=True)
    return _plan.build("c1", Spec(bundle, raw), ucfg, cfg, state_dir)
