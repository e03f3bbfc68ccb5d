"""A container's state record (urunc-state.json) as state, list, ps, start, kill and delete read it.

Input: the record file. Everything read-only that the commands do with it runs: load, status,
pid, the OCI state (printed by state and list), the write-back start and kill do, and the PID
salvage of delete --force. Signals and hooks are not run (the record could name any process).
Correct result: an OCI state with the types containerd expects, a record that saves and loads back
unchanged. Error: ContainerError (or another UruncError), one line.
"""

from __future__ import annotations

import os

from _fuzzlib import fresh, guard, one_line, write

from urunc import _errors, _jsonlite, lifecycle
from urunc.oci import store

_STATUSES = (store.CREATING, store.CREATED, store.RUNNING, store.STOPPED)


def one(data: bytes) -> None:
    with fresh("root") as root:
        container = store.Container(root, "c")
        os.mkdir(container.dir, 0o700)
        write(container.path(store.STATE_FILE), data)
        with guard(extra_read_roots=("/proc",)):
            pid, pid_start = lifecycle._salvage_pid(container)
            assert type(pid) is int and pid >= 0 and (pid_start is None or type(pid_start) is int)
            try:
                record = container.load()
                status = container.status()
                state = container.oci_state()
                printed = _jsonlite.dumps(state, indent=2)
                container.save()
            except _errors.UruncError as exc:
                one_line(exc)
                return
            again = store.Container(root, "c")
            assert again.load() == record, "the saved record reads back differently"
    assert _jsonlite.loads(printed) == state
    assert status in _STATUSES, status
    assert state["status"] == status and state["id"] == "c"
    assert type(state["pid"]) is int and 0 <= state["pid"] < 2**31, state["pid"]
    for key in ("bundle", "rootfs", "created"):
        assert isinstance(state[key], str), (key, state[key])
    annotations = state["annotations"]
    assert isinstance(annotations, dict) and all(isinstance(v, str) for v in annotations.values()), annotations
