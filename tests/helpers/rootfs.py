"""Throw-away root filesystems for containers run in tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

BUSYBOX = Path("/bin/busybox")

# Directories every plain Linux container expects; runc mounts /proc, /dev and
# /sys over the empty ones.
_DIRS = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var")


def busybox_rootfs(path: str | os.PathLike[str], busybox: str | os.PathLike[str] = BUSYBOX) -> Path:
    """Build a minimal busybox root filesystem at *path* and return it.

    The busybox binary must be static (Debian's busybox-static): it is copied
    to /bin/busybox and every applet it lists becomes a symlink in /bin, so
    `/bin/sh`, `/bin/ip`, `/bin/ping` ... exist inside the container.
    """
    root = Path(path)
    busybox = Path(busybox)
    if not busybox.is_file():
        raise FileNotFoundError(f"busybox not found at {busybox} (install busybox-static)")
    for d in _DIRS:
        (root / d).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(busybox, root / "bin" / "busybox")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    for applet in applets:
        link = root / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    return root
