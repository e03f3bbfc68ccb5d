"""Crash consistency: whatever dies when, `delete --force` recovers and nothing is left.

Leftovers looked for after each case: the state directory, any process whose
command line names this test's --root (the container init is a fork of
`urunc create`, QEMU's argv holds its QMP socket path), mounts, and the test
process's own descriptors.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.bundles import REPO, cgroups_named, container_state, hello_bundle, leftovers, urunc, wait_status
from tests.helpers.netns import Netns
from tests.helpers.procs import processes_naming, state_letter


def _mounts(under: Path) -> list[str]:
    """Mounts strictly below UNDER (other tests may mount and unmount elsewhere meanwhile)."""
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if f"{under}/" in line]


def _fds() -> list[str]:
    return sorted(os.listdir("/proc/self/fd"))


def assert_nothing_left(root: Path, *, fds: list[str] | None = None, ids: tuple[str, ...] = ()) -> None:
    deadline = time.monotonic() + 3  # a fallback watchdog or a dying QEMU may take a moment
    while processes_naming(str(root)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_naming(str(root)) == []
    assert leftovers(root) == []
    assert _mounts(root) == []
    if fds is not None:
        assert _fds() == fds
    assert cgroups_named(*ids) == []


def _status(root: Path, cid: str) -> str:
    return str(container_state(root, cid)["status"])


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    return hello_bundle(tmp_path / "bundle", args=("hello", "wait"))


def create(root: Path, bundle: Path, cid: str) -> subprocess.CompletedProcess[str]:
    """`urunc create` with its output in a file: the init inherits its stdio, as from the shim,
    so pipes would stay open (and a reader blocked) for the container's lifetime."""
    with open(bundle / f"{cid}.log", "w+") as log:
        result = urunc(root, "create", "--bundle", str(bundle), cid, stdin=subprocess.DEVNULL,
                       stdout=log, stderr=log, capture_output=False)
        log.seek(0)
        result.stderr = log.read()
    return result


def _create_argv(root: Path, bundle: Path, cid: str) -> list[str]:
    from tests.helpers.bundles import URUNC

    return [URUNC, "--root", str(root), "create", "--bundle", str(bundle), cid]


# -- create killed at known points ---------------------------------------------------------------

