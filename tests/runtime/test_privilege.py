"""Least privilege for the monitor, through the installed urunc CLI and a real QEMU.

`process.user` 65534:65534 → the monitor runs as that uid/gid with no
capabilities and no_new_privs; a spec with seccomp → QEMU's own sandbox
(`Seccomp: 2`); a kernel only root can read is handed over as a sealed memfd,
never chmod-ed; the state directory is not readable by others.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

from tests.helpers.bundles import container_state, hello_bundle, urunc


def _status(pid: int) -> dict[str, str]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return fields  # type: ignore[return-value]


def _run_waiting(tmp_path: Path, root: Path, cid: str, edit) -> int:  # type: ignore[no-untyped-def]
    bundle = hello_bundle(tmp_path / cid, args=("hello", "wait"))
    spec = json.loads((bundle / "config.json").read_text())
    edit(spec, bundle)
    (bundle / "config.json").write_text(json.dumps(spec))
    out = open(tmp_path / f"{cid}.out", "wb")  # noqa: SIM115 - the monitor keeps it
    r = urunc(root, "create", "--bundle", str(bundle), cid, stdout=out, stderr=out,
              capture_output=False, stdin=None)
    assert r.returncode == 0, (tmp_path / f"{cid}.out").read_text()
    r = urunc(root, "start", cid)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 20
    while b"waiting" not in (tmp_path / f"{cid}.out").read_bytes():
        assert time.monotonic() < deadline, (tmp_path / f"{cid}.out").read_text()
        time.sleep(0.05)
    return int(container_state(root, cid)["pid"])


def test_monitor_runs_as_the_spec_user_without_privileges(tmp_path: Path, state_root: Path) -> None:
    def edit(spec: dict, bundle: Path) -> None:
        spec["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [100]}
        # an image file only root may read: the monitor must still boot it
        os.chmod(bundle / "rootfs" / "unikernel" / "hello.elf", 0o600)

    pid = _run_waiting(tmp_path, state_root, "priv-user", edit)
    status = _status(pid)
    assert status["Uid"] == ["65534"] * 4
    assert status["Gid"] == ["65534"] * 4
    assert sorted(status["Groups"]) == ["100", "65534"]
    assert status["CapEff"] == ["0000000000000000"]
    assert status["CapPrm"] == ["0000000000000000"]
    assert status["NoNewPrivs"] == ["1"]
    assert Path(f"/proc/{pid}/exe").resolve().name.startswith("qemu-system")
    # the file kept its mode: it was copied into a memfd, not chmod-ed
    kernel = tmp_path / "priv-user" / "rootfs" / "unikernel" / "hello.elf"
    assert stat.S_IMODE(kernel.stat().st_mode) == 0o600
    assert urunc(state_root, "delete", "--force", "priv-user").returncode == 0


def test_seccomp_in_spec_puts_qemu_in_its_sandbox(tmp_path: Path, state_root: Path) -> None:
    def edit(spec: dict, bundle: Path) -> None:
        spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}

    pid = _run_waiting(tmp_path, state_root, "priv-seccomp", edit)
    status = _status(pid)
    assert status["Seccomp"] == ["2"]
    assert status["NoNewPrivs"] == ["1"]
    assert b"-sandbox" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert urunc(state_root, "delete", "--force", "priv-seccomp").returncode == 0


def test_root_monitor_without_seccomp_still_has_no_new_privs(tmp_path: Path, state_root: Path) -> None:
    pid = _run_waiting(tmp_path, state_root, "priv-root", lambda spec, bundle: None)
    status = _status(pid)
    assert status["Uid"] == ["0"] * 4
    assert status["Seccomp"] == ["0"]
    assert status["NoNewPrivs"] == ["1"]
    state_dir = state_root / "priv-root"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    for entry in state_dir.iterdir():
        if not entry.is_symlink():
            mode = entry.stat().st_mode  # sockets are guarded by the 0700 directory
            assert mode & 0o077 == 0 or stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode), entry
    assert stat.S_IMODE(state_root.stat().st_mode) & 0o044 == 0
    assert urunc(state_root, "delete", "--force", "priv-root").returncode == 0
