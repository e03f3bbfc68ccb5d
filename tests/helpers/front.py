"""The C front end (src/front/urunc.c) built for a test, as packaging/install.sh builds it:
its constants come from Python (urunc.lifecycle.front_end_defines)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "src" / "front" / "urunc.c"


def build(out: Path, urunc_py: str | Path, urunc_init: str | Path | None = None,
          timeout_ms: int | None = None) -> Path:
    """Compile the front end to OUT, handing what it does not do itself to URUNC_PY."""
    from urunc.lifecycle import front_end_defines

    defines = [d for d in front_end_defines() if timeout_ms is None or not d.startswith("-DSTART_TIMEOUT_MS=")]
    if timeout_ms is not None:
        defines.append(f"-DSTART_TIMEOUT_MS={timeout_ms}")
    argv = ["gcc", "-O2", "-Wall", "-Wextra", "-Werror", f"-DURUNC_PY=\"{urunc_py}\"", *defines]
    if urunc_init is not None:
        argv.append(f"-DURUNC_INIT=\"{urunc_init}\"")
    subprocess.run([*argv, "-o", str(out), str(SOURCE)], check=True)
    return out
