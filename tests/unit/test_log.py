"""The one writer of error lines (_log.py): stderr and the --log file, mode 0600, one line, ASCII."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from urunc import _log


@pytest.fixture(autouse=True)
def _unconfigured() -> Iterator[None]:
    yield
    _log.configure(None, "text", False)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_an_error_is_one_line_on_stderr_and_in_the_log(tmp_path: Path, fmt: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log"
    _log.configure(str(log), fmt, False)
    old = os.umask(0)
    try:
        _log.error("café ☕\nsecond\r\nthird\u2028fourth\n")
    finally:
        os.umask(old)
    assert capsys.readouterr().err == "urunc: café ☕ second third fourth\n"
    assert log.stat().st_mode & 0o777 == 0o600
    raw = log.read_bytes()
    assert raw.isascii() and raw.count(b"\n") == 1
    line = raw.decode().rstrip("\n")
    if fmt == "json":
        entry = json.loads(line)
        assert entry["level"] == "error" and entry["msg"] == "café ☕ second third fourth"
        assert list(entry) == ["level", "msg", "time"]
    else:
        assert re.fullmatch(r'time="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z" level=error '
                            r'msg="caf\\u00e9 \\u2615 second third fourth"', line), line
