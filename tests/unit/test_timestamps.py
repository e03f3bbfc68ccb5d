"""Phase timestamps: one line per mark, and never an error for the container."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from urunc import _timestamps


def test_a_mark_is_one_line_with_name_time_and_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "marks"
    monkeypatch.setattr(_timestamps, "_PATH", str(path))
    before = time.monotonic_ns()
    _timestamps.mark("spec-loaded")
    _timestamps.mark("plan-built")
    lines = [line.split() for line in path.read_text().splitlines()]
    assert [line[0] for line in lines] == ["spec-loaded", "plan-built"]
    assert before <= int(lines[0][1]) <= int(lines[1][1]) <= time.monotonic_ns()
    assert {line[2] for line in lines} == {str(os.getpid())}


def test_marks_are_off_without_a_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_timestamps, "_PATH", "")
    monkeypatch.chdir(tmp_path)
    _timestamps.mark("spec-loaded")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("path", ["/dev/full", "/nonexistent-dir/marks"], ids=["write-fails", "open-fails"])
def test_a_mark_that_cannot_be_written_is_dropped(path: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # /dev/full fails the write (ENOSPC) as a FIFO whose reader just left does (EPIPE).
    fds_before = sorted(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(_timestamps, "_PATH", path)
    assert _timestamps.mark("spec-loaded") is None  # no exception reaches the container's path
    assert sorted(os.listdir("/proc/self/fd")) == fds_before  # nothing left open by the failure
    good = tmp_path / "marks"
    monkeypatch.setattr(_timestamps, "_PATH", str(good))
    _timestamps.mark("plan-built")  # marking goes on after a dropped one
    assert [line.split()[0] for line in good.read_text().splitlines()] == ["plan-built"]