def _read_marks(path: Path, fd_holder: list[int], timeout: float) -> list[str]:
    """Open the timestamps FIFO, take what one or more writers wrote, close it again.

    While the FIFO has no reader, each `_timestamps.mark` blocks in open(): the
    writer is held right before that mark until we read again.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    fd_holder.append(fd)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        # Close as soon as a line is in: while we hold the FIFO open, create runs on freely.
        while not data.endswith(b"\n") and time.monotonic() < deadline:
            if poller.poll(100):
                try:
                    data += os.read(fd, 4096)
                except BlockingIOError:
                    pass
    finally:
        os.close(fd)
        fd_holder.remove(fd)
    return [line.split()[0] for line in data.decode().splitlines() if line.strip()]


CREATE_MARKS = ("spec-loaded", "config-loaded", "plan-built", "init-placed", "create-done")


def _kill_after(root: Path, bundle: Path, fifo: Path, after: str, cid: str) -> str | None:
    """Run create, SIGKILL it once it has passed mark AFTER; the last mark it wrote, or None
    when a later mark was lost and create ran to its end.

    The loss is the FIFO's own race: the writer may open it for its next mark in the moment
    between our reading a line and our closing the read end; what it writes then is dropped
    with the pipe, and it is not held at that mark.
    """
    env = dict(os.environ, URUNC_TIMESTAMPS=str(fifo))
    create = subprocess.Popen(_create_argv(root, bundle, cid), env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    holder: list[int] = []
    seen: list[str] = []
    deadline = time.monotonic() + 20
    try:
        while after not in seen:
            if create.poll() == 0:
                return None  # marks lost: it ran to the end unheld
            assert create.poll() is None, f"create failed before {after}: {seen}"
            assert time.monotonic() < deadline, f"no mark {after}: {seen}"
            seen += _read_marks(fifo, holder, 2)
        # create now runs on to its next mark and blocks there (no reader): kill it there. When
        # it wrote more than one mark while we held the FIFO, the last one it wrote is the point.
        last = [m for m in seen if m in CREATE_MARKS][-1]
        time.sleep(0.3)
        lost = create.poll() == 0 and last != "create-done"
    finally:
        create.send_signal(signal.SIGKILL)
        create.wait(10)
    return None if lost else last


@pytest.mark.parametrize("after", ["spec-loaded", "config-loaded", "plan-built", "init-placed"])
def test_create_killed_after_a_phase_is_recovered_by_delete_force(
        tmp_path: Path, state_root: Path, bundle: Path, after: str) -> None:
    fifo = tmp_path / "marks"
    os.mkfifo(fifo)
    before_fds = _fds()
    for attempt in range(5):
        cid = f"k{attempt}"
        last = _kill_after(state_root, bundle, fifo, after, cid)
        if last is not None:
            break
        # A lost mark: the container is complete. Clean it up and try again.
        assert _status(state_root, cid) == "created"
        assert urunc(state_root, "delete", "--force", cid).returncode == 0
        assert_nothing_left(state_root, fds=before_fds)
    else:
        pytest.fail(f"create was never held after {after} in 5 attempts")
    if last == "init-placed":
        # Killed after the record names the init. The init was doing create's work itself
        # (the front end only waits for its verdict) and dies with it (PR_SET_PDEATHSIG):
        # no init outlives a killed create, and the record says so.
        assert _status(state_root, cid) == "stopped"
    # A mark lost to the same race means create was held later than `last`, never earlier:
    # the directory exists from plan-built on, and may exist already if plan-built was lost.
    created_dir = (state_root / cid).exists()
    assert created_dir or CREATE_MARKS.index(last) < CREATE_MARKS.index("plan-built")
    # Whether or not the directory was made: `delete --force` succeeds, as runc's does, and
    # with no directory there it has nothing to say.
    result = urunc(state_root, "delete", "--force", cid)
    assert result.returncode == 0, (last, result.stderr)
    if not created_dir:
        assert result.stderr == ""
    assert_nothing_left(state_root, fds=before_fds)


def test_create_killed_at_random_moments_is_always_recovered(tmp_path: Path, state_root: Path,
                                                             bundle: Path) -> None:
    rng = random.Random(6)
    for i in range(12):
        cid = f"r{i}"
        create = subprocess.Popen(_create_argv(state_root, bundle, cid), stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.0, 0.08))
        create.send_signal(signal.SIGKILL)
        create.wait(10)
        if (state_root / cid).exists():
            result = urunc(state_root, "delete", "--force", cid)
            assert result.returncode == 0, result.stderr
        assert_nothing_left(state_root)


SPAWN_WINDOW = r"""
import os, sys
from urunc import init
from tests.unit._plans import plan

def record(pid):
    with open(sys.argv[2], "w") as f:
        f.write(str(pid))
    if sys.argv[3] == "die":
        os.kill(os.getpid(), 9)  # create killed once the init exists, before its state names it

