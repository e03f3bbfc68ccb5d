"""`urunc exec` into a running Linux guest: the process runs inside the VM (guests/linux/agent.c),
over virtio-serial (no vhost), with its streams, exit status and signals; unikernels refuse.

Each test drives the installed urunc the way containerd's shim does (exec --process FILE
--detach --pid-file) or the way a person does (exec ID CMD...).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers.bundles import DEFAULT_PATH, URUNC, base_spec, create, hello_bundle, urunc, wait_status, write_spec
from tests.helpers.rootfs import busybox_rootfs

GUEST_KERNEL = Path("/usr/local/lib/urunc/guest/vmlinux")


LINUX = {"com.urunc.unikernel.unikernelType": "linux", "com.urunc.unikernel.hypervisor": "qemu"}
APP = "echo app-up; exec sleep 100000"


def _linux_guest(work: Path, cid: str, script: str = APP, env: tuple[str, ...] = (),
                 start: bool = True) -> tuple[Path, Path]:
    """A busybox Linux guest created (and started, its application up) under WORK: (state root,
    console file). The caller deletes it."""
    if not GUEST_KERNEL.exists():
        pytest.skip(f"{GUEST_KERNEL} is not installed (run make install)")
    bundle = work / "b"
    busybox_rootfs(bundle / "rootfs")
    write_spec(bundle, base_spec(["sh", "-c", script], env=[DEFAULT_PATH, *env], annotations=LINUX))
    root, out = work / "state", work / "console"
    code, text = create(root, bundle, cid, console=out)
    assert code == 0, text
    if start:
        assert urunc(root, "start", cid).returncode == 0
        deadline = time.monotonic() + 60
        while "app-up" not in out.read_text(errors="replace"):
            assert time.monotonic() < deadline, out.read_text(errors="replace")
            time.sleep(0.1)
    return root, out


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """One running Linux guest (busybox, its app sleeping) shared by the tests: (state root, id)."""
    root, _out = _linux_guest(tmp_path_factory.mktemp("exec"), "ex", env=("FROM_SPEC=1",))
    yield root, "ex"
    urunc(root, "delete", "--force", "ex")


def _exec(guest: tuple[Path, str], *argv: str, stdin: bytes | None = None,
          timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    root, cid = guest
    return subprocess.run([URUNC, "--root", str(root), "exec", cid, *argv], input=stdin, capture_output=True,
                          timeout=timeout, check=False)


def test_output_streams_and_exit_status_are_the_guest_process(guest: tuple[Path, str]) -> None:
    result = _exec(guest, "sh", "-c", "echo in-guest; echo to-stderr >&2; cat /proc/1/cmdline; exit 5")
    assert result.returncode == 5
    assert result.stdout.split(b"\n")[0] == b"in-guest"
    assert b"/.urunc/init" in result.stdout  # PID 1 of the VM is the guest's init, not the host's
    assert result.stderr == b"to-stderr\n"


def test_stdin_reaches_the_process_and_its_end_closes_it(guest: tuple[Path, str]) -> None:
    data = os.urandom(300_000)
    result = _exec(guest, "sha256sum", stdin=data)
    assert result.returncode == 0
    assert result.stdout.split()[0].decode() == hashlib.sha256(data).hexdigest()


def test_process_gets_the_spec_environment_and_its_own_cwd_and_user(guest: tuple[Path, str]) -> None:
    result = _exec(guest, "sh", "-c", 'echo "$FROM_SPEC"; pwd; id -u; id -g')
    assert result.stdout.decode().split() == ["1", "/"] + ["0", "0"]
    root, cid = guest
    other = subprocess.run([URUNC, "--root", str(root), "exec", "--cwd", "/tmp", "--user", "65534:65534",
                            "--env", "EXTRA=x y", cid, "sh", "-c", 'pwd; id -u; id -g; echo "$EXTRA"'],
                           capture_output=True, timeout=60, check=False)
    assert other.stdout.decode().splitlines() == ["/tmp", "65534", "65534", "x y"], other.stderr


def test_a_missing_command_is_127_with_one_line(guest: tuple[Path, str]) -> None:
    result = _exec(guest, "no-such-command")
    assert result.returncode == 127
    assert result.stderr.decode().strip() == "urunc: exec failed: exec no-such-command: No such file or directory"


def test_fifty_megabytes_of_output_arrive_intact_in_bounded_memory(guest: tuple[Path, str]) -> None:
    root, cid = guest
    size = 50_000_000
    # The relay's peak memory, measured by a parent that runs only it.
    probe = ("import resource, subprocess, sys, hashlib\n"
             "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE)\n"
             "h = hashlib.sha256(); n = 0\n"
             "for chunk in iter(lambda: p.stdout.read(1 << 16), b''):\n"
             "    h.update(chunk); n += len(chunk)\n"
             "print(p.wait(), n, h.hexdigest(), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    result = subprocess.run([sys.executable, "-c", probe, URUNC, "--root", str(root), "exec", cid, "sh", "-c",
                             f"yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c {size}"],
                            capture_output=True, text=True, timeout=300, check=True)
    code, count, digest, max_rss_kib = result.stdout.split()
    expected = hashlib.sha256()
    line = b"0123456789abcdefghijklmnopqrstuvwxyz\n"
    whole, rest = divmod(size, len(line))
    expected.update(line * whole + line[:rest])
    assert (int(code), int(count), digest) == (0, size, expected.hexdigest())
    assert int(max_rss_kib) < 64 * 1024, f"the relay peaked at {max_rss_kib} KiB"


def test_twenty_concurrent_execs_each_get_their_own_output_and_status(guest: tuple[Path, str]) -> None:
    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda i: _exec(guest, "sh", "-c", f"sleep 0.$((RANDOM % 5)); echo n{i}; exit {i}"),
                                range(1, 21)))
    assert [(r.returncode, r.stdout) for r in results] == [(i, f"n{i}\n".encode()) for i in range(1, 21)]


def test_signals_to_the_exec_reach_the_guest_process(guest: tuple[Path, str]) -> None:
    root, cid = guest
    proc = subprocess.Popen([URUNC, "--root", str(root), "exec", cid, "sh", "-c",
                             "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done"],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 7
    assert proc.stdout.read() == b"got-term\n"


def test_killing_the_exec_kills_the_guest_process(guest: tuple[Path, str]) -> None:
    root, cid = guest
    proc = subprocess.Popen([URUNC, "--root", str(root), "exec", cid, "sh", "-c",
                             "echo $$ > /tmp/victim; echo ready; exec sleep 1000"], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.kill()
    proc.wait(10)
    deadline = time.monotonic() + 30
    while True:
        alive = _exec(guest, "sh", "-c", "kill -0 $(cat /tmp/victim) 2>/dev/null && echo alive || echo gone")
        if alive.stdout == b"gone\n":
            break
        assert time.monotonic() < deadline, "the guest process outlived its killed exec"
        time.sleep(0.2)


def test_detached_exec_as_the_shim_runs_it_pid_lives_as_long_as_the_process(
        guest: tuple[Path, str], tmp_path: Path) -> None:
    root, cid = guest
    process = {"args": ["sh", "-c", "sleep 1; echo detached-done; exit 3"], "env": [DEFAULT_PATH], "cwd": "/",
               "user": {"uid": 0, "gid": 0}, "terminal": False}
    (tmp_path / "process.json").write_text(json.dumps(process))
    out = tmp_path / "out"
    with open(out, "wb") as sink:
        result = subprocess.run([URUNC, "--root", str(root), "exec", "--process", str(tmp_path / "process.json"),
                                 "--detach", "--pid-file", str(tmp_path / "pid"), cid],
                                stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=60, check=False)
    assert result.returncode == 0
    pid = int((tmp_path / "pid").read_text())
    assert os.path.exists(f"/proc/{pid}")  # still running: the guest process sleeps
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{pid}") and Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert out.read_bytes() == b"detached-done\n"


def test_exec_into_a_unikernel_or_a_stopped_container_fails_in_one_line(tmp_path: Path) -> None:
    root = tmp_path / "state"
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    code, text = create(root, bundle, "uk")
    assert code == 0, text
    try:
        assert urunc(root, "start", "uk").returncode == 0
        wait_status(root, "uk", "running")
        refused = urunc(root, "exec", "uk", "true")
        assert refused.returncode == 1
        assert refused.stderr.strip() == ("urunc: exec is not supported for unikernel containers "
                                          "(unikraft guest of container uk)")
    finally:
        urunc(root, "delete", "--force", "uk")


def test_a_hostile_guest_writing_garbage_frames_cannot_hang_or_crash_the_exec(tmp_path: Path) -> None:
    root, _out = _linux_guest(tmp_path, "hostile")
    try:
        # Root in the guest kills the agent and writes to every port: an oversized frame, an
        # unknown frame type, then noise, again and again.
        hostile = ("sleep 1; for p in $(pidof init); do [ \"$p\" != 1 ] && kill -9 $p; done; "
                   "while true; do for port in /dev/vport*p*; do "
                   "printf 'O\\377\\377\\377\\377' > $port; printf 'Z\\0\\0\\0\\1x' > $port; "
                   "head -c 4096 /dev/urandom > $port; done 2>/dev/null; sleep 0.05; done")
        started = subprocess.run([URUNC, "--root", str(root), "exec", "hostile", "sh", "-c",
                                  f"setsid sh -c '{hostile}' </dev/null >/dev/null 2>&1 & echo launched"],
                                 capture_output=True, timeout=60, check=False)
        assert started.stdout.startswith(b"launched"), started
        time.sleep(2)
        # Each exec ends, in one line: garbage is refused at once, silence after the answer wait.
        for _ in range(3):
            t0 = time.monotonic()
            result = subprocess.run([URUNC, "--root", str(root), "exec", "hostile", "true"],
                                    capture_output=True, timeout=60, check=False)
            assert time.monotonic() - t0 < 45
            assert result.returncode == 255, result
            lines = result.stderr.decode(errors="replace").strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("urunc: exec channel: the guest"), lines
        assert json.loads(urunc(root, "state", "hostile").stdout)["status"] == "running"
    finally:
        assert urunc(root, "delete", "--force", "hostile").returncode == 0


def test_exec_into_a_linux_guest_not_yet_started_fails_in_one_line(tmp_path: Path) -> None:
    root, _out = _linux_guest(tmp_path, "early", start=False)
    try:
        created = urunc(root, "exec", "early", "true")
        assert created.returncode == 1
        assert created.stderr.strip() == "urunc: cannot exec in a created container early"
    finally:
        urunc(root, "delete", "--force", "early")


def test_sigterm_stops_a_linux_guest_gracefully_through_its_init(tmp_path: Path) -> None:
    """`kill TERM` (docker stop, kubectl delete) reaches the application inside the VM at once,
    instead of an ACPI button a Linux guest's init does not watch and a 10 s grace period."""
    root, out = _linux_guest(tmp_path, "term", "trap 'echo graceful-exit; exit 0' TERM; echo app-up; "
                                               "while true; do sleep 0.1; done")
    try:
        time.sleep(1)  # the exec agent starts with the application
        t0 = time.monotonic()
        assert urunc(root, "kill", "term", "TERM").returncode == 0
        wait_status(root, "term", "stopped", timeout=30)
        assert time.monotonic() - t0 < 8  # the default grace period is 10 s
        assert "graceful-exit" in out.read_text(errors="replace")
    finally:
        urunc(root, "delete", "--force", "term")
