"""Where the real unikernels are (../shared/unikernels beside the project) and host facts the tests share."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "unikernels"
SOLO5 = SHARED / "solo5"
UNIKRAFT = SHARED / "unikraft"
TENDER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"   # what containerd's shim sees


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)
