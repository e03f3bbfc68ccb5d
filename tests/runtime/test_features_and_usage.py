"""`urunc features` says what urunc does, checked against what it does; usage errors exit 1 as runc's.

Each claim of `features` is tried on the installed runtime: every hook stage it lists is
accepted by `create` and the standard stages it leaves out are refused; so for namespaces;
the systemd cgroup driver it claims takes a systemd cgroupsPath; seccomp enabled means a
spec with linux.seccomp gets a confined monitor.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, create, hello_bundle, urunc, write_spec

HOOK_STAGES = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
NAMESPACES = ("cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts")


@pytest.fixture
def features(state_root: Path) -> dict[str, object]:
    return dict(json.loads(urunc(state_root, "features", check=True).stdout))


def _spec(bundle: Path) -> dict[str, object]:
    return dict(json.loads((bundle / "config.json").read_text()))


def test_listed_hooks_are_exactly_the_stages_create_accepts(features: dict[str, object], tmp_path: Path,
                                                            state_root: Path) -> None:
    accepted = []
    for n, stage in enumerate(HOOK_STAGES):
        bundle = hello_bundle(tmp_path / f"h{n}")
        spec = _spec(bundle)
        spec["hooks"] = {stage: [{"path": "/bin/true"}]}
        write_spec(bundle, spec)
        code, out = create(state_root, bundle, f"h{n}")
        if code == 0:
            accepted.append(stage)
            urunc(state_root, "delete", "--force", f"h{n}", check=True)
        else:
            assert f"{stage} hooks are not supported" in out, out
    assert accepted, "no hook stage accepted"
    assert features["hooks"] == accepted


def test_listed_namespaces_are_exactly_the_new_ones_create_accepts(features: dict[str, object], tmp_path: Path,
                                                                   state_root: Path) -> None:
    accepted = []
    for kind in NAMESPACES:
        bundle = hello_bundle(tmp_path / kind, namespaces=[{"type": "pid"}, {"type": kind}])
        code, out = create(state_root, bundle, f"ns-{kind}")
        if code == 0:
            accepted.append(kind)
            urunc(state_root, "delete", "--force", f"ns-{kind}", check=True)
        else:
            assert "not supported" in out, out
    linux = features["linux"]
    assert isinstance(linux, dict)
    assert linux["namespaces"] == sorted(accepted)


def test_the_systemd_cgroup_driver_it_claims_takes_a_systemd_path(features: dict[str, object], tmp_path: Path,
                                                                   state_root: Path) -> None:
    linux = features["linux"]
    assert isinstance(linux, dict)
    assert linux["cgroup"]["systemd"] is True
    name = f"feat{os.getpid()}"
    bundle = hello_bundle(tmp_path / "sd", cgroups_path=f"system.slice:urunc:{name}")
    with open(tmp_path / "sd.log", "wb") as sink:  # the init keeps our stdout: a file, not a pipe
        result = subprocess.run([URUNC, "--root", str(state_root), "--systemd-cgroup", "create", "--bundle",
                                 str(bundle), "sd1"], stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                                timeout=30, check=False)
    assert result.returncode == 0, (tmp_path / "sd.log").read_text()
    pid = int(json.loads(urunc(state_root, "state", "sd1", check=True).stdout)["pid"])
    cgroup = Path(f"/proc/{pid}/cgroup").read_text()
    assert f"system.slice/urunc-{name}.scope" in cgroup, cgroup
    urunc(state_root, "--systemd-cgroup", "delete", "--force", "sd1", check=True)


def test_seccomp_enabled_means_a_confined_monitor(features: dict[str, object], tmp_path: Path,
                                                  state_root: Path) -> None:
    linux = features["linux"]
    assert isinstance(linux, dict)
    assert linux["seccomp"]["enabled"] is True
    bundle = hello_bundle(tmp_path / "sc", args=("hello", "wait"))
    spec = _spec(bundle)
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}  # type: ignore[index]
    write_spec(bundle, spec)
    assert create(state_root, bundle, "sc1")[0] == 0
    urunc(state_root, "start", "sc1", check=True)
    deadline = time.monotonic() + 20
    while b"waiting\n" not in (bundle / "console.log").read_bytes():  # QEMU runs the guest
        assert time.monotonic() < deadline, (bundle / "console.log").read_text()
        time.sleep(0.02)
    pid = int(json.loads(urunc(state_root, "state", "sc1", check=True).stdout)["pid"])
    assert Path(f"/proc/{pid}/status").read_text().split("Seccomp:")[1].split()[0] == "2"  # a filter
    urunc(state_root, "delete", "--force", "sc1", check=True)


@pytest.mark.parametrize("argv", [
    ("frobnicate",),
    ("--no-such-global", "list"),
    ("--root",),
    ("--log-format", "xml", "list"),
], ids=lambda a: " ".join(a))
def test_usage_errors_exit_1_with_one_line(argv: tuple[str, ...]) -> None:
    result = subprocess.run([URUNC, *argv], capture_output=True, text=True, timeout=30,
                            env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("urunc: "), result.stderr