# A host kernel (as a Linux guest boots): no rootfs for the init to open the image's files in.
init.spawn(plan(kernel="/bin/sh"), [("pid", ""), ("mount", "")], sys.argv[1], None, record)
"""


@pytest.mark.parametrize("create_dies", [True, False], ids=["create-dies", "control"])
def test_an_init_whose_pid_was_never_recorded_does_not_outlive_create(tmp_path: Path,
                                                                       create_dies: bool) -> None:
    fifo, pid_file = tmp_path / "exec.fifo", tmp_path / "pid"
    os.mkfifo(fifo)
    env = dict(os.environ, PYTHONPATH=f"{REPO / 'src'}:{REPO}")
    subprocess.run([sys.executable, "-c", SPAWN_WINDOW, str(fifo), str(pid_file),
                    "die" if create_dies else "live"], env=env, timeout=20, check=False)
    init_pid = int(pid_file.read_text())
    deadline = time.monotonic() + 3
    while state_letter(init_pid) not in ("gone", "Z") and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        if create_dies:
            assert state_letter(init_pid) in ("gone", "Z")
        else:  # acknowledged: it waits on exec.fifo for `start`, as it should
            assert state_letter(init_pid) == "S"
    finally:
        if state_letter(init_pid) not in ("gone", "Z"):
            os.kill(init_pid, signal.SIGKILL)


# -- damaged state, dying monitor, full disk ----------------------------------------------------

def test_delete_force_with_a_corrupt_state_file_kills_the_init(state_root: Path, bundle: Path) -> None:
    assert create(state_root, bundle, "c1").returncode == 0
    pid = container_state(state_root, "c1")["pid"]
    state_file = state_root / "c1" / "urunc-state.json"
    data = state_file.read_bytes()
    state_file.write_bytes(data[: len(data) // 2])
    broken = urunc(state_root, "state", "c1")
    assert broken.returncode != 0 and "state of container c1 is corrupt" in broken.stderr
    assert urunc(state_root, "delete", "c1").returncode != 0  # without --force it refuses
    result = urunc(state_root, "delete", "--force", "c1")
    assert result.returncode == 0, result.stderr
    assert state_letter(pid) in ("gone", "Z")
    assert_nothing_left(state_root)


@pytest.mark.parametrize("content", ["empty", "half-written-tmp"])
def test_delete_force_removes_a_directory_without_a_record(state_root: Path, content: str) -> None:
    state_root.mkdir()
    (state_root / "c2").mkdir(mode=0o700)
    if content == "half-written-tmp":
        (state_root / "c2" / "urunc-state.json.tmp").write_text('{"id": "c2", "status": "crea')
        os.mkfifo(state_root / "c2" / "exec.fifo")
    assert urunc(state_root, "state", "c2").returncode != 0
    result = urunc(state_root, "delete", "--force", "c2")
    assert result.returncode == 0, result.stderr
    assert_nothing_left(state_root)


def test_a_monitor_that_dies_at_start_leaves_nothing(state_root: Path, bundle: Path) -> None:
    (bundle / "rootfs" / "unikernel" / "hello.elf").write_bytes(b"this is no kernel\n" * 64)
    before_fds = _fds()
    err_file = bundle / "err"
    with open(err_file, "wb") as err:
        assert urunc(state_root, "create", "--bundle", str(bundle), "d1", stdin=subprocess.DEVNULL,
                     stdout=err, stderr=err, capture_output=False).returncode == 0
    urunc(state_root, "start", "d1")  # may fail (QEMU already gone) or succeed (not yet)
    wait_status(state_root, "d1", "stopped", 10)
    assert b"qemu: invalid kernel header" in err_file.read_bytes()  # QEMU said why, on the container's stderr
    result = urunc(state_root, "delete", "d1")
    assert result.returncode == 0, result.stderr
    assert_nothing_left(state_root, fds=before_fds)


@pytest.fixture
def tiny_root(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0711", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs")
    try:
        yield mnt
    finally:
        for entry in mnt.iterdir():
            if entry.is_dir():
                urunc(mnt, "delete", "--force", entry.name)
        subprocess.run(["umount", str(mnt)], check=True)


def _fill(root: Path) -> None:
    with open(root / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def test_full_disk_at_create_fails_in_one_line_and_leaves_nothing(tiny_root: Path, bundle: Path) -> None:
    _fill(tiny_root)
    result = create(tiny_root, bundle, "f1")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1 and "No space left on device" in result.stderr, result.stderr
    assert "internal error" not in result.stderr
    assert sorted(p.name for p in tiny_root.iterdir()) == ["filler"]
    assert processes_naming(str(tiny_root)) == []


def test_full_disk_at_start_is_recovered_by_delete_force(tiny_root: Path, bundle: Path) -> None:
    assert create(tiny_root, bundle, "f2").returncode == 0
    _fill(tiny_root)
    urunc(tiny_root, "start", "f2")  # its state cannot be saved; whatever it answers, delete must cope
    result = urunc(tiny_root, "delete", "--force", "f2")
    assert result.returncode == 0, result.stderr
    (tiny_root / "filler").unlink()
    assert_nothing_left(tiny_root)


# -- many containers ----------------------------------------------------------------------------

class ShimLikeReaper:
    """What containerd's shim does for the containers it starts: it is a child subreaper, so
    each init becomes its child, and it reaps each one as soon as it exits. Without that, a
    killed monitor stays a zombie of whoever inherits it, and a cgroup v1 keeps counting its
    zombies: `delete` could not remove the container's cgroup."""

    PR_SET_CHILD_SUBREAPER = 36

    def __enter__(self) -> ShimLikeReaper:
        import ctypes

        self._libc = ctypes.CDLL(None, use_errno=True)
        assert self._libc.prctl(self.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
        return self

    def watch(self, pid: int) -> None:
        """Reap PID (an init adopted by this process) when it exits, in the background."""
        def reap() -> None:
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass

        threading.Thread(target=reap, daemon=True).start()

    def __exit__(self, *exc: object) -> None:
        self._libc.prctl(self.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def _net_bundle(path: Path, ns: Netns) -> Path:
    """A `hello wait` bundle in a CNI-like network namespace: each start makes a tap and redirects."""
    namespaces = [{"type": t} for t in ("pid", "ipc", "uts", "mount")] + [{"type": "network", "path": ns.path}]
    return hello_bundle(path, args=("hello", "wait"), namespaces=namespaces)


@pytest.fixture
def netnses() -> Iterator[list[Netns]]:
    made: list[Netns] = []
    try:
        yield made
    finally:
        for ns in made:
            ns.delete()


@pytest.fixture
def run_tag() -> str:
    """Container IDs name their cgroups (no cgroupsPath), and cgroups are host-wide: keep ours unique."""
    import secrets

    return secrets.token_hex(3)


def _host_links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def test_a_hundred_lifecycles_leak_nothing(state_root: Path, tmp_path: Path, netnses: list[Netns],
                                           run_tag: str) -> None:
    netnses.append(Netns())
    ns = netnses[0]
    bundle = _net_bundle(tmp_path / "net-bundle", ns)
    before_net = ns.snapshot()
    before_links = _host_links()
    before_fds = _fds()
    began = time.monotonic()
    with ShimLikeReaper() as reaper:
        for i in range(100):
            cid = f"cycle{i}-{run_tag}"
            result = create(state_root, bundle, cid)
            assert result.returncode == 0, result.stderr
            reaper.watch(container_state(state_root, cid)["pid"])
            for argv in (("start", cid), ("kill", cid, "KILL"), ("delete", "--force", cid)):
                result = urunc(state_root, *argv)
                assert result.returncode == 0, (argv, result.stderr)
    took = time.monotonic() - began
    assert_nothing_left(state_root, fds=before_fds, ids=tuple(f"cycle{i}-{run_tag}" for i in range(100)))
    assert ns.snapshot() == before_net  # no tap, qdisc or filter left in the namespace
    assert _host_links() == before_links
    print(f"100 create/start/kill/delete cycles: {took:.1f}s")


def test_twenty_concurrent_containers_leak_nothing(state_root: Path, tmp_path: Path, netnses: list[Netns],
                                                   run_tag: str) -> None:
    ids = [f"many{i}-{run_tag}" for i in range(20)]
    netnses.extend(Netns() for _ in ids)
    bundles = {cid: _net_bundle(tmp_path / cid, ns) for cid, ns in zip(ids, netnses, strict=False)}
    before_net = [ns.snapshot() for ns in netnses]
    before_links = _host_links()
    before_fds = _fds()

    def run(*argv: str) -> None:
        result = urunc(state_root, *argv, timeout=60)
        assert result.returncode == 0, (argv, result.stderr)

    def make(cid: str) -> None:
        result = create(state_root, bundles[cid], cid)
        assert result.returncode == 0, result.stderr

    with ShimLikeReaper() as reaper, ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(make, ids))
        for cid in ids:
            reaper.watch(container_state(state_root, cid)["pid"])
        list(pool.map(lambda cid: run("start", cid), ids))
        pids = [container_state(state_root, cid)["pid"] for cid in ids]
        assert len(set(pids)) == 20
        assert all(_status(state_root, cid) == "running" for cid in ids)
        assert all(os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64") for pid in pids)
        list(pool.map(lambda cid: run("kill", cid, "KILL"), ids[:10]))
        taps = [link for ns in netnses for link in ns.links() if link.startswith("tap")]
        assert len(taps) == 20  # each container made its own tap in its own namespace
        list(pool.map(lambda cid: run("delete", "--force", cid), ids))
    assert_nothing_left(state_root, fds=before_fds, ids=tuple(ids))
    assert [ns.snapshot() for ns in netnses] == before_net
    assert _host_links() == before_links


def test_a_create_failing_after_the_fork_kills_its_init(state_root: Path, bundle: Path) -> None:
    spec = json.loads((bundle / "config.json").read_text())
    spec["hooks"] = {"createRuntime": [{"path": "/bin/false"}]}
    (bundle / "config.json").write_text(json.dumps(spec))
    result = create(state_root, bundle, "h1")
    assert result.returncode != 0
    assert_nothing_left(state_root)
