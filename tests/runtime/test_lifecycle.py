"""The OCI lifecycle through the urunc CLI, driven the way containerd's shim drives it."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, container_state, create, hello_bundle, leftovers, urunc, wait_status
from tests.helpers.procs import DEAD, cmdline_of, state_letter


def test_create_start_delete_runs_the_guest_and_leaves_nothing(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "a", "b c", "--", 'q"uote'],
                          env=["PATH=/bin", "K=V", "SPACED=x y"])
    out = tmp_path / "out"
    code, text = create(state_root, bundle, "c1", "--pid-file", str(bundle / "init.pid"), console=out)
    assert code == 0, text
    pid = int((bundle / "init.pid").read_text())
    state = container_state(state_root, "c1")
    assert state["status"] == "created"
    assert state["pid"] == pid
    assert state["bundle"] == str(bundle)
    assert state["annotations"]["com.urunc.unikernel.unikernelType"] == "unikraft"  # type: ignore[index]
    assert urunc(state_root, "start", "c1").returncode == 0
    state = wait_status(state_root, "c1", "stopped")
    assert state["status"] == "stopped"
    text = out.read_text()
    assert "argv[0]=<hello>\nargv[1]=<a>\nargv[2]=<b c>\nargv[3]=<-->\nargv[4]=<q\"uote>\n" in text
    assert "env[1]=<K=V>\nenv[2]=<SPACED=x y>\n" in text
    assert text.rstrip().endswith("bye")
    assert urunc(state_root, "delete", "c1").returncode == 0
    assert leftovers(state_root) == []
    assert urunc(state_root, "state", "c1").returncode != 0


def test_the_container_pid_is_the_monitor_and_gets_no_inherited_descriptor(
        tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    leak_r, leak_w = os.pipe()
    os.set_inheritable(leak_w, True)
    try:
        code, text = create(state_root, bundle, "c2", "--pid-file", str(bundle / "pid"), pass_fds=(leak_w,))
        assert code == 0, text
        leaked_inode = os.fstat(leak_w).st_ino
    finally:
        os.close(leak_w)
    urunc(state_root, "start", "c2", check=True)
    pid = int((bundle / "pid").read_text())
    exe = os.readlink(f"/proc/{pid}/exe")
    assert exe.endswith("qemu-system-x86_64"), exe
    assert container_state(state_root, "c2")["status"] == "running"
    assert f"pipe:[{leaked_inode}]" not in _fd_targets(pid)
    ps = urunc(state_root, "ps", "--format", "json", "c2", check=True)
    assert json.loads(ps.stdout) == [pid]
    # No Python process of ours stays beside the running container.
    pythons = [p for p in os.listdir("/proc") if p.isdigit() and "python" in " ".join(cmdline_of(p)[:1])
               and str(state_root) in " ".join(cmdline_of(p))]
    assert pythons == []
    os.close(leak_r)
    urunc(state_root, "kill", "c2", "KILL", check=True)
    assert wait_status(state_root, "c2", "stopped")["status"] == "stopped"
    assert json.loads(urunc(state_root, "ps", "--format", "json", "c2", check=True).stdout) == []
    urunc(state_root, "delete", "c2", check=True)
    assert leftovers(state_root) == []


def _fd_targets(pid: int) -> list[str]:
    """What the process's descriptors point at (QEMU's threads open and close some meanwhile)."""
    targets = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except FileNotFoundError:
            pass
    return targets


def test_state_machine_refuses_wrong_state_commands(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    assert create(state_root, bundle, "c3")[0] == 0
    code, text = create(state_root, bundle, "c3")
    assert code == 1 and text == "urunc: container c3 already exists\n"
    urunc(state_root, "start", "c3", check=True)
    twice = urunc(state_root, "start", "c3")
    assert twice.returncode != 0 and "cannot start container c3: it is running" in twice.stderr
    busy = urunc(state_root, "delete", "c3")
    assert busy.returncode != 0 and "not stopped" in busy.stderr
    assert container_state(state_root, "c3")["status"] == "running"
    urunc(state_root, "delete", "--force", "c3", check=True)
    assert leftovers(state_root) == []
    for command in (["state", "c3"], ["start", "c3"], ["kill", "c3", "9"], ["delete", "c3"],
                    ["ps", "--format", "json", "c3"]):
        result = urunc(state_root, *command)
        assert result.returncode == 1
        assert result.stderr == "urunc: container c3 does not exist\n"


def test_kill_takes_signal_names_and_numbers_and_rejects_bad_ones(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    assert create(state_root, bundle, "c4")[0] == 0
    urunc(state_root, "start", "c4", check=True)
    bad = urunc(state_root, "kill", "c4", "SIGNOPE")
    assert bad.returncode != 0 and "invalid signal SIGNOPE" in bad.stderr
    assert urunc(state_root, "kill", "c4", "0").returncode != 0
    assert container_state(state_root, "c4")["status"] == "running"
    assert urunc(state_root, "kill", "--all", "c4", "SIGKILL").returncode == 0
    assert wait_status(state_root, "c4", "stopped")["status"] == "stopped"
    stopped = urunc(state_root, "kill", "c4", "9")
    assert stopped.returncode != 0 and "not running" in stopped.stderr
    urunc(state_root, "delete", "c4", check=True)


def test_delete_of_a_created_container_kills_its_init(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b")
    assert create(state_root, bundle, "c5", "--pid-file", str(bundle / "pid"))[0] == 0
    pid = int((bundle / "pid").read_text())
    assert os.path.exists(f"/proc/{pid}")
    urunc(state_root, "delete", "c5", check=True)
    deadline = time.monotonic() + 5
    while state_letter(pid) not in DEAD and time.monotonic() < deadline:
        time.sleep(0.02)
    assert state_letter(pid) in DEAD
    assert leftovers(state_root) == []


def test_run_in_the_foreground_returns_the_monitor_exit_status(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "x"])
    result = urunc(state_root, "run", "--bundle", str(bundle), "c6", timeout=60)
    assert result.returncode == 0, result.stderr
    assert "argv[1]=<x>" in result.stdout
    assert leftovers(state_root) == []


def test_errors_reach_the_log_file_in_json(tmp_path: Path, state_root: Path) -> None:
    log = tmp_path / "log.json"
    result = subprocess.run([URUNC, "--root", str(state_root), "--log", str(log), "--log-format", "json",
                             "create", "--bundle", str(tmp_path / "nowhere"), "c7"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "missing config.json in bundle" in result.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "missing config.json" in entry["msg"] and entry["time"]
    assert leftovers(state_root) == []


@pytest.mark.parametrize("command", ["update", "checkpoint"])  # pause, resume: test_pause.py
def test_unsupported_commands_fail_in_one_line(tmp_path: Path, state_root: Path, command: str) -> None:
    bundle = hello_bundle(tmp_path / "b")
    assert create(state_root, bundle, "c8")[0] == 0
    result = urunc(state_root, command, "c8", timeout=10)
    assert result.returncode == 1
    assert result.stderr == f"urunc: {command} is not supported for unikernel containers (container c8)\n"
    urunc(state_root, "delete", "--force", "c8", check=True)


def test_version_features_and_list(tmp_path: Path, state_root: Path) -> None:
    version = urunc(state_root, "--version", check=True)
    assert version.stdout.startswith("urunc version ")
    features = json.loads(urunc(state_root, "features", check=True).stdout)
    assert features["ociVersionMax"].startswith("1.")
    assert "unikraft" in features["annotations"]["io.urunc.guests"]
    bundle = hello_bundle(tmp_path / "b")
    assert create(state_root, bundle, "c9")[0] == 0
    listed = json.loads(urunc(state_root, "list", "--format", "json", check=True).stdout)
    assert [(s["id"], s["status"]) for s in listed] == [("c9", "created")]
    assert urunc(state_root, "list", "-q", check=True).stdout == "c9\n"
    urunc(state_root, "delete", "--force", "c9", check=True)


def test_console_socket_receives_a_pty_that_carries_the_guest_console(tmp_path: Path, state_root: Path) -> None:
    import array
    import socket

    bundle = hello_bundle(tmp_path / "b", args=["hello", "tty"], terminal=True)
    sock_path = tmp_path / "console.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(sock_path))
    server.listen(1)
    server.settimeout(30)
    proc = subprocess.Popen([URUNC, "--root", str(state_root), "create", "--bundle", str(bundle),
                             "--console-socket", str(sock_path), "c10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    conn, _ = server.accept()
    fds = array.array("i")
    msg, ancdata, _, _ = conn.recvmsg(1024, socket.CMSG_LEN(fds.itemsize))
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: fds.itemsize])
    conn.close()
    server.close()
    assert proc.wait(timeout=30) == 0, proc.stderr.read() if proc.stderr else ""
    assert len(fds) == 1
    master = fds[0]
    urunc(state_root, "start", "c10", check=True)
    output = b""
    deadline = time.monotonic() + 20
    while b"bye" not in output and time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(master)
    assert b"argv[1]=<tty>" in output
    wait_status(state_root, "c10", "stopped")
    urunc(state_root, "delete", "c10", check=True)
