"""Linux guests started from a template (guests/linux_template.py, issue 16): the same container
as a cold boot, siblings with their own randomness and clock, and every bad template refused in
one line with a cold boot instead.

Each test runs the installed urunc with its own config.toml (``URUNC_CONFIG``) naming a
templates directory of its own, and real QEMU (TCG) guests in a real network namespace. A
packed rootfs is in the template (keyed by its tree): containers of one image share one.
"""

from __future__ import annotations

import difflib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import DEFAULT_PATH, URUNC, base_spec, write_spec
from tests.helpers.netns import GUEST_IP, Netns, sh
from tests.helpers.rootfs import busybox_rootfs

GUEST_KERNEL = Path("/usr/local/lib/urunc/guest/vmlinux")
LINUX = {"com.urunc.unikernel.unikernelType": "linux", "com.urunc.unikernel.hypervisor": "qemu"}
# What the container sees, printed by its application; the clock and random bytes are checked apart.
FINGERPRINT = r"""
# Ports and the card's carrier come up asynchronously in a cold boot: compare once settled.
i=0; while [ $i -lt 100 ] && { [ "$(ls /sys/class/virtio-ports | wc -l)" != 17 ] ||
    [ "$(cat /sys/class/net/eth0/operstate 2>/dev/null)" != up ]; }; do sleep 0.1; i=$((i+1)); done
echo "args: $0 $*"; env | sort; echo "cwd: $(pwd)"; id; hostname
grep MemTotal /proc/meminfo; cat /proc/cmdline; cut -d' ' -f1 /proc/modules | sort | tr '\n' ' '; echo
grep -v '^none' /proc/mounts | cut -d' ' -f1-4 | sort
ls -lan / | awk '{print $1, $3, $4, $NF}'; ls /dev | tr '\n' ' '; echo
ls -lan --full-time /bin /etc /.urunc /www | grep -v ' \.\.$'
stat -c '%n %a %u %g %s %Y' /bin/busybox /www/index.html /etc/passwd
ip -o -4 addr show | sed 's/valid_lft.*//'; ip -o link show | sed 's/qlen.*//'; ip route
cat /etc/resolv.conf 2>&1; ls /sys/class/virtio-ports | wc -l
echo "clock: $(date +%s)"; echo "random: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' ')"
"""


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """(the templates directory, the environment urunc runs with)."""
    if not GUEST_KERNEL.exists():
        pytest.skip(f"{GUEST_KERNEL} is not installed (run make install)")
    templates = tmp_path / "templates"
    config = tmp_path / "config.toml"
    config.write_text(f'[templates]\nenabled = true\ndir = "{templates}"\nmax_size_mb = 2048\n')
    yield templates, dict(os.environ, URUNC_CONFIG=str(config))


