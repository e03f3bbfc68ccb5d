"""OCI bundles for driving the urunc CLI directly, the way containerd's shim does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HELLO_ELF = REPO / "build" / "hello" / "hello.elf"
URUNC = os.environ.get("URUNC_BIN", "/usr/local/bin/urunc")
CONFIG_CACHE = ".urunc-config.cache"  # urunc's parsed config.toml: shared by all containers, not a leftover
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

HELLO_ANNOTATIONS = {
    "com.urunc.unikernel.unikernelType": "unikraft",
    "com.urunc.unikernel.hypervisor": "qemu",
    "com.urunc.unikernel.binary": "/unikernel/hello.elf",
}


def base_spec(args: Sequence[str], *, annotations: dict[str, str] | None = None,
              namespaces: Sequence[dict[str, str]] | None = None, env: Sequence[str] | None = None,
              terminal: bool = False, cgroups_path: str | None = None,
              resources: dict[str, object] | None = None) -> dict[str, object]:
    """A config.json like containerd writes (trimmed to what a runtime reads)."""
    if namespaces is None:
        namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    linux: dict[str, object] = {"namespaces": list(namespaces), "resources": dict(resources or {})}
    if cgroups_path is not None:
        linux["cgroupsPath"] = cgroups_path
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": list(env if env is not None else [DEFAULT_PATH]),
            "cwd": "/",
        },
        "root": {"path": "rootfs"},
        "hostname": "urunc-test",
        "annotations": dict(annotations or {}),
        "linux": linux,
    }


def hello_bundle(path: Path, args: Sequence[str] = ("hello",), **kwargs: object) -> Path:
    """A bundle of the sample unikernel, configured by spec annotations (plain text)."""
    annotations = dict(HELLO_ANNOTATIONS)
    annotations.update(kwargs.pop("annotations", None) or {})  # type: ignore[arg-type]
    rootfs = path / "rootfs" / "unikernel"
    rootfs.mkdir(parents=True, exist_ok=True)
    shutil.copy2(HELLO_ELF, rootfs / "hello.elf")
    spec = base_spec(args, annotations=annotations, **kwargs)  # type: ignore[arg-type]
    (path / "config.json").write_text(json.dumps(spec, indent=1))
    return path


def write_spec(bundle: Path, spec: dict[str, object]) -> None:
    (bundle / "config.json").write_text(json.dumps(spec, indent=1))


def urunc(root: Path, *args: str, check: bool = False, timeout: float = 30, **kwargs: object
          ) -> subprocess.CompletedProcess[str]:
    """Run the installed urunc with its own --root, capturing text output."""
    kwargs.setdefault("capture_output", True)
    return subprocess.run([URUNC, "--root", str(root), *args], text=True, check=check,
                          timeout=timeout, **kwargs)  # type: ignore[call-overload]


def container_state(root: Path, cid: str) -> dict[str, object]:
    """`urunc state ID`, parsed; it must succeed."""
    result = urunc(root, "state", cid)
    assert result.returncode == 0, result.stderr
    state: dict[str, object] = json.loads(result.stdout)
    return state


def wait_status(root: Path, cid: str, wanted: str, timeout: float = 20) -> dict[str, object]:
    """The container's state once its status is WANTED; fails after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    while True:
        state = container_state(root, cid)
        if state["status"] == wanted:
            return state
        assert time.monotonic() < deadline, f"container {cid} not {wanted} after {timeout}s: {state['status']}"
        time.sleep(0.05)


def cgroups_named(*names: str) -> list[str]:
    """Cgroup directories (any hierarchy, any depth) named like one of NAMES."""
    found: list[str] = []
    wanted = set(names)
    for dirpath, dirs, _files in os.walk("/sys/fs/cgroup"):
        found += [os.path.join(dirpath, d) for d in dirs if d in wanted]
    return found


def leftovers(root: Path) -> list[str]:
    """Everything urunc could have left behind under ROOT, by name."""
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.name != CONFIG_CACHE)


def create(root: Path, bundle: Path, cid: str, *extra: str, console: Path | None = None,
           pass_fds: Sequence[int] = ()) -> tuple[int, str]:
    """``urunc create``: the init inherits the standard streams, so they go to a file
    (``console``, default ``<bundle>/console.log``), not to a pipe we would wait on."""
    console = console or bundle / "console.log"
    with open(console, "ab") as sink:
        start = sink.tell()
        result = subprocess.run([URUNC, "--root", str(root), "create", "--bundle", str(bundle), *extra, cid],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=30,
                                check=False, pass_fds=tuple(pass_fds))
    with open(console, "rb") as f:
        f.seek(start)
        return result.returncode, f.read().decode(errors="replace")
