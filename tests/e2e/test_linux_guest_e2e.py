"""Ordinary container images as Linux microVMs through containerd (issues 3 and 4)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.cni import CniNetwork
from tests.helpers.containerd import Containerd
from tests.helpers.probes import http_get
from urunc.image import build_image

RUNTIME = "io.containerd.urunc.v2"
GUEST_KERNEL = Path("/usr/local/lib/urunc/guest/vmlinux")
CONTAINERFILE = """\
FROM scratch
COPY . /
LABEL com.urunc.unikernel.unikernelType=linux com.urunc.unikernel.hypervisor=qemu
CMD ["sh"]
"""


@pytest.fixture(scope="module")
def linux_image(containerd: Containerd, busybox_root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    if not GUEST_KERNEL.exists():
        pytest.skip(f"{GUEST_KERNEL} is not installed (run make install)")
    www = busybox_root / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("hello from a urunc microVM\n")
    work = tmp_path_factory.mktemp("linuximg")
    (work / "Containerfile").write_text(CONTAINERFILE)
    built = build_image(work / "Containerfile", busybox_root, "urunc-e2e-linux:1", work / "img.tar")
    containerd.ctr("image", "import", str(built.output), timeout=120)
    return "docker.io/library/urunc-e2e-linux:1"


def test_busybox_runs_as_a_microvm_with_the_application_exit_code(containerd: Containerd, linux_image: str,
                                                                  unique_id: str) -> None:
    result = containerd.ctr("run", "--rm", "--runtime", RUNTIME, linux_image, unique_id,
                            "sh", "-c", "echo hi; exit 3", check=False, timeout=120)
    assert result.stdout == "hi\n", result.stderr
    assert result.returncode == 3
    assert not (Path("/run/containerd/runc") / containerd.namespace / unique_id).exists()


def test_httpd_in_a_linux_guest_answers_at_the_container_ip(containerd: Containerd, cni: CniNetwork,
                                                            linux_image: str, unique_id: str) -> None:
    containerd.ctr("run", "--cni", "-d", "--runtime", RUNTIME, linux_image, unique_id,
                   "httpd", "-f", "-p", "80", "-h", "/www", timeout=120)
    try:
        row = next(line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()
                   if line.startswith(unique_id + " "))
        pid = int(row[1])
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        eth0 = json.loads(subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr", "show", "eth0"],
                                         capture_output=True, text=True, check=True).stdout)[0]
        ip = next(a["local"] for a in eth0["addr_info"] if a["family"] == "inet")
        assert ipaddress.ip_address(ip) in cni.subnet
        assert http_get(ip, 60) == "hello from a urunc microVM\n"
        taps_before = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-o", "link"],
                                     capture_output=True, text=True, check=True).stdout
        assert " tap" in taps_before
        containerd.ctr("task", "kill", "-s", "SIGKILL", unique_id)
        deadline = time.monotonic() + 30
        while os.path.exists(f"/proc/{pid}/ns") and time.monotonic() < deadline:
            time.sleep(0.1)
        containerd.ctr("task", "delete", unique_id)
    finally:
        containerd.ctr("task", "delete", "-f", unique_id, check=False)
        containerd.ctr("container", "rm", unique_id, check=False)
    assert not (Path("/run/containerd/runc") / containerd.namespace / unique_id).exists()


def test_ctr_mounts_reach_the_guest_read_write_and_read_only(containerd: Containerd, linux_image: str,
                                                             unique_id: str, tmp_path: Path) -> None:
    data, config = tmp_path / "data", tmp_path / "config"
    data.mkdir()
    config.mkdir()
    (config / "app.conf").write_text("setting=1\n")
    result = containerd.ctr(
        "run", "--rm", "--runtime", RUNTIME,
        "--mount", f"type=bind,src={data},dst=/data,options=rbind:rw",
        "--mount", f"type=bind,src={config},dst=/config,options=rbind:ro",
        "--mount", f"type=bind,src={config / 'app.conf'},dst=/etc/app.conf,options=rbind:ro",
        linux_image, unique_id, "sh", "-c",
        "cat /config/app.conf /etc/app.conf; echo out > /data/result; (echo x > /config/y) 2>/dev/null || echo ro",
        check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "setting=1\nsetting=1\nro\n"
    assert (data / "result").read_text() == "out\n"
    assert not (config / "y").exists()


def _running(containerd: Containerd, image: str, cid: str) -> None:
    containerd.ctr("run", "-d", "--runtime", RUNTIME, image, cid, "sh", "-c", "echo up; exec sleep 100000",
                   timeout=120)
    deadline = time.monotonic() + 60
    while True:  # the guest's agent is up once an exec answers
        probe = containerd.ctr("task", "exec", "--exec-id", "probe", cid, "true", check=False, timeout=60)
        if probe.returncode == 0:
            return
        assert time.monotonic() < deadline, probe.stderr
        time.sleep(0.5)


def _remove(containerd: Containerd, cid: str) -> None:
    containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
    containerd.ctr("task", "delete", "-f", cid, check=False)
    containerd.ctr("container", "rm", cid, check=False)


def test_ctr_task_exec_runs_in_the_guest_with_its_output_and_exit_code(
        containerd: Containerd, linux_image: str, unique_id: str) -> None:
    _running(containerd, linux_image, unique_id)
    try:
        result = containerd.ctr("task", "exec", "--exec-id", "e1", unique_id, "sh", "-c",
                                "echo in-guest; cat /proc/1/cmdline; exit 5", check=False, timeout=60)
        assert result.returncode == 5, result.stderr
        assert result.stdout.startswith("in-guest\n/.urunc/init")
    finally:
        _remove(containerd, unique_id)


def test_ctr_task_exec_tty_gives_an_interactive_shell(containerd: Containerd, linux_image: str,
                                                      unique_id: str) -> None:
    import pty
    import select

    _running(containerd, linux_image, unique_id)
    try:
        pid, master = pty.fork()
        if pid == 0:
            os.execvp("ctr", ["ctr", "--address", containerd.address, "-n", containerd.namespace, "task", "exec",
                              "-t", "--exec-id", "tty1", unique_id, "sh"])
        seen = b""

        def until(needle: bytes, timeout: float = 60) -> None:
            nonlocal seen
            deadline = time.monotonic() + timeout
            while needle not in seen:
                assert time.monotonic() < deadline, seen
                ready, _, _ = select.select([master], [], [], 1)
                if ready:
                    try:
                        seen += os.read(master, 4096)
                    except OSError:
                        break
        until(b"# ")  # the guest shell's prompt
        os.write(master, b"tty; stty size; echo done-$((6*7))\r")
        until(b"done-42")
        assert b"/dev/pts/" in seen
        os.write(master, b"exit 3\r")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 3
    finally:
        _remove(containerd, unique_id)


@pytest.fixture
def warm_runtime(tmp_path: Path) -> tuple[str, Path]:
    """(a urunc wrapper with templates on, its templates dir), for `ctr run --runc-binary`: the
    runc shim running urunc is what io.containerd.urunc.v2 is."""
    templates = tmp_path / "templates"
    config = tmp_path / "config.toml"
    config.write_text(f'[templates]\nenabled = true\ndir = "{templates}"\n')
    wrapper = tmp_path / "urunc-warm"
    wrapper.write_text(f'#!/bin/sh\nURUNC_CONFIG={config} exec /usr/local/bin/urunc "$@"\n')
    wrapper.chmod(0o755)
    return str(wrapper), templates


def test_a_template_start_through_containerd_matches_a_cold_boot_and_serves_at_the_cni_address(
        containerd: Containerd, cni: CniNetwork, linux_image: str, unique_id: str,
        warm_runtime: tuple[str, Path]) -> None:
    wrapper, templates = warm_runtime
    script = "echo hi; env | sort; id; ls -ln /www; exit 3"
    cold = containerd.ctr("run", "--rm", "--runtime", RUNTIME, "--env", "K=v w", linux_image, unique_id + "-c",
                          "sh", "-c", script, check=False, timeout=120)
    warm = [containerd.ctr("run", "--rm", "--runc-binary", wrapper, "--env", "K=v w", linux_image,
                           f"{unique_id}-w{i}", "sh", "-c", script, check=False, timeout=240) for i in range(2)]
    assert cold.returncode == 3 and cold.stdout.startswith("hi\n"), cold.stderr
    for result in warm:
        assert (result.returncode, result.stdout) == (3, cold.stdout), result.stderr
    made = [p.name for p in templates.iterdir() if not p.name.startswith(".")]
    assert len(made) == 2  # ctr's new network namespace may get eth0 (CNI) before start: with and without a card
    cid = unique_id + "-http"
    containerd.ctr("run", "--cni", "-d", "--runc-binary", wrapper, linux_image, cid,
                   "httpd", "-f", "-p", "80", "-h", "/www", timeout=240)
    try:
        pid = next(int(line.split()[1]) for line in containerd.ctr("task", "ls").stdout.splitlines()
                   if line.startswith(cid + " "))
        assert b"-incoming" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")  # restored, not booted
        eth0 = json.loads(subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr", "show", "eth0"],
                                         capture_output=True, text=True, check=True).stdout)[0]
        ip = next(a["local"] for a in eth0["addr_info"] if a["family"] == "inet")
        assert ipaddress.ip_address(ip) in cni.subnet
        assert http_get(ip, 60) == "hello from a urunc microVM\n"
    finally:
        containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
        deadline = time.monotonic() + 30
        while containerd.ctr("task", "delete", cid, check=False).returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        containerd.ctr("container", "rm", cid, check=False)
    assert sorted(p.name for p in templates.iterdir() if not p.name.startswith(".")) == sorted(made)
