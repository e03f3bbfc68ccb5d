"""Fixtures for tests with real third-party unikernels from ../shared/unikernels (see its README.md).

The folder sits beside the project (CI has it; a bare clone does not): every
test here takes the ``shared`` fixture, which skips with the reason
"../shared/unikernels not present" when it is absent. The Solo5 tenders are
found the way a user installs them: on PATH (``make tenders`` installs them
from that folder into /usr/local/bin); the seccomp tests run the folder's own
tender directly. Containerd tests use tests/conftest.py's `containerd`, `cni` and
`unique_id` (a private daemon and CNI network of their own, shared with tests/e2e).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _real import SHARED, SOLO5, TENDER_PATH, kvm_usable  # noqa: E402


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/unikernels not present")
    return SHARED


@pytest.fixture(scope="session")
def tenders(shared: Path) -> dict[str, str]:
    """solo5-hvt and solo5-spt as installed on PATH, the way urunc finds them."""
    found = {}
    for name in ("solo5-hvt", "solo5-spt"):
        path = shutil.which(name, path=TENDER_PATH)
        if path is None:
            pytest.skip(f"{name} not on PATH (make tenders installs it from {SOLO5})")
        found[name] = path
    return found


@pytest.fixture(params=["hvt", "spt"])
def monitor(request: pytest.FixtureRequest, tenders: dict[str, str]) -> str:
    """Each test runs on both tenders; hvt needs /dev/kvm."""
    if request.param == "hvt" and not kvm_usable():
        pytest.skip("solo5-hvt needs /dev/kvm")
    return str(request.param)
