"""Faults seen through containerd: a killed monitor, a restarted containerd, a dead shim.

These tests restart their daemon, so they run their own private containerd
(tests/helpers/containerd.py) rather than the shared session one; its shims
and urunc inherit URUNC_CONFIG with a short SIGTERM grace period.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.containerd import Containerd, _wait_ready, start_containerd, stop_containerd
from urunc.image import build_image

REPO = Path(__file__).resolve().parents[2]
HELLO_ELF = REPO / "build" / "hello" / "hello.elf"
RUNTIME = "io.containerd.urunc.v2"
IMAGE = "docker.io/library/urunc-faults-hello:1"
CONTAINERFILE = """\
FROM scratch
COPY hello.elf /unikernel/hello.elf
LABEL com.urunc.unikernel.unikernelType=unikraft \\
      com.urunc.unikernel.hypervisor=qemu \\
      com.urunc.unikernel.binary=/unikernel/hello.elf
CMD ["hello", "wait"]
"""
GRACE = 1


@pytest.fixture(scope="module")
def ctd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Containerd]:
    if os.geteuid() != 0 or not HELLO_ELF.exists():
        pytest.skip("needs root and build/hello/hello.elf (make guests)")
    work = tmp_path_factory.mktemp("faults")
    (work / "config.toml").write_text(f"[monitors.qemu]\nshutdown_grace_seconds = {GRACE}\n")
    saved = os.environ.get("URUNC_CONFIG")
    os.environ["URUNC_CONFIG"] = str(work / "config.toml")  # start_containerd passes os.environ on
    try:
        daemon = start_containerd()
    finally:
        if saved is None:
            del os.environ["URUNC_CONFIG"]
        else:
            os.environ["URUNC_CONFIG"] = saved
    try:
        context = work / "ctx"
        context.mkdir()
        (context / "hello.elf").write_bytes(HELLO_ELF.read_bytes())
        (context / "Containerfile").write_text(CONTAINERFILE)
        built = build_image(context / "Containerfile", context, "urunc-faults-hello:1", work / "img.tar")
        daemon.ctr("image", "import", str(built.output), timeout=120)
        yield daemon
    finally:
        for problem in stop_containerd(daemon):
            print(f"private containerd teardown: {problem}")


def _task(ctd: Containerd, cid: str) -> tuple[int, str] | None:
    for line in ctd.ctr("task", "ls").stdout.splitlines()[1:]:
        fields = line.split()
        if fields and fields[0] == cid:
            return int(fields[1]), fields[2]
    return None


def _wait_task(ctd: Containerd, cid: str, status: str, timeout: float = 20) -> float:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        task = _task(ctd, cid)
        if task is not None and task[1] == status:
            return time.monotonic() - began
        time.sleep(0.1)
    raise AssertionError(f"task {cid} not {status}: {_task(ctd, cid)}")


def _gone(pid: int) -> bool:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return True
    return data[data.rfind(b")") + 2 :].split()[0] in (b"Z", b"X")


def _runc_root(ctd: Containerd) -> Path:
    return Path("/run/containerd/runc") / ctd.namespace


def _assert_no_trace(ctd: Containerd, cid: str, pid: int) -> None:
    assert _gone(pid)
    assert not (_runc_root(ctd) / cid).exists()
    assert cid not in Path("/proc/self/mountinfo").read_text()
    assert cid not in ctd.ctr("container", "ls", "-q").stdout.split()


def _run_detached(ctd: Containerd, cid: str) -> int:
    ctd.ctr("run", "-d", "--runtime", RUNTIME, IMAGE, cid, timeout=120)
    pid, status = _task(ctd, cid) or (0, "missing")
    assert status == "RUNNING"
    assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
    return pid


def test_monitor_sigkilled_is_exit_137_for_ctr(ctd: Containerd, unique_id: str) -> None:
    run = ctd.ctr_popen("run", "--runtime", RUNTIME, IMAGE, unique_id)
    try:
        deadline = time.monotonic() + 60
        while (task := _task(ctd, unique_id)) is None or task[1] != "RUNNING":
            assert time.monotonic() < deadline and run.poll() is None, run.communicate()
            time.sleep(0.1)
        time.sleep(1.5)  # let the guest print and settle: it is the running VM that dies
        assert _task(ctd, unique_id) == (task[0], "RUNNING")
        os.kill(task[0], signal.SIGKILL)
        out, _err = run.communicate(timeout=30)
        assert run.returncode == 137
        assert "waiting" in out
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert _task(ctd, unique_id) is None  # ctr run deleted its task
    ctd.ctr("container", "rm", unique_id)
    _assert_no_trace(ctd, unique_id, task[0])


def test_monitor_sigkilled_is_stopped_with_137_in_task_ls(ctd: Containerd, unique_id: str) -> None:
    pid = _run_detached(ctd, unique_id)
    try:
        os.kill(pid, signal.SIGKILL)
        _wait_task(ctd, unique_id, "STOPPED")
        status = ctd.ctr("task", "delete", unique_id, check=False)
        assert status.returncode == 0, status.stderr
        assert "exit with non-zero exit code 137" in status.stderr
    finally:
        ctd.ctr("task", "delete", "--force", unique_id, check=False)
        ctd.ctr("container", "rm", unique_id, check=False)
    _assert_no_trace(ctd, unique_id, pid)


def test_ctr_kill_sigterm_stops_the_guest(ctd: Containerd, unique_id: str) -> None:
    pid = _run_detached(ctd, unique_id)
    try:
        began = time.monotonic()
        # SIGTERM: the sample guest never enables its power button, so the signal goes at
        # once (tests/runtime/test_signals.py has the power-button and grace-period cases).
        ctd.ctr("task", "kill", unique_id)
        assert time.monotonic() - began < 2
        _wait_task(ctd, unique_id, "STOPPED")
        ctd.ctr("task", "delete", unique_id, check=False)
    finally:
        ctd.ctr("task", "delete", "--force", unique_id, check=False)
        ctd.ctr("container", "rm", unique_id, check=False)
    _assert_no_trace(ctd, unique_id, pid)


def _restart(ctd: Containerd) -> None:
    """SIGTERM containerd (its shims keep running), start it again on the same root, state, socket."""
    assert ctd.process is not None
    ctd.process.send_signal(signal.SIGTERM)
    ctd.process.wait(timeout=20)
    _restart_stopped(ctd)


def test_containers_survive_a_containerd_restart_and_stay_manageable(ctd: Containerd, unique_id: str) -> None:
    ids = [unique_id + "-a", unique_id + "-b"]
    pids = [_run_detached(ctd, cid) for cid in ids]
    try:
        _restart(ctd)
        for cid, pid in zip(ids, pids, strict=True):
            assert _task(ctd, cid) == (pid, "RUNNING")
            ps = ctd.ctr("task", "ps", cid).stdout
            assert str(pid) in ps.split()
        ctd.ctr("task", "kill", "-s", "SIGKILL", ids[0])
        _wait_task(ctd, ids[0], "STOPPED")
        ctd.ctr("task", "kill", ids[1])  # SIGTERM, graceful path, after the restart too
        _wait_task(ctd, ids[1], "STOPPED")
        for cid in ids:
            ctd.ctr("task", "delete", cid)
            ctd.ctr("container", "rm", cid)
    finally:
        for cid in ids:
            ctd.ctr("task", "delete", "--force", cid, check=False)
            ctd.ctr("container", "rm", cid, check=False)
    for cid, pid in zip(ids, pids, strict=True):
        _assert_no_trace(ctd, cid, pid)


def _shim_of(ctd: Containerd, cid: str) -> int:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and cid.encode() in argv \
                and ctd.namespace.encode() in argv:
            return int(entry)
    raise AssertionError(f"no shim for {cid}")


def test_a_dead_shim_and_restarted_containerd_clean_the_container_up(ctd: Containerd, unique_id: str) -> None:
    pid = _run_detached(ctd, unique_id)
    try:
        shim = _shim_of(ctd, unique_id)
        assert ctd.process is not None
        ctd.process.send_signal(signal.SIGTERM)
        ctd.process.wait(timeout=20)
        os.kill(shim, signal.SIGKILL)
        # containerd finds the shim gone and runs `shim delete`, i.e. `urunc delete --force`.
        ctd.process = None
        _restart_stopped(ctd)
        deadline = time.monotonic() + 20
        while _task(ctd, unique_id) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _task(ctd, unique_id) is None
        deadline = time.monotonic() + 10
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        ctd.ctr("container", "rm", unique_id)
    finally:
        ctd.ctr("task", "delete", "--force", unique_id, check=False)
        ctd.ctr("container", "rm", unique_id, check=False)
    _assert_no_trace(ctd, unique_id, pid)


def _restart_stopped(ctd: Containerd) -> None:
    env = dict(os.environ, PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    with open(ctd.log_path, "ab") as log:
        ctd.process = subprocess.Popen(["containerd", "--config", str(ctd.config_path)],
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                       env=env, close_fds=True, start_new_session=True)
    _wait_ready(ctd, 20)
