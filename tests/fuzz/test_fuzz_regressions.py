"""Every fuzz finding (tests/fuzz/regressions/<target>/<input>) and every seed, replayed in-process.

Each input must give a correct result or a one-line error under the target's rules (see the target
module); a traceback, a wrong result or a file touched outside the work directory fails the test.
"""

from __future__ import annotations

import os
from pathlib import Path

import _fuzzlib
import pytest
from _fuzzlib import CORPUS, REGRESSIONS, TARGETS, load_target


def _inputs(base: Path) -> list[tuple[str, Path]]:
    return [(t, p) for t in TARGETS if (base / t).is_dir() for p in sorted((base / t).iterdir()) if p.is_file()]


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fuzzlib, "_workdir", os.path.realpath(tmp_path))


@pytest.mark.parametrize(("target", "path"), _inputs(REGRESSIONS), ids=lambda v: v if isinstance(v, str) else v.name)
def test_finding_stays_fixed(target: str, path: Path) -> None:
    load_target(target)(path.read_bytes())


@pytest.mark.parametrize(("target", "path"), _inputs(CORPUS), ids=lambda v: v if isinstance(v, str) else v.name)
def test_seed_passes(target: str, path: Path) -> None:
    load_target(target)(path.read_bytes())


def test_every_target_has_seeds() -> None:
    for target in TARGETS:
        assert any((CORPUS / target).iterdir()), target


def test_the_guard_catches_a_read_and_a_write_outside_the_work_directory(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"x")
    inner = tmp_path / "inside"
    with _fuzzlib.guard():
        inner.write_bytes(b"ok")           # inside: allowed
        with pytest.raises(_fuzzlib.Escape, match="read of"):
            open(outside / "f", "rb").close()
        with pytest.raises(_fuzzlib.Escape, match="outside the work directory"):
            os.mkdir(outside / "d")
    open(outside / "f", "rb").close()      # the guard is off again
