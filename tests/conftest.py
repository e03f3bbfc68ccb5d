"""Make the package under src/ and the shared test helpers importable for every test."""

from __future__ import annotations

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
for path in (_REPO / "src", _REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
