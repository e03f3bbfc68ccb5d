"""The front end's native `state` (src/front/urunc.c: the answer Python rendered at its last save,
checked against the record's digest, with liveness filled in) against Python's.

The native `state` claims to print what Python's would, byte for byte, and to hand anything it
does not plainly understand (a damaged record, an answer that does not match it) to Python.
Every state_record seed and finding is written as a container's record and asked for through
both: same exit status, same stdout, same stderr. FUZZ_NATIVE_CORPUS=DIR adds the inputs of a
fuzz run (build/fuzz/corpus/state_record).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from _fuzzlib import CORPUS, REGRESSIONS

URUNC = os.environ.get("URUNC_BIN", "/usr/local/bin/urunc")
URUNC_PY = "/usr/local/lib/urunc/urunc-py"   # the installed Python runtime the front end hands over to


def _inputs() -> list[Path]:
    dirs = [CORPUS / "state_record", REGRESSIONS / "state_record"]
    extra = os.environ.get("FUZZ_NATIVE_CORPUS")
    if extra:
        dirs.append(Path(extra))
    return [p for d in dirs if d.is_dir() for p in sorted(d.iterdir()) if p.is_file()]


def _ask(argv: list[str]) -> tuple[int, str, str]:
    proc = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=30, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def test_the_installed_front_end_and_runtime_are_there() -> None:
    assert os.access(URUNC, os.X_OK) and os.access(URUNC_PY, os.X_OK), "make install first"


@pytest.mark.parametrize("record", _inputs(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_native_state_answers_as_python_does(record: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "c").mkdir(parents=True, mode=0o700)
    (root / "c" / "urunc-state.json").write_bytes(record.read_bytes())
    native = _ask([URUNC, "--root", str(root), "state", "c"])
    python = _ask([URUNC_PY, "--root", str(root), "state", "c"])
    assert native == python
    assert native[0] in (0, 1) and (native[0] == 0 or len(native[2].splitlines()) == 1), native
