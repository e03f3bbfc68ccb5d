"""The template store's checks (urunc/templates.py), on hand-made template directories: every
way a template can be damaged or foreign is refused in one line naming it; a good one loads."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from urunc import templates

FACTS = {"format": 1, "files": [["/k", 1, 2, 3, 4]], "memory_mib": 8}


def _make(directory: Path, key: str = "k1", facts: dict[str, object] | None = None) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    where = directory / key
    where.mkdir(mode=0o700)
    (where / "ram").write_bytes(b"\0" * 8192)
    (where / "state").write_bytes(b"QEVM device state")
    for name in ("ram", "state"):
        os.chmod(where / name, 0o600)
    st = (where / "ram").stat()
    meta = {"format": 1, "key": key, "facts": facts or FACTS, "ram": [st.st_size, st.st_mtime_ns, st.st_ino],
            "state_bytes": 17, "state_sha256": hashlib.sha256(b"QEVM device state").hexdigest()}
    (where / "meta.json").write_text(json.dumps(meta))
    return where


def test_a_good_template_loads(tmp_path: Path) -> None:
    _make(tmp_path / "t")
    assert templates.load(str(tmp_path / "t"), "k1", FACTS)["key"] == "k1"


@pytest.mark.parametrize("damage, words", [
    ("truncate state", "bytes"),
    ("flip state", "checksum"),
    ("touch ram", "memory file changed"),
    ("grow ram", "memory file changed"),
    ("no meta", "no meta.json"),
    ("bad meta", "malformed meta.json"),
    ("other key", "another key"),
    ("foreign", "other files"),
    ("writable", "writable by others"),
    ("symlink state", "not a regular file"),
])
def test_a_damaged_or_foreign_template_is_refused_in_one_line(tmp_path: Path, damage: str, words: str) -> None:
    where = _make(tmp_path / "t")
    if damage == "truncate state":
        os.truncate(where / "state", 5)
    elif damage == "flip state":
        (where / "state").write_bytes(b"QEVM device statf")
    elif damage == "touch ram":
        os.utime(where / "ram", ns=(1, 1))
    elif damage == "grow ram":
        with open(where / "ram", "ab") as f:
            f.write(b"x")
    elif damage == "no meta":
        (where / "meta.json").unlink()
    elif damage == "bad meta":
        (where / "meta.json").write_text("{not json")
    elif damage == "other key":
        meta = json.loads((where / "meta.json").read_text())
        meta["key"] = "k2"
        (where / "meta.json").write_text(json.dumps(meta))
    elif damage == "foreign":
        meta = json.loads((where / "meta.json").read_text())
        meta["facts"]["files"] = [["/other-kernel", 1, 2, 3, 4]]
        (where / "meta.json").write_text(json.dumps(meta))
    elif damage == "writable":
        os.chmod(where / "state", 0o666)
    elif damage == "symlink state":
        (where / "state").rename(where / "state.real")
        (where / "state").symlink_to(where / "state.real")
    with pytest.raises(templates.TemplateError) as caught:
        templates.load(str(tmp_path / "t"), "k1", FACTS)
    message = str(caught.value)
    assert words in message and "\n" not in message
    assert "k1" in message or str(where) in message


def test_the_key_changes_with_every_fact() -> None:
    base = templates.key_of(FACTS)
    assert templates.key_of(dict(FACTS, memory_mib=16)) != base
    assert templates.key_of(dict(FACTS, files=[["/k", 1, 2, 3, 5]])) != base
    assert templates.key_of(dict(FACTS)) == base


def test_rm_refuses_keys_that_are_paths(tmp_path: Path) -> None:
    _make(tmp_path / "t")
    for bad in ("../t", ".lock", "", "a/b"):
        with pytest.raises(Exception) as caught:
            templates.remove(str(tmp_path / "t"), bad)
        assert "invalid template key" in str(caught.value)
    templates.remove(str(tmp_path / "t"), "k1")
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [".lock"]


def test_making_room_removes_the_least_recently_used_first(tmp_path: Path) -> None:
    directory = tmp_path / "t"
    old, new = _make(directory, "old"), _make(directory, "new")
    os.utime(old, (1, 1))
    templates._make_room(str(directory), 20 * 1024 * 1024, 20 * 1024 * 1024 + 8192 + 8192)
    assert not old.exists() and new.exists()
    with pytest.raises(templates.TemplateError) as caught:
        templates._make_room(str(directory), 64 * 1024 * 1024, 32 * 1024 * 1024)
    assert "does not fit" in str(caught.value)


def test_start_takes_the_template_whose_devices_match_the_network() -> None:
    from _plans import plan

    p = plan(guest="linux", netns="", files={"snapshot": "/t/plain", "snapshot_card": "/t/card", "job": "/j"})
    assert templates.for_network(p, True).files == {"snapshot": "/t/card", "job": "/j"}
    assert templates.for_network(p, False).files == {"snapshot": "/t/plain", "job": "/j"}
    cold = plan(guest="linux", files={"initrd": "/i"})
    assert templates.for_network(cold, True).files == {"initrd": "/i"}
