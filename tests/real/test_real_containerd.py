"""Real unikernels as a user runs them: images built with urunc-build, imported, ``ctr run`` with urunc.

A private containerd (its own namespace and IDs) and CNI network; Solo5's
tenders on PATH, as installed by ``make tenders``; the Unikraft helloworld
under QEMU (TCG).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from _real import SOLO5, UNIKRAFT

from tests.helpers.bundles import cgroups_named
from tests.helpers.cni import CniNetwork
from tests.helpers.containerd import RUNC_SHIM_ROOT, Containerd
from tests.helpers.procs import DEAD, state_letter
from urunc.image import build_image

RUNTIME = "io.containerd.urunc.v2"


def image(containerd: Containerd, tmp_path: Path, kernel: Path, labels: dict[str, str], cmd: Sequence[str],
          extra: dict[str, bytes] | None = None, links: dict[str, str] | None = None) -> str:
    """Build and import an image holding KERNEL as /unikernel/NAME, EXTRA files and LINKS symlinks."""
    context = tmp_path / f"ctx-{secrets.token_hex(3)}"
    (context / "unikernel").mkdir(parents=True)
    shutil.copy2(kernel, context / "unikernel" / kernel.name)
    for name, data in (extra or {}).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_bytes(data)
    for name, target in (links or {}).items():
        (context / name).symlink_to(target)
    label_text = " ".join(f"com.urunc.unikernel.{k}={v}" for k, v in
                          {**labels, "binary": f"/unikernel/{kernel.name}"}.items())
    (context / "Containerfile").write_text(f"FROM scratch\nCOPY . /\nLABEL {label_text}\nCMD {json.dumps(list(cmd))}\n")
    tag = f"urunc-real-{kernel.name.replace('_', '-').replace('.', '-').lower()}:{secrets.token_hex(3)}"
    built = build_image(context / "Containerfile", context, tag, tmp_path / f"{secrets.token_hex(3)}.tar")
    containerd.ctr("image", "import", str(built.output), timeout=120)
    return f"docker.io/library/{tag}"


@pytest.fixture
def images(containerd: Containerd) -> Iterator[list[str]]:
    """Images a test imported, removed at its end."""
    made: list[str] = []
    yield made
    for name in made:
        containerd.ctr("image", "rm", "--sync", name, check=False)


def run(containerd: Containerd, image_name: str, cid: str, *args: str, timeout: float = 120
        ) -> subprocess.CompletedProcess[str]:
    try:
        return containerd.ctr("run", "--rm", "--runtime", RUNTIME, image_name, cid, *args, check=False,
                              timeout=timeout)
    finally:
        containerd.ctr("container", "rm", cid, check=False)


def _gone(containerd: Containerd, cid: str) -> None:
    assert not (RUNC_SHIM_ROOT / containerd.namespace / cid).exists()
    assert cid not in containerd.ctr("container", "ls", "-q").stdout.split()
    assert cgroups_named(cid) == []


def _solo5(monitor: str) -> str:
    return "hvt" if monitor.endswith("hvt") else "spt"


@pytest.mark.parametrize("hypervisor", ["solo5-hvt", "solo5-spt", "hvt", "spt"])
def test_hello_image_labelled_with_each_spelling(containerd: Containerd, tmp_path: Path, tenders: dict[str, str],
                                                 images: list[str], unique_id: str, hypervisor: str) -> None:
    if _solo5(hypervisor) == "hvt" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
        pytest.skip("solo5-hvt needs /dev/kvm")
    kernel = SOLO5 / f"test_hello.{_solo5(hypervisor)}"
    images.append(image(containerd, tmp_path, kernel, {"unikernelType": "solo5", "hypervisor": hypervisor},
                        ["Hello_Solo5"]))
    result = run(containerd, images[-1], unique_id)
    out = result.stdout.replace("\r\n", "\n")
    assert result.returncode == 0, out + result.stderr
    assert "Command line is: 'Hello_Solo5'\nSUCCESS\n" in out, out
    _gone(containerd, unique_id)


def test_exception_status_is_the_tenders(containerd: Containerd, tmp_path: Path, tenders: dict[str, str],
                                         images: list[str], unique_id: str, monitor: str) -> None:
    kernel = SOLO5 / f"test_exception.{monitor}"
    bare = subprocess.run([tenders[f"solo5-{monitor}"], "--mem=128", "--", str(kernel)], capture_output=True,
                          timeout=60, check=False).returncode
    expected = 128 - bare if bare < 0 else bare        # a signal's death as containerd reports it
    assert expected != 0
    images.append(image(containerd, tmp_path, kernel, {"unikernelType": "solo5", "hypervisor": monitor}, []))
    result = run(containerd, images[-1], unique_id)
    assert result.returncode == expected, result.stdout + result.stderr
    _gone(containerd, unique_id)


def test_blk_writes_the_image_file_not_the_host_path(containerd: Containerd, tmp_path: Path, monitor: str,
                                                     images: list[str], unique_id: str) -> None:
    # The image's /disk.img is an absolute symlink to a path that exists both in the image and on the host.
    host_file = tmp_path / "host" / "disk.img"
    host_file.parent.mkdir()
    host_file.write_bytes(bytes(1 << 20))
    images.append(image(containerd, tmp_path, SOLO5 / f"test_blk.{monitor}",
                        {"unikernelType": "solo5", "hypervisor": monitor, "block": "/disk.img"}, [],
                        extra={str(host_file).lstrip("/"): bytes(1 << 20)}, links={"disk.img": str(host_file)}))
    result = run(containerd, images[-1], unique_id)
    out = result.stdout.replace("\r\n", "\n")
    assert result.returncode == 0, out + result.stderr
    assert "\nSUCCESS\n" in out, out
    assert host_file.read_bytes() == bytes(1 << 20)
    _gone(containerd, unique_id)


def _task(containerd: Containerd, cid: str) -> tuple[int, str]:
    row = next(line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()
               if line.startswith(cid + " "))
    return int(row[1]), row[2]


def _host_links() -> set[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}


def test_net_through_cni_runs_with_its_own_argument_until_killed(
        containerd: Containerd, cni: CniNetwork, tmp_path: Path, monitor: str, images: list[str],
        unique_id: str) -> None:
    links_before = _host_links()
    images.append(image(containerd, tmp_path, SOLO5 / f"test_net.{monitor}",
                        {"unikernelType": "solo5", "hypervisor": monitor}, ["verbose"]))
    containerd.ctr("run", "--cni", "-d", "--runtime", RUNTIME, images[-1], unique_id, timeout=120)
    try:
        pid, status = _task(containerd, unique_id)
        assert status == "RUNNING"
        assert os.path.basename(os.readlink(f"/proc/{pid}/exe")) == f"solo5-{monitor}"
        argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]]
        assert argv[argv.index("--") + 2:] == ["verbose"], argv
        mac = json.loads(subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "link", "show", "eth0"],
                                        capture_output=True, text=True, check=True).stdout)[0]["address"]
        assert f"--net-mac:service0={mac}" in argv and any(a.startswith("--net:service0=") for a in argv), argv
        time.sleep(3)
        assert _task(containerd, unique_id) == (pid, "RUNNING")       # test_net serves until stopped
        containerd.ctr("task", "kill", "-s", "SIGKILL", unique_id)
        deadline = time.monotonic() + 30
        while state_letter(pid) not in DEAD and time.monotonic() < deadline:
            time.sleep(0.1)
        containerd.ctr("task", "delete", unique_id, timeout=60)
    finally:
        containerd.ctr("task", "delete", "--force", unique_id, check=False)
        containerd.ctr("container", "rm", unique_id, check=False)
    assert state_letter(pid) in DEAD
    _gone(containerd, unique_id)
    assert _host_links() - {cni.bridge} <= links_before


def test_net_2if_is_refused_in_one_line_naming_the_device(containerd: Containerd, cni: CniNetwork,
                                                          tmp_path: Path, monitor: str, images: list[str],
                                                          unique_id: str) -> None:
    images.append(image(containerd, tmp_path, SOLO5 / f"test_net_2if.{monitor}",
                        {"unikernelType": "solo5", "hypervisor": monitor}, ["verbose"]))
    result = containerd.ctr("run", "--cni", "--rm", "--runtime", RUNTIME, images[-1], unique_id, check=False,
                            timeout=120)
    containerd.ctr("container", "rm", unique_id, check=False)
    assert result.returncode != 0
    assert "second NET_BASIC device 'service1'" in result.stderr, result.stderr
    _gone(containerd, unique_id)


@pytest.fixture(scope="module")
def unikraft_kernel(shared: Path) -> Path:
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 is not installed")
    return UNIKRAFT / "helloworld_qemu-x86_64"


def test_unikraft_helloworld_prints_its_arguments(containerd: Containerd, tmp_path: Path, unikraft_kernel: Path,
                                                  images: list[str], unique_id: str) -> None:
    images.append(image(containerd, tmp_path, unikraft_kernel,
                        {"unikernelType": "unikraft", "hypervisor": "qemu", "unikernelVersion": "0.17.0"},
                        ["helloworld"]))
    result = run(containerd, images[-1], unique_id, "first", "b c", timeout=180)
    out = result.stdout.replace("\r\n", "\n")
    assert result.returncode == 0, out + result.stderr
    assert "Hello world!\nArguments:" in out, out
    # Without uklibparam every word of the command line reaches the application, each printed in
    # double quotes; the container's arguments come last, after urunc's "--", one element each.
    line = next(line for line in out.splitlines() if line.startswith("Arguments:"))
    words = re.findall(r'"([^"]*)"', line)
    assert words[-3:] == ["--", "first", "b c"], line
    _gone(containerd, unique_id)
