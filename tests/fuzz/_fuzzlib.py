"""What every fuzz target shares: the per-run work directory, the one-line-error rule, and a guard
that turns any file opened or changed outside the allowed places into a finding.

A target is a module ``fuzz_<name>.py`` with ``one(data: bytes) -> None``: it feeds DATA to one
parser of outside input and returns when the parser gave a correct result or a one-line error;
anything else (another exception, an assertion about the result, a file touched outside the work
directory) propagates and is a finding. Targets do not import atheris: the same ``one`` runs under
the fuzzer (run.py) and in plain pytest (the regression and seed replays).
"""

from __future__ import annotations

import os
import shutil
import sys
import sysconfig
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SRC = REPO / "src"
for _p in (str(SRC), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

TARGETS = ("jsonlite", "unikernel_config", "spec", "containerfile", "config_toml", "solo5_manifest",
           "rootfs", "state_record", "guest_frames")
CORPUS = HERE / "corpus"
REGRESSIONS = HERE / "regressions"


class Escape(BaseException):
    """A parser opened or changed a file outside the places its target allows (never caught by the code)."""


_workdir: str | None = None


def workdir() -> str:
    """This run's scratch directory: $URUNC_FUZZ_TMP (made and removed by the runner), else one of ours."""
    global _workdir
    if _workdir is None:
        given = os.environ.get("URUNC_FUZZ_TMP")
        _workdir = os.path.realpath(given) if given else tempfile.mkdtemp(prefix="urunc-fuzz-")
    return _workdir


@contextmanager
def fresh(name: str) -> Iterator[str]:
    """An empty directory NAME under the work directory, removed afterwards."""
    path = os.path.join(workdir(), name)
    if os.path.lexists(path):
        shutil.rmtree(path)
    os.mkdir(path)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def one_line(exc: BaseException) -> str:
    """The error's message, asserted to print as one non-empty line: a UruncError as urunc prints
    it (urunc._log.error, captured), any other (the image builder's) as its text."""
    message = str(exc)
    assert message.strip(), f"{type(exc).__name__} with an empty message"
    printed = message
    if type(exc).__module__.startswith("urunc._errors"):
        import io

        from urunc import _log

        saved, sys.stderr = sys.stderr, io.StringIO()
        try:
            _log.error(message)
            printed = sys.stderr.getvalue()
        finally:
            sys.stderr = saved
        assert printed.endswith("\n"), printed
    assert len(printed.splitlines()) == 1, f"{type(exc).__name__} prints as more than one line: {printed!r}"
    return message


# -- the file guard ----------------------------------------------------------------------------------
_WRITE_EVENTS = {"os.remove", "os.rmdir", "os.rename", "os.replace", "os.mkdir", "os.symlink", "os.link",
                 "os.chmod", "os.chown", "os.truncate", "os.utime", "shutil.rmtree", "shutil.copyfile",
                 "os.mkfifo", "os.mknod"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_READ_ROOTS = tuple({os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sysconfig.get_paths()["stdlib"],
                                                   sysconfig.get_paths()["platstdlib"], str(SRC), str(HERE))})
_active: list[tuple[str, tuple[str, ...]]] = []   # (work dir, extra read roots) while a guard is on
_hook_installed = False


def _inside(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _hook(event: str, args: tuple[object, ...]) -> None:
    if not _active or not (event == "open" or event in _WRITE_EVENTS):
        return
    work, extra = _active[-1]
    # open's first argument may be a descriptor (then its mode follows, not a path): only
    # a path-like first argument is a path; rename and link events carry two
    named = args[:1] if event == "open" else args[:2]
    paths = [a for a in named if isinstance(a, (str, bytes, os.PathLike))]
    for raw in paths:
        path = os.fsdecode(raw)
        if not path or "\0" in path:
            continue
        path = os.path.normpath(os.path.join(os.getcwd(), path))
        if _inside(path, (work,)):
            continue
        writing = event != "open"
        if event == "open":
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and bool(flags & _WRITE_FLAGS))
        if writing:
            raise Escape(f"{event} {path!r} outside the work directory {work}")
        if not _inside(path, _READ_ROOTS + extra):
            raise Escape(f"read of {path!r} outside the work directory {work}")


@contextmanager
def guard(extra_read_roots: tuple[str, ...] = ()) -> Iterator[None]:
    """While active: any file written, created or removed outside the work directory, or read outside
    it (Python's own files and EXTRA_READ_ROOTS excepted), raises :class:`Escape`."""
    global _hook_installed
    if not _hook_installed:
        sys.addaudithook(_hook)
        _hook_installed = True
    _active.append((workdir(), extra_read_roots))
    try:
        yield
    finally:
        _active.pop()


def load_target(name: str) -> Callable[[bytes], None]:
    import importlib

    return importlib.import_module(f"fuzz_{name}").one  # type: ignore[no-any-return]
