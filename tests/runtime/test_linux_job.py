"""Template mode of the Linux guest's init (guests/linux/job.c, README "Template mode and the
job"), without any migration: QEMU boots an initramfs of the init, its modules and
/.urunc/template; the init says it is ready and waits on the virtio-serial port urunc.job,
which a test feeds a job (header + newc archives), and the container the job describes runs.

Needs /usr/local/lib/urunc/guest/vmlinux and modules (make install), build/linux/urunc-init
(make -C guests/linux) or the installed one, qemu-system-x86_64 and a static busybox.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import shutil
import socket
import stat
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.helpers.rootfs import busybox_rootfs
from urunc.guests.linux_initrd import InitrdEntry, append_entries, urunc_init_entries, write_initrd

REPO = Path(__file__).resolve().parents[2]
GUEST = Path("/usr/local/lib/urunc/guest")
VMLINUX = GUEST / "vmlinux"
MODULES = GUEST / "modules"
INIT = REPO / "build" / "linux" / "urunc-init"
if not INIT.exists():
    INIT = GUEST / "urunc-init"
BUSYBOX = Path("/bin/busybox")
QEMU = shutil.which("qemu-system-x86_64")
MODULE_NAMES = ["virtio_mmio", "pvpanic_mmio", "virtio_console"]
CMDLINE = ("console=ttyS0 panic=-1 tsc_early_khz=2000000 tsc=reliable cryptomgr.notests "
           "loglevel=3 rdinit=/.urunc/init")
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
READY = b"urunc-template-ready"
TIMEOUT = 60
SEC = 1_900_000_000  # 2030: not what the guest's RTC says, so the job's clock shows

missing = [str(p) for p in (VMLINUX, MODULES / "order", INIT, BUSYBOX) if not p.exists()]
pytestmark = [
    pytest.mark.skipif(bool(missing), reason=f"missing {', '.join(missing)} (run make install, "
                       "make -C guests/linux; install busybox-static)"),
    pytest.mark.skipif(QEMU is None, reason="qemu-system-x86_64 not installed"),
]

# What the application prints: everything the job put in place, one line per fact.
SCRIPT = r"""
echo "stat $(stat -c '%f %u %g %s %Y' /srv/secret /srv/private /srv/link /srv/fifo /srv/empty | tr '\n' ' ')"
echo "link $(readlink /srv/link)"
echo "big $(sha256sum /srv/big | cut -d' ' -f1)"
echo "over $(cat /srv/over)"
echo "replaced $(stat -c %F /srv/was-link) $(cat /srv/was-link)"
echo "devleak $(test -e /dev/keep && echo yes || echo no)"
echo "template $(test -e /.urunc/template && echo left || echo gone)"
echo "date $(date +%s)"
echo "entropy $(cat /proc/sys/kernel/random/entropy_avail)"
echo "uuid $(cat /proc/sys/kernel/random/uuid)"
echo "cwd $(pwd) host $(hostname) user $(id -u):$(id -g)"
echo "listing-begin"
find / -xdev | sort | while read -r f; do echo "$(stat -c '%n %f %u %g %s %Y' "$f")"; done
echo "listing-end"
exit 7
"""


def newc(entries: Sequence[tuple[str, int, bytes]], *, trailer: bool = True) -> bytes:
    """A newc archive of (name, st_mode, data), by hand: names the runtime would never write."""
    out = bytearray()
    for ino, (name, mode, data) in enumerate(list(entries) + ([("TRAILER!!!", 0, b"")] if trailer else []), 1):
        raw = name.encode()
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(raw) + 1, 0)
        head = b"070701" + b"".join(b"%08X" % f for f in fields) + raw + b"\0"
        out += head + b"\0" * (-len(head) % 4) + data + b"\0" * (-len(data) % 4)
    return bytes(out)


def header(size: int, sec: int = SEC, nsec: int = 123_456_789, seed: bytes | None = None) -> bytes:
    seed = os.urandom(32) if seed is None else seed
    line = f"urunc-job/1 {size} {sec} {nsec} {seed.hex()}".encode()
    return line.ljust(255) + b"\n"


@pytest.fixture(scope="module")
def template_initrd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a template boots: the init, its modules and /.urunc/template; no container."""
    entries = urunc_init_entries(init=INIT, args=["template"], modules=MODULES, module_names=MODULE_NAMES)
    entries = [e for e in entries if e.path == "/.urunc/init" or e.path.startswith("/.urunc/modules/")]
    entries.append(InitrdEntry.file("/.urunc/template", b""))
    out = tmp_path_factory.mktemp("template") / "initrd"
    write_initrd(out, None, entries)
    return out


