"""The smoke pass of `make fuzz`: each target under atheris for a few seconds from its seed corpus.

A finding fails the test with libFuzzer's report (the input is kept in the work directory's
crashes/<target>/). FUZZ_SMOKE_SECONDS sets the time per target (default 3).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import run
from _fuzzlib import TARGETS

SECONDS = float(os.environ.get("FUZZ_SMOKE_SECONDS", "3"))


@pytest.mark.parametrize("target", TARGETS)
def test_target_runs_clean_from_its_seeds(target: str, tmp_path: Path) -> None:
    result = run.run_target(target, SECONDS, 0, tmp_path, seed=1)
    assert result["ok"], f"fuzz finding in {target}:\n" + str(result["output"])[-6000:]
    assert int(result["execs"]) > 0 and int(result["coverage"]) > 0, str(result["output"])[-3000:]
