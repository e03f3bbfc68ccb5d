"""The C front end (src/front/urunc.c) against the Python runtime, with neither QEMU nor containerd.

The front end is built here from the source tree, handing what it does not do itself to the
Python runtime of the same tree (an entry script, as packaging/install.sh writes it), and once
more with no Python to hand to (NATIVE: what it answers, it answered itself). Containers are
made by hand: records saved by Python's own store code, in every status, for an init that is
alive, dead, a zombie, a PID reused by another process; then damaged records and damaged
answers. The front end and Python must give the same exit status, stdout, stderr and --log
lines, byte for byte; the front end must answer `state` and run `start` itself for every
record Python saved, and hand everything else over.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import front as _front
from tests.helpers.procs import state_letter
from urunc.host import proc
from urunc.oci import store

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc to build the front end")

SRC = _front.REPO / "src"
NO_PYTHON = "/nonexistent/urunc-py"
HANDED = f"urunc: cannot run {NO_PYTHON}: No such file or directory\n".encode()
ENTRY = """#!{python} -IS
import sys
sys.path.insert(0, {src!r})
{prelude}from urunc.cli import entry
raise SystemExit(entry())
"""
ODD = {"org.example/quote": 'say "hi"\\ \t tab', "org.example/unicode": "café ☕ \U0001f600", "z": "",
       "ctl": "\x01\x1f\x7f", "nl": "a\nb\r\n", "slash": "</script>"}


class Tools:
    """The Python runtime (an entry script), the front end, the front end without a Python."""

    def __init__(self, directory: Path, timeout_ms: int | None = None) -> None:
        prelude = "" if timeout_ms is None else (
            f"import urunc.lifecycle\nurunc.lifecycle.START_TIMEOUT = {timeout_ms / 1000!r}\n")
        self.python = directory / "urunc-py"
        self.python.write_text(ENTRY.format(python=sys.executable, src=str(SRC), prelude=prelude))
        self.python.chmod(0o755)
        self.front = _front.build(directory / "urunc", self.python, timeout_ms=timeout_ms)
        self.native = _front.build(directory / "urunc-native-only", NO_PYTHON, timeout_ms=timeout_ms)


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Tools:
    return Tools(tmp_path_factory.mktemp("front"))


Result = tuple[int, bytes, bytes]
Processes = dict[str, tuple[int, int | None]]  # name: (PID, start time)


def ask(program: Path | str, *args: str, env: dict[str, str] | None = None, umask: int | None = None,
        pass_fds: tuple[int, ...] = ()) -> Result:
    done = subprocess.run([str(program), *args], capture_output=True, timeout=60, check=False, env=env,
                          pass_fds=pass_fds, preexec_fn=None if umask is None else (lambda: os.umask(umask)))
    return done.returncode, done.stdout, done.stderr


def both(tools: Tools, *args: str) -> Result:
    """The front end's answer, asserted to be Python's."""
    front = ask(tools.front, *args)
    python = ask(tools.python, *args)
    assert front == python, args
    return front


def native_answers(tools: Tools, *args: str) -> Result:
    """Python's answer, asserted to be what the front end answers without any Python."""
    python = both(tools, *args)
    native = ask(tools.native, *args)
    assert native == python, args
    return python


def handed_over(tools: Tools, *args: str) -> Result:
    """Python's answer, asserted to be one the front end leaves to Python."""
    python = both(tools, *args)
    assert ask(tools.native, *args) == (1, b"", HANDED), args
    return python


# -- containers made by hand ---------------------------------------------------------------------------

def make(root: Path, cid: str, status: str = "created", pid: int = 0, pid_start: int | None = None,
         fifo: bool = False, paused: bool = False, **fields: object) -> store.Container:
    """A container whose record Python's store saves (and with it, the front end's answer)."""
    container = store.Container(str(root), cid)
    container.create_dir()
    container.record = {"id": cid, "status": status, "pid": pid, "pid_start": pid_start, "bundle": f"/b/{cid}",
                        "rootfs": f"/b/{cid}/rootfs", "created": "2026-01-02T03:04:05.000000006Z",
                        "annotations": dict(ODD), "plan": {"guest": "hello", "argv": ["a", "b"]}, "hooks": {},
                        "stop_grace": 10, **fields}
    if fifo:
        os.mkfifo(container.path(store.FIFO), 0o600)
    if paused:
        Path(container.path(store.PAUSE_MARK)).write_bytes(b"")
    container.save()
    return container