@pytest.fixture(scope="module")
def container(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[InitrdEntry], list[InitrdEntry]]:
    """A busybox rootfs with files of every kind, owners and odd modes; the /.urunc/ files
    that run SCRIPT; and a second archive's entries (later entries win)."""
    root = busybox_rootfs(tmp_path_factory.mktemp("c") / "rootfs")
    srv = root / "srv"
    srv.mkdir()
    (srv / "secret").write_bytes(b"s3cret\n")
    os.chown(srv / "secret", 1234, 5678)
    os.chmod(srv / "secret", 0o4750)
    (srv / "private").mkdir()
    os.chown(srv / "private", 42, 43)
    os.chmod(srv / "private", 0o2710)
    (srv / "link").symlink_to("secret")
    os.chown(srv / "link", 7, 8, follow_symlinks=False)
    os.mkfifo(srv / "fifo", 0o640)
    (srv / "empty").write_bytes(b"")
    os.chmod(srv / "empty", 0o400)
    (srv / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 5))
    (srv / "over").write_text("first\n")
    (srv / "was-link").symlink_to("secret")
    (root / "dev" / "keep").write_text("in the initramfs, under devtmpfs\n")
    entries = urunc_init_entries(init=INIT, args=["sh", "-c", SCRIPT], env=[PATH_ENV], cwd="/srv/private",
                                 hostname="jobhost", user=(0, 0, []))
    second = [InitrdEntry.file("/srv/over", b"second\n", 0o644),
              InitrdEntry.file("/srv/was-link", b"a file now\n", 0o600)]
    return root, entries, second


def write_job(out: Path, rootfs: Path | None, entries: Sequence[InitrdEntry],
              second: Sequence[InitrdEntry] = (), **head: int | bytes) -> bytes:
    """The job the runtime sends: header, the archive of rootfs + /.urunc/ (no init, no
    modules: the template has them), and an appended archive. Returns the archive bytes."""
    archive = out.with_name("archive")
    write_initrd(archive, rootfs, [e for e in entries if e.path != "/.urunc/init"])
    if second:
        append_entries(archive, second)
    data = archive.read_bytes()
    out.write_bytes(header(len(data), **head) + data)  # type: ignore[arg-type]
    return data


def qemu_argv(initrd: Path, chardev: str, console_stdin: bool = False) -> list[str]:
    return [QEMU or "qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot", "-accel", "tcg", "-M", "microvm", "-m", "256", "-smp", "1",
            "-kernel", str(VMLINUX), "-append", CMDLINE, "-initrd", str(initrd),
            "-device", "virtio-serial-device,id=ser,max_ports=2",
            "-chardev", chardev,
            "-device", "virtserialport,bus=ser.0,chardev=job,name=urunc.job,nr=1",
            "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
            "-device", "pvpanic", "-action", "panic=exit-failure"]


