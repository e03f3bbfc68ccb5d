"""Make the package under src/ and the shared test helpers importable for every test; shared fixtures."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
for path in (_REPO / "src", _REPO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.helpers.netns import Netns  # noqa: E402


@pytest.fixture
def netns() -> Iterator[Netns]:
    """A network namespace with eth0 as CNI leaves it, and its peer (tests/helpers/netns.py)."""
    ns = Netns()
    try:
        yield ns
    finally:
        ns.delete()
