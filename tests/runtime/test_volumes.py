"""Bind mounts from config.json reach the guest at their destination, with their options.

Driven through the installed urunc on real bundles; the guests are real: Unikraft
0.17.0's ``ukfiles`` (9pfs through vfscore's fstab, ../shared/unikernels) and the
Linux microVM with a busybox rootfs. Read-only is checked on the host side too: the
share is QEMU's ``readonly=on``, so even a guest that ignores the mount flag cannot
write (the write fails inside the guest, the host file never appears).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import DEFAULT_PATH, base_spec, create, leftovers, urunc, wait_status, write_spec
from tests.helpers.rootfs import busybox_rootfs

REPO = Path(__file__).resolve().parents[2]
UKFILES = REPO.parent / "shared" / "unikernels" / "unikraft" / "ukfiles_qemu-x86_64"
GUEST_KERNEL = Path("/usr/local/lib/urunc/guest/vmlinux")


def _bind(source: Path, destination: str, mode: str = "rw") -> dict[str, object]:
    return {"destination": destination, "type": "bind", "source": str(source), "options": ["rbind", mode]}


# What containerd puts in every spec: the guest's own filesystems and a /run tmpfs.
ENGINE_MOUNTS: list[dict[str, object]] = [
    {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "mode=1777"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "ro"]},
    {"destination": "/run", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=65536k"]},
]


def _run(state_root: Path, bundle: Path, cid: str, timeout: float = 120) -> str:
    out = bundle / "console.out"
    code, text = create(state_root, bundle, cid, console=out)
    assert code == 0, text
    assert urunc(state_root, "start", cid).returncode == 0
    wait_status(state_root, cid, "stopped", timeout=timeout)
    assert urunc(state_root, "delete", cid).returncode == 0
    assert leftovers(state_root) == []
    return out.read_text(errors="replace")


@pytest.fixture
def volumes(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_text("from-host\n")
    config = tmp_path / "config"
    config.mkdir()
    (config / "app.conf").write_text("setting=42\n")
    return data, config


def test_unikraft_reads_and_writes_a_volume_and_cannot_write_a_read_only_one(
        tmp_path: Path, state_root: Path, volumes: tuple[Path, Path]) -> None:
    if not UKFILES.exists():
        pytest.skip(f"{UKFILES} not present (../shared/unikernels is not here)")
    data, config = volumes
    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    shutil.copy2(UKFILES, bundle / "rootfs" / "ukfiles")
    spec = base_spec(["cat:/data/in.txt", "write:/data/out.txt:from-guest", "cat:/etc/app/app.conf",
                      "write:/etc/app/new.txt:nope", "ls:/etc/app"],
                     annotations={"com.urunc.unikernel.unikernelType": "unikraft",
                                  "com.urunc.unikernel.hypervisor": "qemu",
                                  "com.urunc.unikernel.binary": "/ukfiles"})
    spec["mounts"] = ENGINE_MOUNTS + [_bind(data, "/data"), _bind(config, "/etc/app", "ro")]
    write_spec(bundle, spec)
    text = _run(state_root, bundle, "uk")
    assert "cat /data/in.txt: from-host" in text, text
    assert "write /data/out.txt: ok" in text
    assert (data / "out.txt").read_text() == "from-guest"
    assert "cat /etc/app/app.conf: setting=42" in text
    assert "write /etc/app/new.txt: error Read-only file system" in text
    assert not (config / "new.txt").exists()
    assert "ls /etc/app: app.conf" in text
    assert "ukfiles done" in text


@pytest.fixture(scope="module")
def busybox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GUEST_KERNEL.exists():
        pytest.skip(f"{GUEST_KERNEL} is not installed (run make install)")
    return busybox_rootfs(tmp_path_factory.mktemp("bb"))


def _linux_bundle(tmp_path: Path, busybox: Path, script: str, mounts: list[dict[str, object]]) -> Path:
    bundle = tmp_path / "lb"
    shutil.copytree(busybox, bundle / "rootfs", symlinks=True)
    spec = base_spec(["sh", "-c", script], env=[DEFAULT_PATH],
                     annotations={"com.urunc.unikernel.unikernelType": "linux",
                                  "com.urunc.unikernel.hypervisor": "qemu"})
    spec["mounts"] = ENGINE_MOUNTS + mounts
    write_spec(bundle, spec)
    return bundle


def test_linux_guest_mounts_directories_files_and_tmpfs_at_their_destinations(
        tmp_path: Path, state_root: Path, volumes: tuple[Path, Path], busybox: Path) -> None:
    data, config = volumes
    single = tmp_path / "single.conf"
    single.write_text("single-file\n")
    script = ("cat /data/in.txt; echo guest-wrote > /data/out.txt && echo write-ok; "
              "cat /etc/app/app.conf; (echo x > /etc/app/new.txt) 2>/dev/null || echo ro-refused; "
              "cat /etc/single.conf; mkdir -p /data/sub/deeper && echo nested > /data/sub/deeper/n.txt; "
              "cat /data/nested/inner.txt; grep ' /run ' /proc/mounts | cut -d' ' -f3; "
              # A guest that lifts its own read-only flag still cannot write: QEMU refuses.
              "mount -o remount,rw /etc/app && { (echo x > /etc/app/new.txt) 2>/dev/null || echo host-refused; }; "
              "echo done")
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "inner.txt").write_text("inner-volume\n")
    bundle = _linux_bundle(tmp_path, busybox, script, [
        _bind(data, "/data"), _bind(config, "/etc/app", "ro"), _bind(single, "/etc/single.conf", "ro"),
        _bind(nested, "/data/nested", "ro")])
    text = _run(state_root, bundle, "lin").replace("\r\n", "\n")
    assert text.splitlines() == ["from-host", "write-ok", "setting=42", "ro-refused", "single-file",
                                 "inner-volume", "tmpfs", "host-refused", "done"], text
    assert (data / "out.txt").read_text() == "guest-wrote\n"
    assert (data / "sub" / "deeper" / "n.txt").read_text() == "nested\n"
    assert not (config / "new.txt").exists()
    # The nested volume was mounted over the directory it sits in, not written into it.
    assert not (data / "nested" / "inner.txt").exists()


@pytest.mark.parametrize("case", ["missing-source", "dotdot", "relative", "too-many", "device"])
def test_bad_mounts_fail_create_in_one_line_and_leave_nothing(
        tmp_path: Path, state_root: Path, volumes: tuple[Path, Path], busybox: Path, case: str) -> None:
    data, _config = volumes
    mounts = {
        "missing-source": [_bind(tmp_path / "nope", "/data")],
        "dotdot": [_bind(data, "/data/../../etc")],
        "relative": [_bind(data, "data")],
        "too-many": [_bind(data, f"/v{i}") for i in range(17)],
        "device": [_bind(Path("/dev/null"), "/data/null")],
    }[case]
    bundle = _linux_bundle(tmp_path, busybox, "true", mounts)
    code, text = create(state_root, bundle, "bad")
    assert code != 0
    assert len(text.strip().splitlines()) == 1, text
    assert ("mount" in text or "mounts" in text), text
    assert leftovers(state_root) == []


def test_a_volume_on_a_guest_without_a_shared_filesystem_fails_create_naming_it(
        tmp_path: Path, state_root: Path, volumes: tuple[Path, Path]) -> None:
    from tests.helpers.bundles import hello_bundle

    data, _config = volumes
    bundle = hello_bundle(tmp_path / "b", annotations={"com.urunc.unikernel.unikernelVersion": "0.15.0"})
    spec = json.loads((bundle / "config.json").read_text())
    spec["mounts"] = ENGINE_MOUNTS + [_bind(data, "/data")]
    write_spec(bundle, spec)
    code, text = create(state_root, bundle, "old")
    assert code != 0 and "mount /data" in text and len(text.strip().splitlines()) == 1, text
    assert leftovers(state_root) == []


def test_linux_guest_with_a_large_rootfs_boots_it_shared_not_copied(
        tmp_path: Path, state_root: Path, busybox: Path) -> None:
    bundle = _linux_bundle(tmp_path, busybox, "cat /data/blob.txt; echo from-guest > /written.txt; echo done", [])
    (bundle / "rootfs" / "data").mkdir()
    (bundle / "rootfs" / "data" / "blob.txt").write_text("image-data\n")
    with open(bundle / "rootfs" / "data" / "big", "wb") as f:
        f.truncate(40 << 20)  # past the 32 MiB from which the rootfs is shared
    out = bundle / "console.out"
    code, text = create(state_root, bundle, "big", console=out)
    assert code == 0, text
    state = json.loads((state_root / "big" / "urunc-state.json").read_text())
    assert state["plan"]["mounts"][0] == ["root", str(bundle / "rootfs"), "/", False, ""]
    initrd = state_root / "big" / "initrd.cpio"
    assert initrd.stat().st_size < (40 << 20)  # the rootfs was not packed
    assert urunc(state_root, "start", "big").returncode == 0
    wait_status(state_root, "big", "stopped", timeout=120)
    assert urunc(state_root, "delete", "big").returncode == 0
    assert out.read_text().replace("\r\n", "\n").splitlines() == ["image-data", "done"]
    assert (bundle / "rootfs" / "written.txt").read_text() == "from-guest\n"  # a shared root, written through


def test_unikraft_with_mount_rootfs_gets_the_container_rootfs_as_its_root(
        tmp_path: Path, state_root: Path, volumes: tuple[Path, Path]) -> None:
    if not UKFILES.exists():
        pytest.skip(f"{UKFILES} not present (../shared/unikernels is not here)")
    data, _config = volumes
    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    shutil.copy2(UKFILES, bundle / "rootfs" / "ukfiles")
    (bundle / "rootfs" / "hello.txt").write_text("in-the-image")
    spec = base_spec(["cat:/hello.txt", "write:/new.txt:x", "cat:/data/in.txt"],
                     annotations={"com.urunc.unikernel.unikernelType": "unikraft",
                                  "com.urunc.unikernel.hypervisor": "qemu",
                                  "com.urunc.unikernel.binary": "/ukfiles",
                                  "com.urunc.unikernel.mountRootfs": "true"})
    spec["mounts"] = ENGINE_MOUNTS + [_bind(data, "/data")]
    write_spec(bundle, spec)
    text = _run(state_root, bundle, "ukroot")
    assert "cat /hello.txt: in-the-image" in text, text
    assert "write /new.txt: ok" in text and (bundle / "rootfs" / "new.txt").read_text() == "x"
    assert "cat /data/in.txt: from-host" in text


def test_the_most_volumes_a_guest_takes_all_reach_it(tmp_path: Path, state_root: Path, busybox: Path) -> None:
    volumes = []
    for i in range(16):  # mounts.MAX_SHARES; one more fails create (test_bad_mounts_...)
        d = tmp_path / f"v{i}"
        d.mkdir()
        (d / "f").write_text(f"vol{i}\n")
        volumes.append(_bind(d, f"/vol/{i}", "ro"))
    bundle = _linux_bundle(tmp_path, busybox, "cat /vol/*/f | sort | tr '\\n' ' '", volumes)
    text = _run(state_root, bundle, "many")
    assert text.split() == sorted(f"vol{i}" for i in range(16)), text


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory any user can traverse (pytest's own tmp dirs are root's 0700)."""
    path = Path(tempfile.mkdtemp(prefix="urunc-vol-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_a_monitor_run_as_the_user_serves_only_what_the_user_may_read(
        tmp_path: Path, state_root: Path, open_dir: Path) -> None:
    if not UKFILES.exists():
        pytest.skip(f"{UKFILES} not present (../shared/unikernels is not here)")
    share = open_dir / "share"
    share.mkdir()
    (share / "public").write_text("for-everyone")
    (share / "private").write_text("root-only")
    (share / "private").chmod(0o600)
    bundle = tmp_path / "b"
    (bundle / "rootfs").mkdir(parents=True)
    shutil.copy2(UKFILES, bundle / "rootfs" / "ukfiles")
    spec = base_spec(["cat:/s/public", "cat:/s/private", "write:/s/new:x"],
                     annotations={"com.urunc.unikernel.unikernelType": "unikraft",
                                  "com.urunc.unikernel.hypervisor": "qemu",
                                  "com.urunc.unikernel.binary": "/ukfiles"})
    spec["process"]["user"] = {"uid": 65534, "gid": 65534}  # type: ignore[index]
    spec["mounts"] = [_bind(share, "/s")]
    write_spec(bundle, spec)
    text = _run(state_root, bundle, "nobody")
    assert "cat /s/public: for-everyone" in text, text
    assert "cat /s/private: error" in text and "root-only" not in text
    assert "write /s/new: error" in text and not (share / "new").exists()  # the directory is root's 0755


def test_a_volume_the_monitor_user_cannot_open_fails_start_in_one_line(
        tmp_path: Path, state_root: Path, busybox: Path) -> None:
    hidden = tmp_path / "hidden"  # under pytest's root-only 0700 directory
    hidden.mkdir()
    bundle = _linux_bundle(tmp_path, busybox, "true", [_bind(hidden, "/h")])
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"]["user"] = {"uid": 65534, "gid": 65534}
    write_spec(bundle, spec)
    code, text = create(state_root, bundle, "hid")
    assert code == 0, text
    started = urunc(state_root, "start", "hid")
    assert started.returncode != 0
    assert f"mount /h: uid 65534 cannot read its source {hidden}" in started.stderr, started.stderr
    assert len(started.stderr.strip().splitlines()) == 1
    assert urunc(state_root, "delete", "--force", "hid").returncode == 0
    assert leftovers(state_root) == []