def run_piped(tmp: Path, initrd: Path, job: bytes | Path) -> tuple[int, bytes, float]:
    """Boot with the job on a pipe chardev (QEMU reads DIR/job.in; its EOF closes the host
    side). Returns QEMU's status, its console output and the wall time."""
    if isinstance(job, Path):
        if job != tmp / "job.in":
            shutil.copyfile(job, tmp / "job.in")
    else:
        (tmp / "job.in").write_bytes(job)
    (tmp / "job.out").write_bytes(b"")
    start = time.monotonic()
    proc = subprocess.run(qemu_argv(initrd, f"pipe,id=job,path={tmp / 'job'}"), stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=TIMEOUT, check=False)
    return proc.returncode, proc.stdout + proc.stderr, time.monotonic() - start


def init_lines(out: bytes) -> list[bytes]:
    return [line for line in out.splitlines() if b"urunc-init:" in line]


def facts(out: bytes) -> dict[str, str]:
    text = out.decode(errors="replace")
    assert "listing-begin" in text, text[-3000:]
    head, _, rest = text.partition("listing-begin\n")
    listing, _, _ = rest.partition("listing-end")
    found = {}
    for line in head.splitlines():
        key, _, value = line.strip().partition(" ")
        found[key] = value
    found["listing"] = listing
    return found


def listing(text: str) -> dict[str, tuple[str, ...]]:
    """path -> (raw mode, uid, gid, size, mtime), without what a boot itself changes: the
    mount points' contents, the mtime of directories init writes to."""
    entries = {}
    for line in text.splitlines():
        name, *rest = line.split(" ")
        if name.startswith(("/proc/", "/sys/", "/dev/")):
            continue
        if name in ("/", "/tmp", "/dev", "/proc", "/sys"):
            rest[4] = "-"  # init makes mount points there (and /dev, /sys are mounted)
        entries[name] = tuple(rest)
    return entries


def test_good_job_on_a_pipe(tmp_path: Path, template_initrd: Path, container) -> None:
    root, entries, second = container
    seed = os.urandom(32)
    write_job(tmp_path / "job.in", root, entries, second, seed=seed)
    rc, out, took = run_piped(tmp_path, template_initrd, tmp_path / "job.in")
    text = out.decode(errors="replace")
    assert rc == 7, text[-3000:]
    assert not init_lines(out), text[-3000:]
    assert out.index(READY) < out.index(b"stat ")  # ready first, then the container
    assert out.count(READY) == 1
    f = facts(out)
    got = f["stat"].split()
    got[8] = "-"  # a directory's size is the file system's
    assert got == [                          # raw mode, uid, gid, size, mtime (the archive's: 0)
        "89e8", "1234", "5678", "7", "0",    # regular, 04750
        "45c8", "42", "43", "-", "0",        # directory, 02710
        "a1ff", "7", "8", "6", "0",          # symlink
        "11a0", "0", "0", "0", "0",          # fifo, 0640
        "8100", "0", "0", "0", "0",          # empty, 0400
    ], f["stat"]
    assert f["link"] == "secret"
    assert f["big"] == hashlib.sha256((root / "srv" / "big").read_bytes()).hexdigest()
    assert f["over"] == "second"  # the second archive wins
    assert f["replaced"] == "regular file a file now"
    assert f["devleak"] == "no"  # dev/keep went into the initramfs, under devtmpfs
    assert f["template"] == "gone"
    assert SEC <= int(f["date"]) < SEC + TIMEOUT
    assert int(f["entropy"]) == 256, f["entropy"]  # the host's 256 bits credited
    assert f["cwd"] == "/srv/private host jobhost user 0:0"


