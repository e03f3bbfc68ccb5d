"""The state answer Python renders for the C front end at every save (oci/store.py): one rule for
the status, every variant the front end may print identical to what `urunc state` prints."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from urunc import OCI_VERSION, _jsonlite
from urunc.oci import store
from urunc.oci.store import CREATED, CREATING, PAUSED, RUNNING, STOPPED

# (recorded status, a PID recorded) -> status for each (alive, exec.fifo there, paused mark there)
RULE = {
    (STOPPED, True): {facts: STOPPED for facts in itertools.product((0, 1), repeat=3)},
    (CREATING, False): {facts: CREATING for facts in itertools.product((0, 1), repeat=3)},
    (CREATED, False): {facts: STOPPED for facts in itertools.product((0, 1), repeat=3)},
    (CREATING, True): {(a, f, p): CREATING if a else STOPPED for a, f, p in itertools.product((0, 1), repeat=3)},
    (CREATED, True): {(a, f, p): STOPPED if not a else CREATED if f else PAUSED if p else RUNNING
                      for a, f, p in itertools.product((0, 1), repeat=3)},
    (RUNNING, True): {(a, f, p): STOPPED if not a else PAUSED if p else RUNNING
                      for a, f, p in itertools.product((0, 1), repeat=3)},
}


@pytest.mark.parametrize("recorded", sorted(RULE))
def test_the_status_rule(recorded: tuple[str, bool]) -> None:
    status, has_pid = recorded
    record = {"status": status, "pid": 7 if has_pid else 0}
    for (alive, fifo, paused), expected in RULE[recorded].items():
        assert store.derive_status(record, lambda a=alive: bool(a), lambda f=fifo: bool(f),
                                   lambda p=paused: bool(p)) == expected, (alive, fifo, paused)


def _parse(answer: bytes) -> tuple[list[str], list[bytes], list[bool]]:
    header, body = answer.split(b"\n", 1)
    fields = header.decode().split(" ")
    assert len(fields) == 8 + 16 and fields[0] == store.ANSWER_FORMAT
    head, tail = int(fields[6]), int(fields[7])
    lengths, flags = [int(n) for n in fields[8::2]], fields[9::2]
    assert head + tail + sum(lengths) == len(body) and set(flags) <= {"s", "-"}
    at, texts = head, []
    for length in lengths:
        texts.append(body[:head] + body[at:at + length] + body[len(body) - tail:])
        at += length
    return fields, texts, [flag == "s" for flag in flags]


RECORDS = [
    {"status": CREATED, "pid": 12, "pid_start": 34, "bundle": "/b", "annotations": {"é": "☕", "q": '"\\'}},
    {"status": RUNNING, "pid": 12, "pid_start": 34, "hooks": {"poststart": [{"path": "/x"}]}},
    {"status": CREATING, "pid": 0, "pid_start": None},
    {"status": STOPPED, "pid": 12, "pid_start": 34},
    {"status": CREATED, "pid": 12, "pid_start": None},
    {},
]


@pytest.mark.parametrize("record", RECORDS, ids=range(len(RECORDS)))
def test_every_variant_is_what_state_prints(tmp_path: Path, record: dict[str, object]) -> None:
    container = store.Container(str(tmp_path), "c1")
    container.create_dir()
    container.record = dict(record)
    container.save()
    data = Path(container.path(store.STATE_FILE)).read_bytes()
    answer = Path(container.path(store.ANSWER_FILE)).read_bytes()
    assert os.stat(container.path(store.ANSWER_FILE)).st_mode & 0o777 == 0o600
    fields, texts, startable = _parse(answer)
    assert fields[1:4] == ["c1", str(store.record_digest(data)), str(len(data))]
    pid, start = record.get("pid") or 0, record.get("pid_start")
    assert fields[4:6] == ([str(pid), str(start)] if pid and start is not None else ["0", "0"])
    poststart = bool(record.get("hooks"))
    for index, text in enumerate(texts):
        facts = [bool(index & bit) for bit in (1, 2, 4)]
        status = store.derive_status(container.record, *(lambda v=v: v for v in facts))
        assert text == (_jsonlite.dumps(container.oci_state(status), indent=2) + "\n").encode()
        assert _jsonlite.loads(text)["ociVersion"] == OCI_VERSION
        assert startable[index] == (status == CREATED and not poststart)


def test_a_record_no_urunc_writes_gets_no_answer(tmp_path: Path) -> None:
    container = store.Container(str(tmp_path), "c1")
    container.create_dir()
    container.record = {"status": RUNNING, "pid": 1, "pid_start": 2}
    container.save()
    assert Path(container.path(store.ANSWER_FILE)).exists()
    container.record["pid"] = "1"  # a type no urunc writes: only Python answers, in its own words
    container.save()
    assert not Path(container.path(store.ANSWER_FILE)).exists()


def test_the_record_digest() -> None:
    prime = (1 << 61) - 1
    assert store.record_digest(b"") == 0 and store.record_digest(b"\x01\x02") == 258
    assert store.record_digest(b"\xff" * 64) == (256**64 - 1) % prime
    assert store.record_digest(b"\x1f" + b"\xff" * 7) == ((1 << 61) - 1) % prime == 0
