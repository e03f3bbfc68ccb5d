"""A damaged or tampered state directory (issue 12, items 5-7).

The state directory is root's, so all of this is defence in depth: a record that
cannot be read still leads `delete --force` to the container's init (by its cgroup)
and `list` still shows it; no command signals a process the record names unless its
start time matches and it is in the container's cgroup; nothing outside the
container's own directories is removed, whatever resources.json says.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, cgroups_named, container_state, hello_bundle, leftovers, urunc
from tests.helpers.procs import processes_naming, state_letter

DEAD = ("gone", "Z", "X")


def _start_time(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rfind(b")") + 2:].split()[19])


@pytest.fixture
def cgroup_name() -> str:
    return f"urunc-damaged-{os.getpid()}"


def _create(root: Path, tmp_path: Path, cid: str, cgroup_name: str) -> int:
    """A created container of the sample guest (waiting for start) in /CGROUP_NAME-CID/CID (a parent
    of its own, which it creates and removes); its init's PID."""
    bundle = hello_bundle(tmp_path / f"bundle-{cid}", args=("hello", "wait"),
                          cgroups_path=f"/{cgroup_name}-{cid}/{cid}")
    with open(bundle / "console.log", "wb") as sink:
        result = subprocess.run([URUNC, "--root", str(root), "create", "--bundle", str(bundle),
                                 cid], stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, timeout=30,
                                check=False)
    assert result.returncode == 0, (bundle / "console.log").read_text()
    pid = int(container_state(root, cid)["pid"])
    assert state_letter(pid) == "S"
    return pid


def _one_line(result: subprocess.CompletedProcess[str], *needles: str) -> str:
    lines = result.stderr.splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("urunc: "), result.stderr
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def bystander() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated live process, in no container's cgroup."""
    sleeper = subprocess.Popen(["sleep", "300"])
    time.sleep(0.05)  # start times count 10 ms ticks: a container created next must not share its tick
    yield sleeper
    sleeper.kill()
    sleeper.wait()


def _rewrite(root: Path, cid: str, **changes: object) -> None:
    path = root / cid / "urunc-state.json"
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record, separators=(",", ":")))


# -- item 6: a damaged record ----------------------------------------------------------------------

DAMAGE = ["truncated", "symlink-to-nothing", "symlink-to-another-record", "fifo", "null-start-time"]


@pytest.mark.parametrize("damage", DAMAGE)
def test_delete_force_finds_the_init_of_a_damaged_record_by_its_cgroup(
        state_root: Path, tmp_path: Path, cgroup_name: str, damage: str) -> None:
    pid = _create(state_root, tmp_path, "victim", cgroup_name)
    other_pid = _create(state_root, tmp_path, "other", cgroup_name)
    other_record = (state_root / "other" / "urunc-state.json").read_bytes()
    record = state_root / "victim" / "urunc-state.json"
    if damage == "truncated":
        record.write_bytes(record.read_bytes()[:20])  # before the PID: nothing to salvage
    elif damage == "null-start-time":
        _rewrite(state_root, "victim", pid_start=None)
    else:
        record.unlink()
        if damage == "fifo":
            os.mkfifo(record)
        else:
            record.symlink_to(state_root / "other" / "urunc-state.json" if damage == "symlink-to-another-record"
                              else tmp_path / "nothing-here")

    if damage != "null-start-time":  # (that record reads: its PID is simply not trusted)
        listed = urunc(state_root, "list", "--format", "json", timeout=10)
        assert listed.returncode == 0, listed.stderr
        status = {s["id"]: s["status"] for s in json.loads(listed.stdout)}
        assert status == {"victim": "damaged", "other": "created"}
        assert "victim\t0\tdamaged" in urunc(state_root, "list", timeout=10).stdout
        _one_line(urunc(state_root, "state", "victim", timeout=10), "state of container victim is corrupt")
        _one_line(urunc(state_root, "delete", "victim", timeout=10), "corrupt")  # without --force: refused
    # kill acts on nothing it cannot name (the symlinked record names the other container's init)
    assert urunc(state_root, "kill", "victim", "KILL", timeout=10).returncode != 0
    assert state_letter(pid) == "S" and state_letter(other_pid) == "S"

    result = urunc(state_root, "delete", "--force", "victim", timeout=30)
    assert result.returncode == 0, result.stderr
    assert state_letter(pid) in DEAD
    assert cgroups_named("victim", f"{cgroup_name}-victim") == []
    assert leftovers(state_root) == ["other"]
    # the other container was not touched
    assert state_letter(other_pid) == "S"
    assert (state_root / "other" / "urunc-state.json").read_bytes() == other_record
    assert container_state(state_root, "other")["status"] == "created"
    assert urunc(state_root, "delete", "--force", "other").returncode == 0
    assert processes_naming(str(state_root)) == []
    assert cgroups_named(f"{cgroup_name}-victim", f"{cgroup_name}-other", "other") == []


