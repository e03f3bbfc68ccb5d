"""The native front end (src/front/urunc.c): `start`, `state` and create's init without an interpreter,
the rest in Python (tests/front/ holds the front end to Python without QEMU)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.bundles import (
    HELLO_ANNOTATIONS,
    URUNC,
    container_state,
    create,
    hello_bundle,
    leftovers,
    urunc,
)
from tests.helpers.procs import wait_gone


def test_urunc_is_the_native_front_and_python_answers_the_rest(state_root: Path) -> None:
    with open(URUNC, "rb") as f:
        assert f.read(4) == b"\x7fELF"
    assert urunc(state_root, "--version", check=True).stdout.startswith("urunc version ")
    missing = urunc(state_root, "start", "nope")
    assert (missing.returncode, missing.stderr) == (1, "urunc: container nope does not exist\n")


def test_the_installed_runtime_makes_its_linux_calls_through_the_c_extension() -> None:
    # The ctypes fallback works too, but costs every container init ~4.5 ms of imports.
    lib = Path(URUNC).resolve().parent.parent / "lib" / "urunc"
    interpreter = (lib / "urunc-py").read_text().splitlines()[0][2:].split()[0]
    probe = ("import sys; sys.path.insert(0, sys.argv[1]); from urunc.host import syscalls; "
             "print(syscalls._impl.__name__, 'ctypes' in sys.modules)")
    out = subprocess.run([interpreter, "-I", "-S", "-c", probe, str(lib / "python")],
                         capture_output=True, text=True, check=True).stdout
    assert out == "urunc.host._linux False\n"


def test_a_start_error_reaches_stderr_and_the_json_log(tmp_path: Path, state_root: Path) -> None:
    qemu = shutil.which("qemu-system-x86_64")
    assert qemu is not None
    monitor = tmp_path / "qemu-that-vanishes"
    monitor.symlink_to(qemu)
    config = tmp_path / "config.toml"
    config.write_text(f'[monitors.qemu]\npath = "{monitor}"\n')
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    env = {**os.environ, "URUNC_CONFIG": str(config)}
    with open(bundle / "console.log", "wb") as sink:
        created = subprocess.run([URUNC, "--root", str(state_root), "create", "--bundle", str(bundle), "f1"],
                                 stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, env=env, timeout=30)
    assert created.returncode == 0, (bundle / "console.log").read_text()
    monitor.unlink()  # the init's execve will fail, after `start` released it
    log = tmp_path / "log.json"
    started = urunc(state_root, "--log", str(log), "--log-format", "json", "start", "f1")
    assert started.returncode == 1
    assert started.stderr.startswith("urunc: ") and started.stderr.count("\n") == 1
    assert str(monitor) in started.stderr
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and str(monitor) in entry["msg"] and entry["time"].endswith("Z")
    assert container_state(state_root, "f1")["status"] == "stopped"
    urunc(state_root, "delete", "f1", check=True)
    assert leftovers(state_root) == []


def test_start_twice_and_start_of_a_stopped_container_get_python_s_answers(tmp_path: Path,
                                                                            state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello"])
    assert create(state_root, bundle, "f2")[0] == 0
    assert urunc(state_root, "start", "f2").returncode == 0
    again = urunc(state_root, "start", "f2")
    assert again.returncode == 1
    assert again.stderr.startswith("urunc: cannot start container f2: it is ")
    urunc(state_root, "delete", "--force", "f2", check=True)


def test_create_starts_the_init_alongside_and_never_leaves_an_unused_one(tmp_path: Path,
                                                                         state_root: Path) -> None:
    from tests.helpers.procs import processes_naming

    before = set(processes_naming("urunc-init"))
    # No PID namespace: the container's PID is the process the front end started (a fallback
    # init, started by Python itself, would run `-c` code instead of the urunc-init script).
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"),
                          namespaces=[{"type": t} for t in ("ipc", "uts", "mount")])
    code, text = create(state_root, bundle, "pw1")
    assert code == 0, text
    pid = container_state(state_root, "pw1")["pid"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert any(arg.endswith(b"/urunc-init") for arg in argv), argv
    urunc(state_root, "delete", "--force", "pw1", check=True)
    # A new PID namespace: the front end starts the init as its PID 1 (no intermediate process).
    in_pidns = hello_bundle(tmp_path / "p", args=("hello", "wait"))
    code, text = create(state_root, in_pidns, "pw3")
    assert code == 0, text
    pid = container_state(state_root, "pw3")["pid"]
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert any(arg.endswith(b"/urunc-init") for arg in argv), argv
    nspid = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("NSpid:"))
    assert nspid.split()[1:] == [str(pid), "1"]
    urunc(state_root, "start", "pw3", check=True)
    assert Path(f"/proc/{pid}/exe").resolve().name == "qemu-system-x86_64"
    urunc(state_root, "delete", "--force", "pw3", check=True)
    # A unikernel bundle that fails at create, and a bundle runc takes: the init started
    # for them is killed and reaped before create exits or execs runc.
    bad = hello_bundle(tmp_path / "bad", annotations={"com.urunc.unikernel.hypervisor": "nope"})
    code, text = create(state_root, bad, "pw2")
    assert code != 0 and "nope" in text
    assert set(processes_naming("urunc-init", zombies=True)) - before == set()
    assert leftovers(state_root) == []


@pytest.fixture(scope="module")
def native_only(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The front end built without a Python to fall back to: what it does, it did itself."""
    from tests.helpers.front import build

    return build(tmp_path_factory.mktemp("front") / "urunc-native-only", "/nonexistent/urunc-py")


