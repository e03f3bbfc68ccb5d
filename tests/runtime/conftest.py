"""Fixtures for driving the installed urunc CLI on real bundles with a real QEMU."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.helpers.bundles import HELLO_ELF, URUNC  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _runtime_requirements() -> None:
    if not os.access(URUNC, os.X_OK):
        pytest.skip(f"{URUNC} is not installed (run make install)")
    if not HELLO_ELF.exists():
        pytest.skip(f"{HELLO_ELF} is not built (run make guests)")
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
