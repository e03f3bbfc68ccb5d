"""Make the package under src/ and the shared test helpers importable for every test; shared fixtures.

- `netns`: a network namespace with eth0 as CNI leaves it (tests/helpers/netns.py).
- `containerd` (session): a private containerd daemon, see tests/helpers/containerd.py.
  Parametrize it indirectly to change its config, e.g. to enable CRI:

      @pytest.mark.parametrize(
          "containerd", [{"disabled_plugins": (), "extra_config": CRI_TOML}], indirect=True
      )

  (each distinct parameter gets its own daemon for the session). In `extra_config`,
  `@ROOT@` and `@STATE@` stand for the daemon's own dirs; give CRI
  `[plugins."io.containerd.grpc.v1.cri".cni] conf_dir = "@STATE@/cni"` or it creates
  /etc/cni/net.d.
- `cni` (session): our bridge network for `ctr run --cni`, see tests/helpers/cni.py.
- `unique_id`: a fresh container ID per test, `<tier>-<test name>-<random>`.
- `state_root`: a private `--root` for the installed urunc; containers left in it are
  force-deleted at teardown.
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

_REPO = Path(__file__).resolve().parents[1]
for path in (_REPO / "src", _REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.helpers.cni import CniNetwork, CniSetupUnavailable, install_cni, remove_cni  # noqa: E402
from tests.helpers.containerd import Containerd, start_containerd, stop_containerd  # noqa: E402
from tests.helpers.netns import Netns  # noqa: E402


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A network namespace with eth0 as CNI leaves it, and its peer (tests/helpers/netns.py)."""
    ns = Netns()
    try:
        yield ns
    finally:
        ns.delete()


@pytest.fixture(scope="session")
def containerd(request: pytest.FixtureRequest) -> Iterator[Containerd]:
    missing = [b for b in ("containerd", "ctr") if shutil.which(b) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed (apt-get install containerd)")
    if os.geteuid() != 0:
        pytest.skip("a private containerd needs root")
    ctd = start_containerd(**dict(getattr(request, "param", None) or {}))
    try:
        yield ctd
    finally:
        for problem in stop_containerd(ctd):
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


@pytest.fixture
def unique_id(request: pytest.FixtureRequest) -> str:
    """``t-`` (e2e) or ``r-`` (real unikernels), the test's name, random hex: IDs no other test,
    session or containerd on the host uses."""
    tier = "r" if "real" in Path(str(request.node.fspath)).parts else "t"
    name = request.node.name.removeprefix("test_")
    short = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:24].strip("-") or "x"
    return f"{tier}-{short}-{secrets.token_hex(3)}"


@pytest.fixture
def state_root(tmp_path: Path) -> Iterator[Path]:
    """A private --root; at teardown, any container left in it is force-deleted."""
    import subprocess

    from tests.helpers.bundles import URUNC

    if not os.access(URUNC, os.X_OK):
        pytest.skip(f"{URUNC} is not installed (run make install)")
    root = tmp_path / "state"
    yield root
    if root.exists():
        for entry in root.iterdir():
            subprocess.run([URUNC, "--root", str(root), "delete", "--force", entry.name],
                           capture_output=True, timeout=30, check=False)