def test_the_native_front_end_hands_a_damaged_record_to_python(state_root: Path, tmp_path: Path,
                                                               cgroup_name: str) -> None:
    # stopped, then damaged: the front end deletes stopped containers and kills natively
    pid = _create(state_root, tmp_path, "v1", cgroup_name)
    assert urunc(state_root, "kill", "v1", "KILL").returncode == 0
    record = state_root / "v1" / "urunc-state.json"
    record.unlink()
    record.symlink_to("/etc/passwd")
    _one_line(urunc(state_root, "state", "v1"), "corrupt", "a symbolic link")
    _one_line(urunc(state_root, "kill", "v1", "KILL"), "corrupt")
    _one_line(urunc(state_root, "delete", "v1"), "corrupt")
    assert Path("/etc/passwd").stat().st_size > 0 and leftovers(state_root) == ["v1"]
    assert urunc(state_root, "delete", "--force", "v1").returncode == 0
    assert state_letter(pid) in DEAD and leftovers(state_root) == [] and cgroups_named("v1", f"{cgroup_name}-v1") == []


# -- item 7: PID reuse and forged start times ------------------------------------------------------

@pytest.mark.parametrize("start", ["null", "ours", "forged-to-match", "forged-wrong"])
def test_a_record_naming_an_unrelated_process_never_gets_it_signalled(
        state_root: Path, tmp_path: Path, cgroup_name: str, bystander: subprocess.Popen[bytes],
        start: str) -> None:
    pid = _create(state_root, tmp_path, "reuse", cgroup_name)
    starts = {"null": None, "ours": _start_time(pid), "forged-to-match": _start_time(bystander.pid),
              "forged-wrong": _start_time(bystander.pid) + 7}
    _rewrite(state_root, "reuse", pid=bystander.pid, pid_start=starts[start])

    state = urunc(state_root, "state", "reuse")
    assert state.returncode == 0, state.stderr
    for signal in ("KILL", "TERM", "9"):
        urunc(state_root, "kill", "reuse", signal)
        urunc(state_root, "kill", "--all", "reuse", signal)
        assert bystander.poll() is None and state_letter(bystander.pid) in ("S", "R")
    if start != "forged-to-match":  # no start time of its own: not alive, never the container's
        assert json.loads(state.stdout)["status"] == "stopped"
        assert json.loads(state.stdout)["pid"] == 0
    result = urunc(state_root, "delete", "--force", "reuse", timeout=30)
    assert result.returncode == 0, result.stderr
    assert bystander.poll() is None and state_letter(bystander.pid) in ("S", "R")
    assert state_letter(pid) in DEAD  # the real init, found by its cgroup
    assert leftovers(state_root) == [] and cgroups_named("reuse", f"{cgroup_name}-reuse") == []


# -- item 7: resources.json naming what is not the container's --------------------------------------

def test_delete_force_removes_nothing_outside_the_containers_own_directories(
        state_root: Path, tmp_path: Path, cgroup_name: str) -> None:
    pid = _create(state_root, tmp_path, "res", cgroup_name)
    victim_file = tmp_path / "victim-file"
    victim_file.write_text("keep me")
    victim_dir = tmp_path / "victim-dir"
    victim_dir.mkdir()
    fifo = tmp_path / "netns-fifo"
    os.mkfifo(fifo)
    path = state_root / "res" / "resources.json"
    recorded = json.loads(path.read_text())
    st = fifo.stat()
    recorded += [
        {"kind": "file", "path": str(victim_file)},
        {"kind": "file", "path": str(state_root / "res" / ".." / ".." / "victim-file")},
        {"kind": "cgroup", "dirs": [str(victim_dir)], "leaves": [str(victim_dir)]},
        {"kind": "cgroup", "dirs": [f"/sys/fs/cgroup/pids/../../../{victim_dir}"], "leaves": []},
        {"kind": "tap", "netns": str(fifo), "netns_id": [st.st_dev, st.st_ino], "tap": "tap0"},
    ]
    path.write_text(json.dumps(recorded))
    result = urunc(state_root, "delete", "--force", "res", timeout=30)
    assert result.returncode == 0, result.stderr
    assert victim_file.read_text() == "keep me" and victim_dir.is_dir() and fifo.exists()
    assert state_letter(pid) in DEAD and leftovers(state_root) == []
    assert cgroups_named("res", f"{cgroup_name}-res") == []