def test_same_as_a_cold_boot(tmp_path: Path, template_initrd: Path, container) -> None:
    """The same container booted cold (rootfs + /.urunc/ as the initrd) and from the job:
    every file with the same type, mode, owner, size and mtime."""
    root, entries, second = container
    cold_dir = tmp_path / "cold"
    cold_dir.mkdir()
    cold = cold_dir / "initrd"
    write_initrd(cold, root, urunc_init_entries(init=INIT, args=["sh", "-c", SCRIPT], env=[PATH_ENV],
                                                cwd="/srv/private", hostname="jobhost", user=(0, 0, []),
                                                modules=MODULES, module_names=MODULE_NAMES))
    append_entries(cold, second)
    rc_cold, out_cold, _ = run_piped(cold_dir, cold, b"")  # no template: the port is never read
    warm_dir = tmp_path / "warm"
    warm_dir.mkdir()
    write_job(warm_dir / "job.in", root, entries, second)
    rc_warm, out_warm, _ = run_piped(warm_dir, template_initrd, warm_dir / "job.in")
    assert rc_cold == rc_warm == 7, (out_cold[-2000:], out_warm[-2000:])
    cold_facts, warm_facts = facts(out_cold), facts(out_warm)
    for key in ("stat", "link", "big", "over", "replaced", "devleak", "template", "cwd"):
        assert cold_facts[key] == warm_facts[key], key
    a, b = listing(cold_facts["listing"]), listing(warm_facts["listing"])
    assert len(a) > 300
    assert a == b, sorted(set(a.items()) ^ set(b.items()))[:20]


