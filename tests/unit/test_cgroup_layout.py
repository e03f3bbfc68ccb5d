"""cgroup path computation, limits and file writes (urunc.host.cgroups).

This machine is cgroup v1 (hybrid), so the v2 layout is exercised on a fake
cgroup tree in tmp: plain directories and files standing in for cgroupfs.
That is the one place a fake is acceptable; the v1 path is tested for real in
tests/runtime/test_cgroups.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from urunc import _errors
from urunc.host import cgroups
from urunc.oci.spec import Spec
from urunc.unikernel.plan import Plan

V1_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,relatime,cpu,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
"""
V2_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
PROC_CGROUPS = """\
#subsys_name\thierarchy\tnum_cgroups\tenabled
cpu\t2\t1\t1
cpuacct\t2\t1\t1
memory\t4\t1\t1
pids\t8\t1\t1
"""


def spec(linux: dict[str, object]) -> Spec:
    return Spec("/b", {"linux": linux})


def plan(memory_mib: int = 64, vcpus: int = 1) -> Plan:
    values: dict[str, object] = dict.fromkeys(Plan.__slots__, "")
    values.update(memory_mib=memory_mib, vcpus=vcpus)
    return Plan(**values)


def test_mode_detection_v1_hybrid_and_v2() -> None:
    version, mounts = cgroups.read_mounts(V1_MOUNTS, PROC_CGROUPS)
    assert version == 1
    assert mounts == {"cpu": "/sys/fs/cgroup/cpu,cpuacct", "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
                      "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"}
    assert cgroups.read_mounts(V2_MOUNTS, PROC_CGROUPS) == (2, {"": "/sys/fs/cgroup"})
    with pytest.raises(_errors.HostError):
        cgroups.read_mounts("proc /proc proc rw 0 0\n", PROC_CGROUPS)


def test_memory_is_guest_plus_64_mib_plus_5_percent() -> None:
    assert cgroups.memory_limit_bytes(64) == (64 + 64 + 4) * 1024 * 1024
    assert cgroups.memory_limit_bytes(1000) == (1000 + 64 + 50) * 1024 * 1024
    assert cgroups.memory_limit_bytes(8) == (8 + 64 + 1) * 1024 * 1024