def _bundle(path: Path, script: str, netns: Netns | None, env: tuple[str, ...] = (),
            rootfs: Path | None = None) -> Path:
    """A busybox Linux-guest bundle; ROOTFS: one shared with another bundle (the same image),
    else its own."""
    path.mkdir(parents=True, exist_ok=True)
    rootfs = rootfs or path / "rootfs"
    if not rootfs.exists():
        busybox_rootfs(rootfs)
        (rootfs / "www").mkdir()
        (rootfs / "www" / "index.html").write_text("warm hello\n")
        os.chmod(rootfs / "www" / "index.html", 0o640)
        os.chown(rootfs / "www" / "index.html", 123, 456)
        (rootfs / "etc").mkdir(exist_ok=True)
        (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/:/bin/sh\n")
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
    if netns is not None:
        namespaces.append({"type": "network", "path": netns.path})
    spec = base_spec(["sh", "-c", script, "argv0", "a", "b c"], env=[DEFAULT_PATH, "GREETING=hi there", *env],
                     annotations=LINUX, namespaces=namespaces)
    spec["hostname"] = "warmhost"
    spec["root"] = {"path": str(rootfs)}
    write_spec(path, spec)
    return path


def _urunc(root: Path, env: dict[str, str], *args: str, timeout: float = 60,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([URUNC, "--root", str(root), *args], text=True, capture_output=True,
                          env=env, timeout=timeout, check=False, **kwargs)  # type: ignore[call-overload]


def _run(work: Path, env: dict[str, str], cid: str, bundle: Path, timeout: float = 240) -> tuple[int, str, str]:
    """`urunc run` of BUNDLE: (exit status, console output, the runtime's log)."""
    root, log = work / "state", work / f"{cid}.log"
    result = subprocess.run([URUNC, "--root", str(root), "--log", str(log), "run", "--bundle", str(bundle), cid],
                            stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=timeout, check=False)
    _urunc(root, env, "delete", "--force", cid)
    return (result.returncode, result.stdout.decode(errors="replace") + result.stderr.decode(errors="replace"),
            log.read_text() if log.exists() else "")


def _fields(output: str) -> tuple[list[str], int, str]:
    """(the fingerprint lines, the guest's clock, its random bytes)."""
    lines = [line.rstrip("\r") for line in output.splitlines()]
    clock = next(int(line.split()[1]) for line in lines if line.startswith("clock: "))
    random = next(line.split()[1] for line in lines if line.startswith("random: "))
    return [line for line in lines if not line.startswith(("clock: ", "random: "))], clock, random


def test_a_template_start_gives_the_container_what_a_cold_boot_gives(
        tmp_path: Path, setup: tuple[Path, dict[str, str]]) -> None:
    templates, env = setup
    netns = Netns()
    try:
        bundle = _bundle(tmp_path / "b", FINGERPRINT + "exit 7", netns)
        cold_env = dict(env, URUNC_CONFIG=str(tmp_path / "none.toml"))
        cold = _run(tmp_path, cold_env, "cold", bundle)
        first = _run(tmp_path, env, "warm1", bundle)  # makes the template, then starts from it
        made = [p.name for p in templates.iterdir() if not p.name.startswith(".")]
        second = _run(tmp_path, env, "warm2", bundle)
    finally:
        netns.delete()
    assert cold[0] == 7, cold[1]
    assert "booting cold" not in first[2] and "booting cold" not in second[2], first[2] + second[2]
    # A network namespace may have eth0 at start or not: the templates with and without a card.
    assert len(made) == 2, made
    assert all(f"template {key}: made" in first[2] for key in made) and ": made" not in second[2]
    cold_lines, cold_clock, cold_random = _fields(cold[1])
    for status, output, _log in (first, second):
        assert status == 7, output
        lines, clock, random = _fields(output)
        assert lines == cold_lines, "\n".join(difflib.unified_diff(cold_lines, lines, lineterm=""))
        assert abs(clock - time.time()) < 30
        assert random != cold_random
    assert _fields(first[1])[2] != _fields(second[1])[2]
    assert f"inet {GUEST_IP}/24" in cold[1]


def test_the_monitor_restores_instead_of_booting_and_siblings_differ(
        tmp_path: Path, setup: tuple[Path, dict[str, str]]) -> None:
    """Two containers of one image running at once from one template: each QEMU was started
    with -incoming, serves HTTP at its address, and has its own random bytes."""
    templates, env = setup
    script = "echo random: $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' '); exec httpd -f -p 80 -h /www"
    nets = [Netns(), Netns()]
    root = tmp_path / "state"
    try:
        outputs = []
        for index, netns in enumerate(nets):
            bundle = _bundle(tmp_path / f"b{index}", script, netns, rootfs=tmp_path / "rootfs")
            console = tmp_path / f"console{index}"
            with open(console, "wb") as sink:
                created = subprocess.run([URUNC, "--root", str(root), "create", "--bundle", str(bundle), f"s{index}"],
                                         stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env, timeout=240,
                                         check=False)
            assert created.returncode == 0, console.read_text()
            assert _urunc(root, env, "start", f"s{index}").returncode == 0
            outputs.append(console)
        for index, netns in enumerate(nets):
            pid = int(_urunc(root, env, "state", f"s{index}").stdout.split('"pid": ')[1].split(",")[0])
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            assert b"-incoming" in argv and b"defer" in argv
            page = ""
            deadline = time.monotonic() + 60
            while "warm hello" not in page and time.monotonic() < deadline:
                page = sh("ip", "netns", "exec", netns.peer, "busybox", "wget", "-q", "-O", "-",
                          f"http://{GUEST_IP}/index.html", check=False)
                time.sleep(0.2)
            assert page == "warm hello\n"
        randoms = []
        for console in outputs:
            deadline = time.monotonic() + 60
            while "random: " not in console.read_text(errors="replace"):
                assert time.monotonic() < deadline
                time.sleep(0.1)
            randoms.append(console.read_text(errors="replace").split("random: ")[1].split()[0])
        assert randoms[0] != randoms[1]
        assert len([p for p in templates.iterdir() if not p.name.startswith(".")]) == 2  # with and without a card
    finally:
        for index in range(len(nets)):
            _urunc(root, env, "delete", "--force", f"s{index}")
        for netns in nets:
            netns.delete()


def _template_files(templates: Path) -> Path:
    [made] = [p for p in templates.iterdir() if not p.name.startswith(".")]
    return made


@pytest.mark.parametrize("damage", ["truncated state", "tampered state", "rewritten memory", "foreign"])
def test_a_bad_template_is_refused_in_one_line_and_the_container_boots_cold(
        tmp_path: Path, setup: tuple[Path, dict[str, str]], damage: str) -> None:
    templates, env = setup
    bundle = _bundle(tmp_path / "b", "echo ran-ok; exit 3", None)
    status, output, log = _run(tmp_path, env, "first", bundle)
    assert status == 3 and "ran-ok" in output, output
    made = _template_files(templates)
    if damage == "truncated state":
        os.truncate(made / "state", (made / "state").stat().st_size // 2)
    elif damage == "tampered state":
        data = bytearray((made / "state").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (made / "state").write_bytes(bytes(data))
    elif damage == "rewritten memory":
        with open(made / "ram", "r+b") as f:
            f.seek(4096)
            f.write(f.read(1))  # the same byte: only the file's identity says it was touched
    else:  # a template made for another kernel, under this key
        meta = (made / "meta.json").read_text()
        assert str(GUEST_KERNEL) in meta
        (made / "meta.json").write_text(meta.replace(str(GUEST_KERNEL), str(GUEST_KERNEL) + "-other"))
    status, output, log = _run(tmp_path, env, "second", bundle)
    assert status == 3 and "ran-ok" in output, output
    refused = [line for line in log.splitlines() if "booting cold" in line]
    assert len(refused) == 1, log
    assert made.name in refused[0]
    assert made.exists()  # refused, not replaced behind the back of a container using it
    assert not [p for p in templates.iterdir() if p.name.startswith(".new")]


def test_a_full_disk_while_making_a_template_boots_cold_and_leaves_nothing(
        tmp_path: Path, setup: tuple[Path, dict[str, str]]) -> None:
    templates, env = setup
    templates.mkdir(mode=0o700)
    sh("mount", "-t", "tmpfs", "-o", "size=64m,mode=0700", "tmpfs", str(templates))
    try:
        bundle = _bundle(tmp_path / "b", "echo ran-ok; exit 5", None)
        status, output, log = _run(tmp_path, env, "full", bundle)
        assert status == 5 and "ran-ok" in output, output
        refused = [line for line in log.splitlines() if "booting cold" in line]
        assert len(refused) == 1 and "No space left on device" in refused[0], log
        assert sorted(p.name for p in templates.iterdir()) in ([], [".lock"])
    finally:
        sh("umount", str(templates), check=False)


def test_template_list_and_rm(tmp_path: Path, setup: tuple[Path, dict[str, str]]) -> None:
    templates, env = setup
    bundle = _bundle(tmp_path / "b", "exit 0", None)
    made = _urunc(tmp_path / "state", env, "template", "create", "--bundle", str(bundle), timeout=240)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert (templates / key / "meta.json").exists()
    (tmp_path / "b" / "rootfs" / "www" / "index.html").write_text("another image\n")
    other = _urunc(tmp_path / "state", env, "template", "create", "--bundle", str(bundle), timeout=240)
    assert other.returncode == 0 and other.stdout.strip() != key  # the rootfs is in the template
    assert _urunc(tmp_path / "state", env, "template", "rm", other.stdout.strip()).returncode == 0
    listed = _urunc(tmp_path / "state", env, "template", "list")
    assert listed.returncode == 0 and key in listed.stdout and "damaged" not in listed.stdout
    assert oct((templates / key / "ram").stat().st_mode & 0o777) == "0o600"
    assert _urunc(tmp_path / "state", env, "template", "rm", key).returncode == 0
    assert not (templates / key).exists()
    missing = _urunc(tmp_path / "state", env, "template", "rm", key)
    assert missing.returncode != 0 and key in missing.stderr and len(missing.stderr.splitlines()) == 1
