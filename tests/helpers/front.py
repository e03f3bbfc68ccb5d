"""The C front end (src/front/urunc.c) built for a test, as packaging/install.sh builds it:
its one constant, the start timeout, comes from Python (urunc.lifecycle.START_TIMEOUT)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src" / "front" / "urunc.c"


def start_timeout_ms() -> int:
    from urunc.lifecycle import START_TIMEOUT

    return round(START_TIMEOUT * 1000)


def build(out: Path, urunc_py: str | Path, urunc_init: str | Path | None = None,
          timeout_ms: int | None = None) -> Path:
    """Compile the front end to OUT, handing what it does not do itself to URUNC_PY."""
    argv = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", f"-DURUNC_PY=\"{urunc_py}\"",
            f"-DSTART_TIMEOUT_MS={start_timeout_ms() if timeout_ms is None else timeout_ms}"]
    if urunc_init is not None:
        argv.append(f"-DURUNC_INIT=\"{urunc_init}\"")
    subprocess.run([*argv, "-o", str(out), str(SOURCE)], check=True)
    return out