@pytest.mark.parametrize(("value", "systemd", "expected"), [
    ("/default/c1", False, "/default/c1"),
    ("kube/pod/c1", False, "kube/pod/c1"),
    ("/a//./b/", False, "/a/b"),
    ("", False, "c1"),
    ("system.slice:docker:abc", True, "/system.slice/docker-abc.scope"),
    ("kubepods-besteffort-pod12.slice:cri-containerd:abc", True,
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"),
    (":urunc:x", True, "/system.slice/urunc-x.scope"),
    ("", True, "/system.slice/urunc-c1.scope"),
])
def test_container_path(value: str, systemd: bool, expected: str) -> None:
    assert cgroups.container_path(value, "c1", systemd) == expected


@pytest.mark.parametrize(("value", "systemd"), [
    ("/a/../../etc", False), ("../x", False), ("/", False), ("a\0b", False),
    ("nocolons", True), ("a.slice:p", True), ("bad:p:n", True), ("a--b.slice:p:n", True),
    ("x.slice:p:n/../..", True),
])
def test_bad_paths_are_refused(value: str, systemd: bool) -> None:
    with pytest.raises(_errors.BundleError):
        cgroups.container_path(value, "c1", systemd)


def test_relative_paths_nest_under_our_own_cgroup() -> None:
    own = cgroups.own_cgroups("4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/user.slice\n")
    assert own == {"memory": "/process_api/x", "cpu": "/", "cpuacct": "/", "": "/user.slice"}
    mounts = {"memory": "/cg/memory", "cpu": "/cg/cpu,cpuacct", "cpuacct": "/cg/cpu,cpuacct"}
    dirs = cgroups.host_dirs(1, mounts, own, "ns/c1")
    # cpu and cpuacct share a hierarchy: one directory, joined once
    assert dirs == {"memory": "/cg/memory/process_api/x/ns/c1", "cpu": "/cg/cpu,cpuacct/ns/c1"}
    assert cgroups.host_dirs(1, mounts, own, "/ns/c1")["memory"] == "/cg/memory/ns/c1"


def test_v1_limits_from_spec() -> None:
    s = spec({"resources": {"cpu": {"quota": 50000, "period": 100000, "shares": 512, "cpus": "0-1"},
                            "pids": {"limit": 99}}})
    assert cgroups.limits(s, plan(128, 1), 1) == {
        "memory": {"memory.limit_in_bytes": str((128 + 64 + 7) * 1024 * 1024)},
        "cpu": {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "50000", "cpu.shares": "512"},
        "pids": {"pids.max": "99"},
        "cpuset": {"cpuset.cpus": "0-1"},
    }


def test_default_pids_and_unlimited_cpu_on_v2() -> None:
    files = cgroups.limits(spec({}), plan(64, 2), 2)[""]
    assert files == {"memory.max": str(132 * 1024 * 1024), "cpu.max": "max 100000", "pids.max": "258"}


@pytest.mark.parametrize("resources", [
    {"pids": {"limit": "10"}}, {"pids": {"limit": 2**40}}, {"cpu": {"shares": 1}},
    {"cpu": {"cpus": "0-1;rm -rf /"}}, {"cpu": {"mems": 3}}, {"cpu": {"period": 10}},
    {"cpu": {"quota": 5, "period": 100000}},
])
def test_bad_resources_are_refused(resources: dict[str, object]) -> None:
    with pytest.raises(_errors.BundleError):
        cgroups.limits(spec({"resources": resources}), plan(), 1)


def fake_v2_tree(root: Path) -> Path:
    """A directory standing in for a cgroup2 mount (kernel files are plain files here)."""
    point = root / "cgroup"
    point.mkdir()
    (point / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (point / "cgroup.subtree_control").write_text("")
    return point


def test_v2_setup_on_a_fake_tree_writes_limits_records_and_releases(tmp_path: Path) -> None:
    point = fake_v2_tree(tmp_path)
    existing = point / "kubepods"
    existing.mkdir()
    (existing / "cgroup.subtree_control").write_text("")
    state = tmp_path / "state"
    state.mkdir()

    real_mkdir = cgroups.os.mkdir

    def mkdir_with_files(path: str, mode: int = 0o777) -> None:
        # cgroupfs populates a new directory with its interface files
        real_mkdir(path, mode)
        for name in ("cgroup.procs", "cgroup.subtree_control", "memory.max", "cpu.max", "pids.max"):
            Path(path, name).write_text("")

    s = spec({"cgroupsPath": "/kubepods/pod1/c1", "resources": {"cpu": {"quota": 20000}}})
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cgroups.os, "mkdir", mkdir_with_files)
        procs = cgroups.setup(str(state), "c1", s, plan(256, 1), False,
                              layout=(2, {"": str(point)}), own_text="0::/\n")
    leaf = point / "kubepods" / "pod1" / "c1"
    assert procs == [str(leaf / "cgroup.procs")]
    assert (leaf / "memory.max").read_text() == str((256 + 64 + 13) * 1024 * 1024)
    assert (leaf / "cpu.max").read_text() == "20000 100000"
    assert (leaf / "pids.max").read_text() == "257"
    # controllers delegated at every level above the leaf, not in the leaf itself
    for level in (point, existing, existing / "pod1"):
        assert (level / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    assert (leaf / "cgroup.subtree_control").read_text() == ""
    resources = json.loads((state / "resources.json").read_text())
    assert resources == [{"kind": "cgroup", "dirs": [str(existing / "pod1"), str(leaf)],
                          "leaves": [str(leaf)]}]
    # release removes exactly what was created (rmdir needs empty dirs: drop the fake files)
    for d in (leaf, existing / "pod1"):
        for f in d.iterdir():
            if f.is_file():
                f.unlink()
    cgroups.release(resources[0], mount_points=[str(point)])
    assert not (existing / "pod1").exists()
    assert existing.is_dir()


def test_release_keeps_a_shared_ancestor_in_use(tmp_path: Path) -> None:
    parent = tmp_path / "ns"
    (parent / "other").mkdir(parents=True)
    (parent / "mine").mkdir()
    cgroups.release({"kind": "cgroup", "dirs": [str(parent), str(parent / "mine")],
                     "leaves": [str(parent / "mine")]}, mount_points=[str(tmp_path)])
    assert not (parent / "mine").exists()
    assert (parent / "other").is_dir()


def test_joining_names_the_writer(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.write_text("")
    cgroups.join([str(tasks)])
    assert tasks.read_text() == "0"


@pytest.mark.parametrize("dirs", [["/etc/urunc-not-a-cgroup"], ["{point}/../outside"], ["{point}"],
                                  ["{point}/a/./b"], ["relative/dir"]])
def test_release_refuses_a_directory_not_below_a_cgroup_mount(tmp_path: Path, dirs: list[str]) -> None:
    # resources.json is the container's, but a damaged or forged one must not name another directory
    point = tmp_path / "cgroup"
    (point / "a" / "b").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    named = [d.format(point=point) for d in dirs]
    with pytest.raises(_errors.HostError, match="not below a cgroup mount"):
        cgroups.release({"kind": "cgroup", "dirs": named, "leaves": named}, mount_points=[str(point)])
    assert outside.is_dir() and point.is_dir() and (point / "a" / "b").is_dir()