@pytest.fixture(scope="module")
def processes() -> Iterator[Processes]:
    """PID and start time, as a record names them: a living process, the same PID with another
    start time (a PID reused), a zombie, a process gone, no start time, no PID."""
    sleeper = subprocess.Popen(["sleep", "600"])
    zombie = subprocess.Popen(["true"])
    gone = subprocess.Popen(["true"])
    gone.wait()
    deadline = time.monotonic() + 10
    while state_letter(zombie.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    start = proc.start_time(sleeper.pid)
    assert start is not None and state_letter(zombie.pid) == "Z"
    try:
        yield {"alive": (sleeper.pid, start), "reused": (sleeper.pid, start + 1),
               "zombie": (zombie.pid, proc.start_time(zombie.pid)), "gone": (gone.pid, 4242),
               "no-start-time": (sleeper.pid, None), "no-pid": (0, None)}
    finally:
        sleeper.kill()
        sleeper.wait()
        zombie.wait()


# -- state: every status, every fact ------------------------------------------------------------------

@pytest.mark.parametrize("paused", [False, True], ids=["", "paused-mark"])
@pytest.mark.parametrize("fifo", [False, True], ids=["", "fifo"])
@pytest.mark.parametrize("pid_case", ["alive", "reused", "zombie", "gone", "no-start-time", "no-pid"])
@pytest.mark.parametrize("status", ["creating", "created", "running", "stopped"])
def test_state_of_every_record_python_saves_is_answered_natively_as_python_answers(
        tools: Tools, tmp_path: Path, processes: Processes,
        status: str, pid_case: str, fifo: bool, paused: bool) -> None:
    pid, pid_start = processes[pid_case]
    make(tmp_path, "c", status, pid, pid_start, fifo, paused)
    code, out, _ = native_answers(tools, "--root", str(tmp_path), "state", "c")
    state = json.loads(out)
    assert code == 0 and state["id"] == "c" and state["annotations"] == ODD
    expected = store.derive_status({"status": status, "pid": pid}, lambda: pid_case == "alive",
                                   lambda: fifo, lambda: paused)
    assert state["status"] == expected
    assert state["pid"] == (0 if expected == "stopped" else pid)


@pytest.mark.parametrize("fields", [
    {"annotations": {}},
    {"annotations": {f"k{i}": "v" * i for i in range(300)}},
    {"bundle": "/b/ünïcode \"quoted\"", "rootfs": "", "created": ""},
    {"hooks": {"poststart": [{"path": "/bin/true"}]}},
    {"extra": {"nested": [1, 2.5, None, True]}},
], ids=["no-annotations", "many-annotations", "odd-strings", "poststart-hooks", "extra-fields"])
def test_state_of_records_of_every_shape_python_saves(tools: Tools, tmp_path: Path,
                                                      processes: Processes,
                                                      fields: dict[str, object]) -> None:
    pid, start = processes["alive"]
    make(tmp_path, "c", "created", pid, start, fifo=True, **fields)
    native_answers(tools, "--root", str(tmp_path), "state", "c")


def test_state_of_a_minimal_record_and_of_the_longest_id(tools: Tools, tmp_path: Path) -> None:
    for cid, record in (("m", {}), ("n", {"status": "running"}), ("L" * 255, {"status": "stopped"})):
        container = store.Container(str(tmp_path), cid)
        container.create_dir()
        container.record = record
        container.save()
        native_answers(tools, "--root", str(tmp_path), "state", cid)


# -- state: what the front end must leave to Python -----------------------------------------------------

def _rewrite(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _in_place(old: bytes, new: bytes) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        data = path.read_bytes()
        assert old in data and len(old) == len(new)
        with open(path, "r+b") as f:  # the same file, the same size, within the same clock tick
            f.write(data.replace(old, new, 1))
    return change


def _json(**changes: object) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        record = json.loads(path.read_bytes())
        record.update(changes)
        path.write_text(json.dumps(record))
    return change


def _without(key: str) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        record = json.loads(path.read_bytes())
        del record[key]
        path.write_text(json.dumps(record, separators=(",", ":")))
    return change


def _replace_with(kind: str) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        elif kind == "dir":
            path.mkdir()
        elif kind == "symlink":
            path.symlink_to(path.parent.parent / "other" / path.name)
    return change


RECORD_DAMAGE: dict[str, Callable[[Path], None]] = {
    "rewritten-in-place": _in_place(b'"running"', b'"stopped"'),
    "rewritten-by-hand": _json(status="running"),
    "not-json": lambda p: _rewrite(p, b'{"status": "running", '),
    "empty": lambda p: _rewrite(p, b""),
    "not-an-object": lambda p: _rewrite(p, b"[1, 2]"),
    "unknown-status": _json(status="exploded"),
    "pid-a-string": _json(pid="123"),
    "pid-negative": _json(pid=-5),
    "pid-too-large": _json(pid=2**31),
    "pid-start-a-float": _json(pid_start=1.5),
    "annotations-a-list": _json(annotations=["a"]),
    "annotation-not-a-string": _json(annotations={"a": 1}),
    "hooks-a-list": _json(hooks=[]),
    "bundle-not-a-string": _json(bundle=7),
    "no-status": _without("status"),
    "no-pid-start": _without("pid_start"),
    "huge": _json(annotations={"big": "x" * (2 << 20)}),
    "gone": lambda p: p.unlink(),
    "a-fifo": _replace_with("fifo"),
    "a-directory": _replace_with("dir"),
    "a-symlink": _replace_with("symlink"),
}


@pytest.mark.parametrize("damage", sorted(RECORD_DAMAGE))
def test_a_record_changed_after_python_saved_it_is_answered_by_python(
        tools: Tools, tmp_path: Path, processes: Processes, damage: str) -> None:
    pid, start = processes["alive"]
    make(tmp_path, "other", "running", pid, start)
    container = make(tmp_path, "c", "running", pid, start)
    RECORD_DAMAGE[damage](Path(container.path(store.STATE_FILE)))
    handed_over(tools, "--root", str(tmp_path), "state", "c")


def test_a_record_too_large_for_the_front_end_is_answered_by_python(
        tools: Tools, tmp_path: Path, processes: Processes) -> None:
    pid, start = processes["alive"]
    make(tmp_path, "c", "running", pid, start, annotations={"big": "x" * (2 << 20)})  # saved, answer and all
    code, out, _ = handed_over(tools, "--root", str(tmp_path), "state", "c")
    assert code == 0 and json.loads(out)["status"] == "running"


def _answer_edit(edit: Callable[[list[bytes], bytes], tuple[list[bytes], bytes]]) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        header, body = path.read_bytes().split(b"\n", 1)
        fields, body = edit(header.split(b" "), body)
        path.write_bytes(b" ".join(fields) + b"\n" + body)
    return change


def _field(index: int, value: bytes | Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def edit(fields: list[bytes], body: bytes) -> tuple[list[bytes], bytes]:
        fields[index] = value(fields[index]) if callable(value) else value
        return fields, body
    return _answer_edit(edit)


def _plus(n: int) -> Callable[[bytes], bytes]:
    return lambda v: str(int(v) + n).encode()


ANSWER_DAMAGE: dict[str, Callable[[Path], None]] = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[:-1]),
    "one-byte-more": lambda p: p.write_bytes(p.read_bytes() + b"}"),
    "empty": lambda p: p.write_bytes(b""),
    "header-only": lambda p: p.write_bytes(p.read_bytes().split(b"\n")[0]),
    "other-format": _field(0, b"urunc-answer-2"),
    "other-id": _field(1, b"d"),
    "id-prefix": _field(1, b"cc"),
    "other-digest": _field(2, _plus(1)),
    "other-size": _field(3, _plus(1)),
    "head-longer": _field(6, _plus(1)),
    "lengths-shifted": _answer_edit(lambda f, b: ([*f[:6], str(int(f[6]) + 1).encode(), *f[7:]], b[1:] + b" ")),
    "sign": _field(4, lambda v: b"+" + v),
    "negative": _field(4, b"-1"),
    "hex": _field(2, lambda v: hex(int(v)).encode()),
    "overflow": _field(5, b"99999999999999999999999"),
    "pid-beyond-int": _field(4, str(2**31).encode()),
    "bad-flag": _field(9, b"x"),
    "long-flag": _field(9, b"ss"),
    "two-spaces": _answer_edit(lambda f, b: ([f[0], b"", *f[1:]], b)),
    "a-tab": _answer_edit(lambda f, b: ([f[0] + b"\t" + f[1], *f[2:]], b)),
    "fewer-entries": _answer_edit(lambda f, b: (f[:-2], b)),
    "more-entries": _answer_edit(lambda f, b: ([*f, b"0", b"-"], b)),
    "huge": lambda p: p.write_bytes(p.read_bytes() + b" " * (2 << 20)),
    "gone": lambda p: p.unlink(),
    "a-fifo": _replace_with("fifo"),
    "a-directory": _replace_with("dir"),
    "a-symlink": _replace_with("symlink"),
}


@pytest.mark.parametrize("damage", sorted(ANSWER_DAMAGE))
def test_an_answer_not_exactly_in_its_form_is_left_to_python(
        tools: Tools, tmp_path: Path, processes: Processes, damage: str) -> None:
    pid, start = processes["alive"]
    make(tmp_path, "other", "running", pid, start)
    container = make(tmp_path, "c", "running", pid, start)
    ANSWER_DAMAGE[damage](Path(container.path(store.ANSWER_FILE)))
    code, out, _ = handed_over(tools, "--root", str(tmp_path), "state", "c")
    assert code == 0 and json.loads(out)["status"] == "running"


def test_an_answer_for_another_record_is_left_to_python(tools: Tools, tmp_path: Path,
                                                        processes: Processes) -> None:
    pid, start = processes["alive"]
    mine = make(tmp_path / "a", "c", "running", pid, start)
    theirs = make(tmp_path / "b", "c", "stopped", pid, start)
    shutil.copy(theirs.path(store.ANSWER_FILE), mine.path(store.ANSWER_FILE))
    assert json.loads(handed_over(tools, "--root", str(tmp_path / "a"), "state", "c")[1])["status"] == "running"


def test_containers_that_are_not_urunc_s_records(tools: Tools, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()                      # a create killed before its first save
    (tmp_path / "afile").write_text("")
    for cid in ("empty", "afile", "missing", "../x", "a/b", ".", "..", "", "x" * 256, "-"):
        handed_over(tools, "--root", str(tmp_path), "state", cid)
    (tmp_path / "runcs").mkdir()
    (tmp_path / "runcs" / "state.json").write_text("{}")  # runc's: handed on to runc (whose lines have a time)
    results = [ask(program, "--root", str(tmp_path), "state", "runcs") for program in (tools.front, tools.python)]
    assert [(code, out, re.sub(rb'time="[^"]*"', b"", err)) for code, out, err in results] == \
        [(code, out, re.sub(rb'time="[^"]*"', b"", err)) for code, out, err in results[1:] * 2]
    assert ask(tools.native, "--root", str(tmp_path), "state", "runcs") == (1, b"", HANDED)


FUZZ = _front.REPO / "tests" / "fuzz"
RECORDS = [p for d in ("corpus", "regressions") for p in sorted((FUZZ / d / "state_record").iterdir())]


@pytest.mark.parametrize("record", RECORDS, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_state_record_of_the_fuzz_corpus(tools: Tools, tmp_path: Path, record: Path) -> None:
    # As found (no answer: Python's), then as Python's store saves it when it reads (the front end's).
    container = store.Container(str(tmp_path), "c")
    container.create_dir()
    Path(container.path(store.STATE_FILE)).write_bytes(record.read_bytes())
    handed_over(tools, "--root", str(tmp_path), "state", "c")
    try:
        container.load()
    except Exception:  # noqa: BLE001 - a record Python refuses: nothing to save
        return
    container.save()
    native_answers(tools, "--root", str(tmp_path), "state", "c")


# -- the command line ---------------------------------------------------------------------------------

def test_the_command_line_the_front_end_reads_and_the_one_it_leaves(tools: Tools, tmp_path: Path,
                                                                    processes: Processes) -> None:
    pid, start = processes["alive"]
    make(tmp_path, "c", "running", pid, start)
    root, log = str(tmp_path), str(tmp_path / "log")
    for args in (["--root", root, "state", "c"], [f"--root={root}", "state", "c"],
                 ["--root", "/elsewhere", "--root", root, "state", "c"],
                 ["--debug", "--systemd-cgroup", "--log", log, "--log-format", "json", "--root", root, "state", "c"],
                 ["--log-format=text", f"--log={log}", f"--root={root}", "state", "c"]):
        native_answers(tools, *args)
    for args in (["--log-format", "xml", "--root", root, "state", "c"], ["--root=", "state", "c"],
                 ["-root", root, "state", "c"], ["--root", root, "state"], ["--root", root, "state", "c", "x"],
                 ["--root", root, "state", "--x", "c"], ["--root", root, "state", "--", "c"],
                 ["--root", root, "-v"], ["--root", root, "--help"], ["--root", root, "list"],
                 ["--root", root, "state", f"../{tmp_path.name}/c"], ["--root", root, "state", "c/"],
                 ["--root", root, "--criu", "x", "state", "c"], ["--root", root], ["--root"], ["--root", root, "nope"]):
        handed_over(tools, *args)


def _log_lines(path: Path) -> list[str]:
    text = path.read_text() if path.exists() else ""
    return [re.sub(r'"\d{4}-\d\d-\d\dT[\d:.]+Z"', '"TIME"', line) for line in text.splitlines()]


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_errors_reach_stderr_and_the_log_in_python_s_words(tools: Tools, tmp_path: Path, fmt: str) -> None:
    (tmp_path / "root").mkdir()
    logs = {}
    for name in ("front", "python"):
        log = tmp_path / f"{name}.log"
        program = tools.front if name == "front" else tools.python
        for args in (["state", "nope"], ["start", "nope"], ["kill", "nope", "KILL"], ["delete", "nope"],
                     ["state", "../x"], ["kill", "c", "NOPE"]):
            result = ask(program, "--root", str(tmp_path / "root"), "--log", str(log), "--log-format", fmt, *args,
                         umask=0)
            assert result[0] == 1 and result[2].count(b"\n") == 1, (name, args, result)
            logs.setdefault(name, []).append(result)
        assert log.stat().st_mode & 0o777 == 0o600  # whatever the umask
    assert logs["front"] == logs["python"]
    assert _log_lines(tmp_path / "front.log") == _log_lines(tmp_path / "python.log")
    assert len(_log_lines(tmp_path / "front.log")) == 6


# -- start ----------------------------------------------------------------------------------------------

INIT = r"""
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CLOEXEC)  # released by `start`
mode = sys.argv[2]
if mode == "ok":
    os.execv("/bin/sleep", ["sleep", "60"])  # EOF for `start`: the init became the monitor
if mode == "message":
    os.write(fd, b"boom: caf\xc3\xa9 \xff\nsecond line\r\n")
if mode == "hang":
    time.sleep(60)
os._exit(3)
"""


class Init:
    """A stand-in for the container's init: blocks on exec.fifo as urunc's does, then acts out MODE."""

    def __init__(self, root: Path, cid: str, mode: str, **fields: object) -> None:
        self.container = store.Container(str(root), cid)
        self.container.create_dir()
        fifo = self.container.path(store.FIFO)
        os.mkfifo(fifo, 0o600)
        self.process = subprocess.Popen([sys.executable, "-c", INIT, fifo, mode])
        start = proc.start_time(self.process.pid)
        self.container = make_record(self.container, self.process.pid, start, **fields)

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def make_record(container: store.Container, pid: int, start: int | None, **fields: object) -> store.Container:
    container.record = {"id": container.id, "status": "created", "pid": pid, "pid_start": start, "bundle": "/b",
                        "rootfs": "/b/rootfs", "created": "2026-01-02T03:04:05.000000006Z", "annotations": dict(ODD),
                        "hooks": {}, **fields}
    container.save()
    return container


def _started_in_both(tools: Tools, tmp_path: Path, mode: str) -> Result:
    """`start` of the same container, by the front end (root A) and by Python (root B)."""
    results = []
    inits = []
    try:
        for name, program in (("A", tools.front), ("B", tools.python)):
            inits.append(Init(tmp_path / name, "c", mode))
            results.append(ask(program, "--root", str(tmp_path / name), "--log", str(tmp_path / f"{name}.log"),
                               "--log-format", "json", "start", "c"))
        states = [json.loads(ask(tools.python, "--root", str(tmp_path / name), "state", "c")[1])
                  for name in ("A", "B")]
        assert {**states[0], "pid": 0} == {**states[1], "pid": 0}
        assert _log_lines(tmp_path / "A.log") == _log_lines(tmp_path / "B.log")
        assert not (tmp_path / "A" / "c" / store.FIFO).exists() or mode == "hang"
    finally:
        for init in inits:
            init.stop()
    assert results[0] == results[1]
    return results[0]


def test_start_that_succeeds(tools: Tools, tmp_path: Path) -> None:
    assert _started_in_both(tools, tmp_path, "ok") == (0, b"", b"")
    # and the front end did it itself
    init = Init(tmp_path / "C", "c", "ok")
    try:
        assert ask(tools.native, "--root", str(tmp_path / "C"), "start", "c") == (0, b"", b"")
        assert json.loads(native_answers(tools, "--root", str(tmp_path / "C"), "state", "c")[1])["status"] == "running"
    finally:
        init.stop()


@pytest.mark.parametrize("mode", ["message", "exited"])
def test_start_whose_init_fails_is_reported_and_recorded_as_python_does(tools: Tools, tmp_path: Path,
                                                                         mode: str) -> None:
    code, out, err = _started_in_both(tools, tmp_path, mode)
    words = ("urunc: boom: café \ufffd second line\n" if mode == "message"
             else "urunc: container c init exited before start\n")
    assert (code, out, err.decode()) == (1, b"", words)
    for name in ("A", "B"):  # the record says so, not only the init's absence
        assert json.loads((tmp_path / name / "c" / store.STATE_FILE).read_bytes())["status"] == "stopped"


def test_start_that_times_out(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    fast = Tools(tmp_path_factory.mktemp("fast"), timeout_ms=1000)
    assert _started_in_both(fast, tmp_path, "hang") == (1, b"", b"urunc: container c did not start within 1s\n")


def test_start_left_to_python(tools: Tools, tmp_path: Path, processes: Processes) -> None:
    pid, start = processes["alive"]
    root = str(tmp_path)
    make(tmp_path, "running", "running", pid, start)
    make(tmp_path, "stopped", "stopped", pid, start)
    make(tmp_path, "started", "created", pid, start)            # no exec.fifo: started already
    make(tmp_path, "dead", "created", *processes["gone"], fifo=True)
    make(tmp_path, "creating", "creating", pid, start, fifo=True)  # create hooks still to run
    for cid in ("running", "stopped", "started", "dead", "creating", "missing", "../x"):
        code, _, err = handed_over(tools, "--root", root, "start", cid)
        assert code == 1 and err.startswith(b"urunc: "), err
    make(tmp_path, "hooks", "created", pid, start, fifo=True, hooks={"poststart": [{"path": "/bin/true"}]})
    assert ask(tools.native, "--root", root, "start", "hooks") == (1, b"", HANDED)
    env = {**os.environ, "URUNC_TIMESTAMPS": str(tmp_path / "ts")}
    make(tmp_path, "timed", "created", pid, start, fifo=True)
    assert ask(tools.native, "--root", root, "start", "timed", env=env) == (1, b"", HANDED)
    # URUNC_FRONT_START is the front end's to set: one from outside is never taken for an outcome
    r, w = os.pipe()
    os.write(w, b"exited\n")
    os.close(w)
    env = {**os.environ, "URUNC_FRONT_START": str(r)}
    code, _, err = ask(tools.front, "--root", root, "start", "running", env=env, pass_fds=(r,))
    os.close(r)
    assert (code, err) == (1, b"urunc: cannot start container running: it is running\n")


# -- kill: Python's; delete: a stopped container's natively, from Python's plan -------------------------

def _left(root: Path, cid: str) -> list[str]:
    return sorted(p.name for p in (root / cid).iterdir()) if (root / cid).exists() else []


@pytest.mark.parametrize("paused", [False, True], ids=["", "paused-mark"])
@pytest.mark.parametrize("fifo", [False, True], ids=["", "fifo"])
@pytest.mark.parametrize("pid_case", ["reused", "zombie", "gone", "no-start-time", "no-pid"])
@pytest.mark.parametrize("status", ["creating", "created", "running", "stopped"])
def test_delete_of_every_record_python_saves(tools: Tools, tmp_path: Path, processes: Processes,
                                            status: str, pid_case: str, fifo: bool, paused: bool) -> None:
    """Python, the front end and the front end alone delete alike; alone, it deletes exactly
    the stopped containers whose init is not alive and not paused, and leaves the rest whole."""
    pid, start = processes[pid_case]
    results = {}
    for name, program in (("python", tools.python), ("front", tools.front), ("native", tools.native)):
        make(tmp_path / name, "d", status, pid, start, fifo=fifo, paused=paused)
        before = _left(tmp_path / name, "d")
        results[name] = ask(program, "--root", str(tmp_path / name), "delete", "d")
        if results[name] == (1, b"", HANDED):
            assert _left(tmp_path / name, "d") == before  # untouched, for Python
    assert results["front"] == results["python"] and results["python"][0] == 0
    assert not (tmp_path / "python" / "d").exists() and not (tmp_path / "front" / "d").exists()
    container = store.Container(str(tmp_path / "python"), "d")
    container.record = {"status": status, "pid": pid, "pid_start": start}
    stopped = store.derive_status(container.record, lambda: False, lambda: fifo, lambda: paused) == "stopped"
    assert results["native"] == (results["python"] if stopped and not paused else (1, b"", HANDED))
    assert (tmp_path / "native" / "d").exists() == (results["native"][0] != 0)


def test_delete_force_of_a_container_that_does_not_exist_succeeds_as_runc_s(tools: Tools, tmp_path: Path) -> None:
    assert native_answers(tools, "--root", str(tmp_path), "delete", "--force", "nothing") == (0, b"", b"")
    assert native_answers(tools, "--root", str(tmp_path / "no-root"), "delete", "-f", "a-b_c+d.e") == (0, b"", b"")
    assert native_answers(tools, "--root", str(tmp_path), "delete", "--force", "x" * 255) == (0, b"", b"")
    # Not an ID by Python's rule, or no --force: Python's words.
    for cid in ("a b", "x" * 256, "..", "caf\u00e9"):
        assert handed_over(tools, "--root", str(tmp_path), "delete", "--force", cid)[0] == 1
    assert handed_over(tools, "--root", str(tmp_path), "delete", "nothing")[2] == \
        b"urunc: container nothing does not exist\n"


def _plan_edit(edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        plan = path / store.DELETE_ANSWER_FILE
        _rewrite(plan, edit(plan.read_bytes()))
    return change


def _resources(entries: object) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        _rewrite(path / "resources.json", json.dumps(entries).encode())
    return change


def _subdir(path: Path) -> None:
    (path / "scratch").mkdir()
    (path / "scratch" / "f").write_bytes(b"x")


PLAN_DAMAGE = {
    "no-plan": lambda path: (path / store.DELETE_ANSWER_FILE).unlink(),
    "other-format": _plan_edit(lambda b: b.replace(b"urunc-delete-1", b"urunc-delete-9")),
    "other-id": _plan_edit(lambda b: b.replace(b" p ", b" q ", 1)),
    "flags-short": _plan_edit(lambda b: b.replace(b" d-d----- ", b" d-d---- ")),
    "count-more": _plan_edit(lambda b: b.replace(b" 0\n", b" 1\n")),
    "a-line-more": _plan_edit(lambda b: b + b"l /sys/fs/cgroup/nothing\n"),
    "truncated": _plan_edit(lambda b: b[:-1]),
    "resources-changed-since": _resources([{"kind": "tap", "name": "t0"}]),
    "resources-now-there": _resources([]),
    "a-directory-inside": _subdir,
}


@pytest.mark.parametrize("damage", sorted(PLAN_DAMAGE))
def test_a_delete_plan_not_exactly_for_what_is_there_is_left_to_python(
        tools: Tools, tmp_path: Path, processes: Processes, damage: str) -> None:
    for name in ("python", "native"):
        make(tmp_path / name, "p", "stopped", *processes["gone"])
        PLAN_DAMAGE[damage](tmp_path / name / "p")
    python = ask(tools.python, "--root", str(tmp_path / "python"), "delete", "p")
    assert python[0] == 0 and not (tmp_path / "python" / "p").exists()
    native = ask(tools.native, "--root", str(tmp_path / "native"), "delete", "p")
    assert native == (1, b"", HANDED) and (tmp_path / "native" / "p" / store.STATE_FILE).exists()
    # What it did (a directory inside: the files it could remove) Python's delete finishes.
    assert ask(tools.python, "--root", str(tmp_path / "native"), "delete", "p") == (0, b"", b"")
    assert not (tmp_path / "native" / "p").exists()


def test_plans_python_does_not_render(tmp_path: Path, processes: Processes) -> None:
    """Poststop hooks, a tap, a forged cgroup directory: no plan, so every delete is Python's."""
    hooks = make(tmp_path, "h", "stopped", *processes["gone"], hooks={"poststop": [{"path": "/bin/true"}]})
    assert not Path(hooks.path(store.DELETE_ANSWER_FILE)).exists()
    for cid, entries in (("t", [{"kind": "tap", "name": "t0", "netns": "/x"}]),
                         ("f", [{"kind": "cgroup", "dirs": ["/etc"], "leaves": ["/etc"]}]),
                         ("n", {"kind": "cgroup"})):
        container = make(tmp_path, cid, "stopped", *processes["gone"])
        Path(container.path("resources.json")).write_text(json.dumps(entries))
        container.save()
        assert Path(container.path(store.ANSWER_FILE)).exists()
        assert not Path(container.path(store.DELETE_ANSWER_FILE)).exists(), cid


def test_kill_and_delete_are_handed_to_python(tools: Tools, tmp_path: Path,
                                              processes: Processes) -> None:
    pid, start = processes["alive"]
    root = str(tmp_path)
    for cid, status in (("s1", "stopped"), ("s2", "stopped"), ("s3", "running")):
        make(tmp_path, cid, status, *(processes["gone"] if status == "stopped" else (pid, start)))
    assert handed_over(tools, "--root", root, "kill", "s1", "KILL")[2] == \
        b"urunc: container s1 is not running: it is stopped\n"
    assert handed_over(tools, "--root", root, "kill", "--all", "s1", "9")[0] == 0
    assert handed_over(tools, "--root", root, "kill", "s3", "NOPE")[2] == b"urunc: invalid signal NOPE\n"
    assert handed_over(tools, "--root", root, "delete", "s3")[0] == 1  # running: refused
    for program, cid in ((tools.front, "s1"), (tools.python, "s2")):
        assert ask(program, "--root", root, "delete", cid) == (0, b"", b"")
        assert not (tmp_path / cid).exists()


def _cgroup_dirs(name: str) -> list[Path]:
    from urunc.host import cgroups

    _version, mounts = cgroups.host_layout()
    return [Path(point) / name for point in sorted(set(mounts.values()))]


@pytest.mark.skipif(os.geteuid() != 0, reason="making cgroups needs root")
def test_delete_of_a_stopped_container_removes_its_cgroups_through_either(tools: Tools, tmp_path: Path) -> None:
    made: list[Path] = []
    try:
        for program, cid in ((tools.native, "d1"), (tools.python, "d2")):
            dirs = _cgroup_dirs(f"urunc-front-parity-{os.getpid()}-{cid}")
            for directory in dirs:
                directory.mkdir()
                made.append(directory)
            member = subprocess.Popen(["sleep", "600"])
            for directory in dirs:  # a process of its own in it, gone by delete
                try:
                    (directory / "cgroup.procs").write_text(str(member.pid))
                except OSError:
                    pass  # (v1 cpuset: no CPUs of its own yet)
            container = make(tmp_path, cid, "running", member.pid, proc.start_time(member.pid))
            (Path(container.dir) / "resources.json").write_text(json.dumps(
                [{"kind": "cgroup", "dirs": [str(d) for d in dirs], "leaves": [str(d) for d in dirs]}]))
            container.save()  # as create does: the record saved after its cgroup was recorded
            member.kill()
            member.wait()
            plan = Path(container.path(store.DELETE_ANSWER_FILE)).read_text().splitlines()
            assert sorted(plan[1:]) == sorted(f"l {d}" for d in dirs)
            assert ask(program, "--root", str(tmp_path), "delete", cid) == (0, b"", b"")
            assert [d for d in dirs if d.exists()] == [] and not (tmp_path / cid).exists()
    finally:
        for directory in made:
            if directory.exists():
                directory.rmdir()


# -- create: the front end's reading of the spec ---------------------------------------------------------

FAKE_INIT = r"""#!{python} -IS
import json, os, sys
request, report, newpid = sys.argv[1].split(":")
with open(os.environ["FRONT_PARITY_OUT"], "w") as f:
    json.dump({{"newpid": int(newpid), "pid1": os.getpid() == 1}}, f)
os.write(int(report), b"fail 42\n")
"""
FAKE_PYTHON = """#!/bin/sh
echo python > "$FRONT_PARITY_OUT"
exit 43
"""
UNIKERNEL = '"annotations": {"com.urunc.unikernel.binary": "/hello"}'
SPECS = {  # config.json text: whether Python reads a new PID namespace in it
    "pid": '{%s, "linux": {"namespaces": [{"type": "mount"}, {"type": "pid"}]}}',
    "pid-empty-path": '{%s, "linux": {"namespaces": [{"type": "pid", "path": ""}]}}',
    "pid-joined": '{%s, "linux": {"namespaces": [{"type": "pid", "path": "/proc/1/ns/pid"}]}}',
    "no-pid": '{%s, "linux": {"namespaces": [{"type": "mount"}, {"type": "network"}]}}',
    "no-namespaces": '{%s, "linux": {}}',
    "no-linux": '{%s}',
    "compact": '{%s,"linux":{"namespaces":[{"path":"","type":"pid"}]}}',
    "pretty": '{\n %s,\n\t"linux" : {\r\n  "namespaces" : [ { "type" : "pid" } ] } }',
    "joined-and-new": '{%s, "linux": {"namespaces": [{"type": "pid", "path": "/x"}, {"type": "pid"}]}}',
    "pid-in-strings": '{%s, "process": {"env": ["type=pid", "{\\"type\\": \\"pid\\"}"]}, "linux": {}}',
    "linux-twice": '{%s, "linux": {"namespaces": [{"type": "pid"}]}, "linux": {"namespaces": []}}',
    "type-twice": '{%s, "linux": {"namespaces": [{"type": "pid", "type": "network"}]}}',
    "path-twice": '{%s, "linux": {"namespaces": [{"type": "pid", "path": "", "path": "/x"}]}}',
    "escaped-path-key": '{%s, "linux": {"namespaces": [{"type": "pid", "pat\\u0068": "/x"}]}}',
    "escaped-type-key": '{%s, "linux": {"namespaces": [{"ty\\u0070e": "pid"}]}}',
    "escaped-value": '{%s, "linux": {"namespaces": [{"type": "pi\\u0064"}]}}',
    "escaped-linux-key": '{%s, "lin\\u0075x": {"namespaces": []}, "linux": {"namespaces": [{"type": "pid"}]}}',
    "null-path": '{%s, "linux": {"namespaces": [{"type": "pid", "path": null}]}}',
    "namespaces-an-object": '{%s, "linux": {"namespaces": {"type": "pid"}}}',
    "entry-not-an-object": '{%s, "linux": {"namespaces": ["pid", {"type": "pid"}]}}',
    "truncated": '{%s, "linux": {"namespaces": [{"type": "pid"}',
    "nested-linux": '{"annotations": {"com.urunc.unikernel.binary": "/h", "linux": "{\\"namespaces\\": 1}"}}',
}


def _python_reads(text: str) -> tuple[bool, bool]:
    """(a unikernel's bundle, a new PID namespace) as Python reads config.json TEXT."""
    from urunc import _jsonlite

    try:
        raw = _jsonlite.loads(text)
        namespaces = [(ns.get("type"), ns.get("path") or "") for ns in raw["linux"]["namespaces"]]
    except (ValueError, KeyError, TypeError, AttributeError):
        return True, False  # Python fails such a create: no PID namespace is made for it
    return True, ("pid", "") in namespaces


@pytest.fixture(scope="module")
def create_front(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("create")
    init, python = directory / "init", directory / "python"
    init.write_text(FAKE_INIT.format(python=sys.executable))
    python.write_text(FAKE_PYTHON)
    init.chmod(0o755)
    python.chmod(0o755)
    return _front.build(directory / "urunc", python, urunc_init=init)


@pytest.mark.skipif(os.geteuid() != 0, reason="a new PID namespace needs root")
@pytest.mark.parametrize("name", sorted(SPECS))
def test_create_starts_the_init_in_a_new_pid_namespace_only_when_python_reads_one(
        create_front: Path, tmp_path: Path, name: str) -> None:
    text = SPECS[name] % UNIKERNEL if "%s" in SPECS[name] else SPECS[name]
    (tmp_path / "config.json").write_text(text)
    out = tmp_path / "out"
    env = {**os.environ, "FRONT_PARITY_OUT": str(out)}
    code = subprocess.run([str(create_front), "create", "--bundle", str(tmp_path), "c"], env=env, timeout=30,
                          check=False).returncode
    assert code == 42, out.read_text() if out.exists() else code  # the init ran, and its verdict came back
    seen = json.loads(out.read_text())
    assert seen["pid1"] == bool(seen["newpid"])
    _unikernel, new_pid_ns = _python_reads(text)
    assert not seen["newpid"] or new_pid_ns, name  # never a namespace the spec does not ask for
    if name in ("pid", "pid-empty-path", "pid-joined", "no-pid", "no-namespaces", "no-linux", "compact",
                "pretty", "joined-and-new", "pid-in-strings", "linux-twice", "type-twice", "path-twice"):
        assert bool(seen["newpid"]) == new_pid_ns, name


def test_create_of_a_bundle_without_a_unikernel_goes_to_python(create_front: Path, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"linux": {"namespaces": [{"type": "pid"}]}}')
    out = tmp_path / "out"
    env = {**os.environ, "FRONT_PARITY_OUT": str(out)}
    code = subprocess.run([str(create_front), "create", "--bundle", str(tmp_path), "c"], env=env, timeout=30,
                          check=False).returncode
    assert (code, out.read_text()) == (43, "python\n")


def test_the_front_end_holds_no_rule_of_its_own() -> None:
    """What issue 13 asked the C to hand back: no signal table, no cgroup rule (which
    directories, where cgroups are mounted: the delete plan says), no log writer, no record
    reader, no OCI version; the start timeout and the ID rule are Python's (-D of the build)."""
    source = _front.SOURCE.read_text()
    for gone in ("SIGKILL", "\"HUP\"", "/sys/fs/cgroup", "cgroup.procs", "level=error", "fopen", "1.0.2",
                 "60 * 1000", "\"created\"", "\"running\"", "\"stopped\"", "abcdef", "255"):
        assert gone not in source, gone
    assert "#error" in source and "START_TIMEOUT_MS" in source and "ID_CHARS" in source
