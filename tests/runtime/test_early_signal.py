"""SIGTERM right after start stops the guest: QEMU is PID 1 of its PID namespace and would
drop a signal that came before its handler, so the init binds QMP before QEMU runs and the
stop goes through it."""

from __future__ import annotations

import time
from pathlib import Path

from tests.helpers.bundles import container_state, create, hello_bundle, leftovers, urunc


def test_sigterm_in_the_first_milliseconds_after_start_stops_the_guest(tmp_path: Path, state_root: Path) -> None:
    bundle = hello_bundle(tmp_path / "b", args=["hello", "wait"])
    for attempt in range(12):
        cid = f"early{attempt}"
        code, text = create(state_root, bundle, cid)
        assert code == 0, text
        assert urunc(state_root, "start", cid).returncode == 0
        assert urunc(state_root, "kill", cid, "TERM").returncode == 0
        deadline = time.monotonic() + 10
        while container_state(state_root, cid)["status"] != "stopped":
            assert time.monotonic() < deadline, f"attempt {attempt}: SIGTERM right after start was lost"
            time.sleep(0.05)
        assert urunc(state_root, "delete", cid).returncode == 0
    assert leftovers(state_root) == []