def test_a_damaged_record_with_a_forged_resources_file_never_empties_another_containers_cgroup(
        state_root: Path, tmp_path: Path, cgroup_name: str) -> None:
    """No readable record: resources.json alone names the cgroup, so a cgroup not named for the
    container (here: the other container's, copied in) is left as it is, and its init lives."""
    pid = _create(state_root, tmp_path, "forger", cgroup_name)
    other_pid = _create(state_root, tmp_path, "bystander", cgroup_name)
    forged = state_root / "forger" / "resources.json"
    theirs = json.loads((state_root / "bystander" / "resources.json").read_text())
    forged.write_text(json.dumps([*json.loads(forged.read_text()),
                                  *(r for r in theirs if r.get("kind") == "cgroup")]))
    (state_root / "forger" / "urunc-state.json").write_text("{truncated")
    result = urunc(state_root, "delete", "--force", "forger", timeout=30)
    assert result.returncode == 0, result.stderr
    assert state_letter(pid) in DEAD and leftovers(state_root) == ["bystander"]
    assert state_letter(other_pid) == "S"
    assert cgroups_named("bystander", f"{cgroup_name}-bystander") != []
    assert container_state(state_root, "bystander")["status"] == "created"
    assert urunc(state_root, "delete", "--force", "bystander").returncode == 0
    assert cgroups_named("forger", f"{cgroup_name}-forger", "bystander", f"{cgroup_name}-bystander") == []


# -- item 5: a read-only state root, an ID too long for a directory name --------------------------

@pytest.fixture
def ro_root(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "ro"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0711", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mnt)], check=False)
        for entry in mnt.iterdir():
            urunc(mnt, "delete", "--force", entry.name)
        subprocess.run(["umount", str(mnt)], check=True)


@pytest.mark.parametrize("force", [False, True], ids=["delete", "delete-force"])
def test_delete_on_a_read_only_state_root_fails_in_one_line(ro_root: Path, tmp_path: Path, cgroup_name: str,
                                                           force: bool) -> None:
    pid = _create(ro_root, tmp_path, "ro1", cgroup_name)
    if not force:
        assert urunc(ro_root, "kill", "ro1", "KILL").returncode == 0
    subprocess.run(["mount", "-o", "remount,ro", str(ro_root)], check=True)
    line = _one_line(urunc(ro_root, "delete", *(["--force"] if force else []), "ro1"),
                     "cannot delete container ro1: Read-only file system")
    assert str(ro_root / "ro1") in line
    assert state_letter(pid) in DEAD
    subprocess.run(["mount", "-o", "remount,rw", str(ro_root)], check=True)
    assert container_state(ro_root, "ro1")["status"] == "stopped"  # still there to delete
    assert urunc(ro_root, "delete", "ro1").returncode == 0
    assert leftovers(ro_root) == [] and cgroups_named("ro1", f"{cgroup_name}-ro1") == []


def test_an_id_too_long_for_a_directory_name_is_refused_in_one_line_by_every_command(
        state_root: Path, tmp_path: Path) -> None:
    bundle = hello_bundle(tmp_path / "bundle")
    long_id = "a" * 1000
    for argv in (["create", "--bundle", str(bundle), long_id], ["state", long_id], ["kill", long_id, "KILL"],
                 ["delete", long_id], ["delete", "--force", long_id], ["start", long_id]):
        line = _one_line(urunc(state_root, *argv), "invalid container id", "1000 characters, at most 255")
        assert len(line) < 200
    assert leftovers(state_root) == []
    # the C front end and Python draw the line at the same place: 255 is an ID (the front end
    # answers for it natively), 256 is not
    assert urunc(state_root, "state", "b" * 255).stderr == f"urunc: container {'b' * 255} does not exist\n"
    _one_line(urunc(state_root, "state", "b" * 256), "invalid container id", "256 characters")