def _run(front: Path | str, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """FRONT (a urunc binary or entry script) with its own --root, output captured."""
    return subprocess.run([str(front), "--root", str(root), *args], capture_output=True, text=True,
                          check=False, timeout=30)


def _python_s(result: subprocess.CompletedProcess[str]) -> bool:
    """Whether NATIVE_ONLY handed the command on (to a Python it does not have)."""
    return result.returncode == 1 and "cannot run /nonexistent/urunc-py" in result.stderr


def test_native_state_prints_what_python_prints_in_every_status(tmp_path: Path, state_root: Path,
                                                                native_only: Path) -> None:
    lib = Path(URUNC).resolve().parent.parent / "lib" / "urunc"

    def both(cid: str, native_answers: bool = True) -> tuple[str, str]:
        native = _run(native_only, state_root, "state", cid)
        python_run = _run(lib / "urunc-py", state_root, "state", cid)
        assert python_run.returncode == 0, python_run.stderr
        python = python_run.stdout
        if not native_answers:
            assert _python_s(native)
            return python, python
        assert native.returncode == 0, native.stderr
        return native.stdout, python

    odd = {"org.example/quote": 'say "hi"\\ \t tab', "org.example/unicode": "café ☕", "z": ""}
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"), annotations=odd)
    code, text = create(state_root, bundle, "st1")
    assert code == 0, text
    statuses = []
    for step in ("created", "start", "kill"):
        if step == "start":
            urunc(state_root, "start", "st1", check=True)
        elif step == "kill":
            urunc(state_root, "kill", "st1", "KILL", check=True)
            deadline = time.monotonic() + 10
            while json.loads(both("st1")[1])["status"] != "stopped" and time.monotonic() < deadline:
                time.sleep(0.05)
        native, python = both("st1")
        assert native == python
        statuses.append(json.loads(native)["status"])
    assert statuses == ["created", "running", "stopped"]
    assert json.loads(native)["annotations"]["org.example/unicode"] == "café ☕"
    # No annotations at all, and a record the native reader does not vouch for: Python answers.
    plain = hello_bundle(tmp_path / "p")
    spec = json.loads((plain / "config.json").read_text())
    spec["annotations"] = {}
    (plain / "config.json").write_text(json.dumps(spec))
    (plain / "rootfs" / "urunc.json").write_text(json.dumps(
        {k: base64.b64encode(v.encode()).decode() for k, v in HELLO_ANNOTATIONS.items()}))
    code, text = create(state_root, plain, "st2")
    assert code == 0, text
    native, python = both("st2")
    assert native == python and json.loads(native)["annotations"] == {}
    record = state_root / "st2" / "urunc-state.json"
    data = json.loads(record.read_text())
    data["pid_start"] = None
    record.write_text(json.dumps(data))
    native, python = both("st2", native_answers=False)
    # no start time, no process: a PID alone never names the container's init (issue 12, item 7)
    assert (json.loads(python)["status"], json.loads(python)["pid"]) == ("stopped", 0)
    for cid in ("st1", "st2"):
        urunc(state_root, "delete", "--force", cid, check=True)
    missing = _run(URUNC, state_root, "state", "st1")
    assert (missing.returncode, missing.stderr) == (1, "urunc: container st1 does not exist\n")
    assert _python_s(_run(native_only, state_root, "state", "st1"))  # no answer to print: Python's words


def test_create_in_a_joined_pid_namespace_takes_the_two_process_path(tmp_path: Path, state_root: Path) -> None:
    # The init cannot be PID 1 of a namespace it joins: it asks for Python's create, which
    # hands it the plan and takes the PID of the child it forks inside that namespace.
    holder = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sleep", "60"])
    try:
        deadline = time.monotonic() + 10
        inner = 0
        while not inner and time.monotonic() < deadline:
            children = Path(f"/proc/{holder.pid}/task/{holder.pid}/children").read_text().split()
            inner = int(children[0]) if children else 0
            time.sleep(0.02)
        assert inner
        namespaces = [{"type": "pid", "path": f"/proc/{inner}/ns/pid"},
                      *({"type": t} for t in ("ipc", "uts", "mount"))]
        bundle = hello_bundle(tmp_path / "b", namespaces=namespaces)
        code, text = create(state_root, bundle, "jp1")
        assert code == 0, text
        pid = container_state(state_root, "jp1")["pid"]
        assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{inner}/ns/pid")
        urunc(state_root, "start", "jp1", check=True)
        deadline = time.monotonic() + 30
        while "bye" not in (bundle / "console.log").read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "hello from the urunc sample unikernel" in (bundle / "console.log").read_text()
        urunc(state_root, "delete", "--force", "jp1", check=True)
    finally:
        holder.kill()
        holder.wait()


def test_a_bundle_the_front_end_took_for_a_unikernel_still_goes_to_runc(tmp_path: Path, state_root: Path) -> None:
    from tests.helpers.rootfs import busybox_rootfs

    bundle = tmp_path / "bb"
    busybox_rootfs(bundle / "rootfs")
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    spec = json.loads((bundle / "config.json").read_text())
    spec["process"].update(terminal=False, args=["/bin/sleep", "30"])
    spec["process"]["env"].append("NOTE=mentions com.urunc.unikernel.binary but is no annotation")
    (bundle / "config.json").write_text(json.dumps(spec))
    code, text = create(state_root, bundle, "rc1")
    assert code == 0, text
    assert (state_root / "rc1" / "state.json").exists()  # runc's record, not ours
    state = container_state(state_root, "rc1")
    assert state["status"] == "created"
    assert Path(f"/proc/{state['pid']}/cmdline").read_bytes().startswith(b"runc")
    urunc(state_root, "delete", "--force", "rc1", check=True)


def test_kill_and_delete_are_python_s(tmp_path: Path, state_root: Path, native_only: Path) -> None:
    # Neither is on a path containerd waits on for a guest's output: the front end hands both
    # over, whatever the container's state (Python's kill and delete: tests/front, test_damaged_state).
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"))
    assert create(state_root, bundle, "nk1")[0] == 0
    for args in (("kill", "nk1", "KILL"), ("kill", "--all", "nk1", "9"), ("delete", "nk1"), ("delete", "-f", "nk1")):
        assert _python_s(_run(native_only, state_root, *args)), args
    pid = container_state(state_root, "nk1")["pid"]
    assert _run(URUNC, state_root, "kill", "nk1", "KILL").returncode == 0
    assert wait_gone(pid)
    stopped = _run(URUNC, state_root, "kill", "nk1", "KILL")
    assert (stopped.returncode, stopped.stderr) == (1, "urunc: container nk1 is not running: it is stopped\n")
    assert _run(URUNC, state_root, "kill", "--all", "nk1", "KILL").returncode == 0  # runc's rule
    assert _run(URUNC, state_root, "delete", "nk1").returncode == 0
    assert leftovers(state_root) == []


CATCHER = r"""
import os, signal, sys
def caught(num, frame):
    os.write(1, b"%d\n" % num)
for num in range(1, 65):
    if num not in (signal.SIGKILL, signal.SIGSTOP, 32, 33):
        signal.signal(num, caught)
os.write(1, b"ready\n")
while True:
    signal.pause()
"""


def test_kill_reads_signal_names_and_numbers(tmp_path: Path, state_root: Path) -> None:
    from urunc.host import proc

    # The record is pointed at a process that reports what it receives: every name and number
    # goes through the installed `urunc kill` to a real signal, then is compared with the table.
    bundle = hello_bundle(tmp_path / "b", args=("hello", "wait"))
    assert create(state_root, bundle, "nn1")[0] == 0
    record_path = state_root / "nn1" / "urunc-state.json"
    record = json.loads(record_path.read_text())
    catcher = subprocess.Popen([sys.executable, "-c", CATCHER], stdout=subprocess.PIPE, text=True)
    try:
        assert catcher.stdout is not None and catcher.stdout.readline() == "ready\n"
        # in the container's cgroup, as its monitor would be: a start time alone is not enough
        for resource in json.loads((state_root / "nn1" / "resources.json").read_text()):
            for leaf in resource.get("leaves", []):
                Path(leaf, "cgroup.procs").write_text(str(catcher.pid))
        record_path.write_text(json.dumps({**record, "pid": catcher.pid, "pid_start": proc.start_time(catcher.pid)}))
        names = [n for n in proc._SIGNALS if n not in ("KILL", "STOP")]
        for text in [*names, *(f"SIG{n}" for n in names), *(f"sig{n.lower()}" for n in names),
                     *(str(n) for n in range(1, 65) if n not in (9, 19, 32, 33))]:
            result = _run(URUNC, state_root, "kill", "nn1", text)
            assert result.returncode == 0, (text, result.stderr)
            assert catcher.stdout.readline() == f"{proc.parse_signal(text)}\n", text
    finally:
        catcher.kill()
        catcher.wait()
        record_path.write_text(json.dumps(record))
    urunc(state_root, "delete", "--force", "nn1", check=True)
    assert leftovers(state_root) == []


def _stop(root: Path, cid: str) -> None:
    pid = container_state(root, cid)["pid"]
    urunc(root, "kill", cid, "KILL", check=True)
    assert isinstance(pid, int) and wait_gone(pid)


def test_delete_removes_a_stopped_container_s_cgroups_and_state(tmp_path: Path, state_root: Path) -> None:
    from tests.helpers.bundles import cgroups_named

    parent = f"urunc-front-{os.getpid()}"
    # Two containers under one new parent cgroup, made by the first: deleting the first leaves
    # the parent, still busy with the second (an ancestor may stay; a container's own may not).
    for cid in ("nd1", "nd2"):
        bundle = hello_bundle(tmp_path / cid, args=("hello", "wait"), cgroups_path=f"/{parent}/{cid}")
        assert create(state_root, bundle, cid)[0] == 0
    urunc(state_root, "start", "nd1", check=True)
    assert cgroups_named("nd1", "nd2", parent)
    for cid in ("nd1", "nd2"):  # running, then created: both stopped by a SIGKILL
        _stop(state_root, cid)
    result = _run(URUNC, state_root, "delete", "nd1")
    assert result.returncode == 0, result.stderr
    assert cgroups_named("nd1") == [] and cgroups_named(parent)  # nd2 still in the parent
    assert not (state_root / "nd1").exists()
    result = _run(URUNC, state_root, "delete", "-f", "nd2")
    assert result.returncode == 0, result.stderr
    assert cgroups_named("nd2") == []
    # nd1 made the parent and could not remove it then; nd2 did not make it, so it leaves it
    # (runc never removes a parent it made).
    for directory in sorted(cgroups_named(parent), key=len, reverse=True):
        os.rmdir(directory)
    assert leftovers(state_root) == []
    missing = _run(URUNC, state_root, "delete", "nd1")
    assert (missing.returncode, missing.stderr) == (1, "urunc: container nd1 does not exist\n")
