"""Fixtures for end-to-end tests through a private containerd (`containerd`, `cni` and
`unique_id` are tests/conftest.py's, shared with tests/real).

- `busybox_root` (session): a busybox root filesystem for `ctr run --rootfs`.
- `hello_image` (session): the sample unikernel image, imported.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.helpers import busybox_rootfs  # noqa: E402
from tests.helpers.containerd import Containerd  # noqa: E402


@pytest.fixture(scope="session")
def busybox_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("busybox-rootfs"))


HELLO_TAR = _REPO / "build" / "images" / "hello.tar"


@pytest.fixture(scope="session")
def hello_image(containerd: Containerd) -> str:
    """The sample unikernel image (make images), imported into the private containerd."""
    if not HELLO_TAR.exists():
        pytest.skip(f"{HELLO_TAR} is not built (run make images)")
    containerd.ctr("image", "import", str(HELLO_TAR), timeout=120)
    name = "docker.io/library/urunc-hello:latest"
    assert name in containerd.ctr("image", "ls", "-q").stdout.split()
    return name
