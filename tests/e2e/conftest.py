"""Fixtures for end-to-end tests through a private containerd.

- `containerd` (session): a private containerd daemon, see
  tests/helpers/containerd.py. Parametrize it indirectly to change its config,
  e.g. to enable CRI:

      @pytest.mark.parametrize(
          "containerd", [{"disabled_plugins": (), "extra_config": CRI_TOML}], indirect=True
      )

  (each distinct parameter gets its own daemon for the session). In
  `extra_config`, `@ROOT@` and `@STATE@` stand for the daemon's own dirs; give
  CRI `[plugins."io.containerd.grpc.v1.cri".cni] conf_dir = "@STATE@/cni"`
  or it creates /etc/cni/net.d.
- `cni` (session): our bridge network for `ctr run --cni`, see
  tests/helpers/cni.py.
- `unique_id`: a fresh container ID per test, `t-<test name>-<random>`.
- `busybox_root` (session): a busybox root filesystem for `ctr run --rootfs`.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[2]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.helpers import busybox_rootfs  # noqa: E402
from tests.helpers.cni import CniNetwork, CniSetupUnavailable, install_cni, remove_cni  # noqa: E402
from tests.helpers.containerd import Containerd, start_containerd, stop_containerd  # noqa: E402


def _require_host() -> None:
    missing = [b for b in ("containerd", "ctr") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install containerd)")
    if os.geteuid() != 0:
        pytest.skip("a private containerd needs root")


@pytest.fixture(scope="session")
def containerd(request: pytest.FixtureRequest) -> Iterator[Containerd]:
    _require_host()
    options = dict(getattr(request, "param", None) or {})
    ctd = start_containerd(**options)
    try:
        yield ctd
    finally:
        problems = stop_containerd(ctd)
        for problem in problems:
            warnings.warn(f"private containerd teardown: {problem}", stacklevel=1)


@pytest.fixture(scope="session")
def cni() -> Iterator[CniNetwork]:
    if os.geteuid() != 0:
        pytest.skip("installing a CNI network needs root")
    try:
        net = install_cni()
    except CniSetupUnavailable as exc:
        pytest.skip(f"CNI network unavailable: {exc}")
    try:
        yield net
    finally:
        remove_cni(net)


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


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    name = request.node.name.removeprefix("test_")
    short = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:24].strip("-") or "x"
    return f"t-{short}-{secrets.token_hex(3)}"
