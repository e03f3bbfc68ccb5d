"""Fixtures for driving the installed urunc CLI on real bundles with a real QEMU."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
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


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    """A private --root; at teardown, any container left in it is force-deleted."""
    root = tmp_path / "state"
    yield root
    if root.exists():
        import subprocess

        for entry in root.iterdir():
            subprocess.run([URUNC, "--root", str(root), "delete", "--force", entry.name],
                           capture_output=True, timeout=30, check=False)