def test_job_over_a_socket_host_connects_later(tmp_path: Path, template_initrd: Path, container) -> None:
    """As after a restore: no host on the port while the init waits (POLLHUP); the host
    connects once the init said it is ready, and sends the job."""
    root, entries, second = container
    job = tmp_path / "job.in"
    write_job(job, root, entries, second)
    sock_path = tmp_path / "job.sock"
    proc = subprocess.Popen(qemu_argv(template_initrd, f"socket,id=job,path={sock_path},server=on,wait=off"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        deadline = time.monotonic() + TIMEOUT
        while READY not in out:
            left = deadline - time.monotonic()
            assert left > 0, out[-2000:]
            ready, _, _ = select.select([proc.stdout], [], [], left)
            if ready:
                data = os.read(proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
                assert data, out[-2000:]
                out += data
        time.sleep(0.5)  # the init waits: nothing connected
        assert proc.poll() is None
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(str(sock_path))
            s.sendall(job.read_bytes())
            rest, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out += rest
    assert proc.returncode == 7, out[-3000:]
    assert not init_lines(out)
    assert facts(out)["over"] == "second"


BAD_HEADERS = {
    "protocol": (b"urunc-job/2 0 0 0 " + b"0" * 64).ljust(255) + b"\n",
    "seed": (b"urunc-job/1 0 1 0 " + b"0" * 63 + b"x").ljust(255) + b"\n",
    "size": (b"urunc-job/1 17179869185 1 0 " + b"0" * 64).ljust(255) + b"\n",
    "newline": (b"urunc-job/1 0 1 0 " + b"0" * 64).ljust(256),
}


@pytest.mark.parametrize("what", sorted(BAD_HEADERS))
def test_bad_header(tmp_path: Path, template_initrd: Path, what: str) -> None:
    rc, out, took = run_piped(tmp_path, template_initrd, BAD_HEADERS[what] + b"\0" * 512)
    lines = init_lines(out)
    assert rc == 125, out[-2000:]
    assert len(lines) == 1 and b"bad job header" in lines[0], out[-2000:]


def test_dotdot_refused(tmp_path: Path, template_initrd: Path) -> None:
    archive = newc([(".urunc", stat.S_IFDIR | 0o755, b""), ("etc", stat.S_IFDIR | 0o755, b""),
                    ("etc/../evil", stat.S_IFREG | 0o644, b"x")])
    rc, out, _ = run_piped(tmp_path, template_initrd, header(len(archive)) + archive)
    lines = init_lines(out)
    assert rc == 125, out[-2000:]
    assert len(lines) == 1 and b'"..' in lines[0] and b"etc/../evil" in lines[0], lines


def test_truncated_job(tmp_path: Path, template_initrd: Path, container) -> None:
    """SIZE promises more than the host sends, then the host closes: one line, no hang."""
    root, entries, _ = container
    archive = tmp_path / "archive"
    write_initrd(archive, None, [e for e in entries if e.path != "/.urunc/init"])
    data = archive.read_bytes()
    rc, out, took = run_piped(tmp_path, template_initrd, header(len(data) + 100_000) + data)
    lines = init_lines(out)
    assert rc == 125, out[-2000:]
    assert len(lines) == 1 and b"job truncated" in lines[0], lines
    assert took < TIMEOUT


def test_archive_past_size(tmp_path: Path, template_initrd: Path) -> None:
    """SIZE ends inside an entry: the rest is not read, the job is refused."""
    archive = newc([("f", stat.S_IFREG | 0o644, b"y" * 4000)])
    rc, out, _ = run_piped(tmp_path, template_initrd, header(200) + archive)
    lines = init_lines(out)
    assert rc == 125, out[-2000:]
    assert len(lines) == 1 and b"past the job's end" in lines[0], lines


def qmp_command(f, command: str, **arguments: object) -> dict:
    f.write(json.dumps({"execute": command, "arguments": arguments}).encode() + b"\n")
    f.flush()
    while True:
        line = f.readline()
        assert line, "QMP closed"
        message = json.loads(line)
        if "return" in message or "error" in message:
            assert "error" not in message, message
            return message["return"]


def test_restored_twice_from_one_snapshot(tmp_path: Path, template_initrd: Path, container) -> None:
    """The real thing: the template is migrated to a file while its init waits (no host on
    the port: a null chardev), and restored twice, each copy with its own job on a pipe. Each
    runs its job; nothing of the template's console output comes back; the copies' random
    bytes differ (the CRNG was reseeded from each job's seed)."""
    root = container[0]
    qmp = tmp_path / "qmp.sock"
    state = tmp_path / "state"
    extra = ["-qmp", f"unix:{qmp},server=on,wait=off"]
    proc = subprocess.Popen(qemu_argv(template_initrd, "null,id=job") + extra, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b""
    try:
        deadline = time.monotonic() + TIMEOUT
        while READY + b"\r\n" not in out:
            left = deadline - time.monotonic()
            assert left > 0, out[-2000:]
            if select.select([proc.stdout], [], [], left)[0]:
                data = os.read(proc.stdout.fileno(), 65536)  # type: ignore[union-attr]
                assert data, out[-2000:]
                out += data
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(str(qmp))
            f = s.makefile("rwb")
            f.readline()
            qmp_command(f, "qmp_capabilities")
            qmp_command(f, "migrate", uri=f"exec:cat > {state}")
            while (status := qmp_command(f, "query-migrate").get("status")) not in ("completed", "failed"):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert status == "completed"
            qmp_command(f, "quit")
        out += proc.communicate(timeout=TIMEOUT)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out.endswith(READY + b"\r\n"), out[-2000:]
    script = "echo start; date +%s; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; hostname; exit $X"
    randoms = []
    for i, code in enumerate((3, 5)):
        d = tmp_path / f"copy{i}"
        d.mkdir()
        entries = urunc_init_entries(init=INIT, args=["sh", "-c", script], env=[PATH_ENV, f"X={code}"],
                                     hostname=f"copy{i}")
        now = time.time_ns()
        write_job(d / "job.in", root, entries, sec=now // 10**9, nsec=now % 10**9)
        (d / "job.out").write_bytes(b"")
        r = subprocess.run(qemu_argv(template_initrd, f"pipe,id=job,path={d / 'job'}") +
                           ["-incoming", f"exec:cat {state}"], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=TIMEOUT, check=False)
        assert r.returncode == code, (r.stdout[-2000:], r.stderr[-2000:])
        lines = r.stdout.split(b"\n")
        assert lines[0] == b"start", r.stdout[:300]  # no rest of the ready line, nothing before
        assert abs(int(lines[1]) - now / 1e9) < TIMEOUT
        assert len(lines[2]) == 64
        assert lines[3] == f"copy{i}".encode()
        randoms.append(lines[2])
    assert randoms[0] != randoms[1]
