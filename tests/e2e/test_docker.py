"""Docker's way in: Debian's dockerd with `runtimes: {"urunc": ...}`, `docker run --runtime urunc`.

The daemon is private (tests/helpers/dockerd.py): its own network namespace,
roots, socket and containerd. Images are built by `urunc-build --format docker`
and loaded with `docker load`, as docs/entry-points.md tells users.
"""

from __future__ import annotations

import ipaddress
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.dockerd import Dockerd, DockerdUnavailable, start_dockerd, stop_dockerd
from urunc.image import build_image

REPO = Path(__file__).resolve().parents[2]
HELLO_DOCKER_TAR = REPO / "build" / "images" / "hello-docker.tar"
HELLO_BUILD = REPO / "build" / "hello"
HELLO = "urunc-hello:latest"
BUSYBOX = "urunc-docker-busybox:1"
BRIDGE_NET = ipaddress.IPv4Network("10.213.6.0/24")


def _hello_tar(tmp: Path) -> Path:
    if HELLO_DOCKER_TAR.exists():
        return HELLO_DOCKER_TAR
    if not (HELLO_BUILD / "hello.elf").exists():
        pytest.skip(f"{HELLO_BUILD / 'hello.elf'} is not built (run make images)")
    return build_image(REPO / "guests" / "hello" / "Containerfile", HELLO_BUILD, HELLO, tmp / "hello.tar",
                       "docker").output


@pytest.fixture(scope="module")
def dockerd(busybox_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    if os.geteuid() != 0:
        pytest.skip("a private dockerd needs root")
    try:
        d = start_dockerd()
    except DockerdUnavailable as exc:
        pytest.skip(str(exc))
    try:
        tmp = tmp_path_factory.mktemp("docker-images")
        containerfile = tmp / "Containerfile.busybox"
        containerfile.write_text('FROM scratch\nCOPY . /\nCMD ["sh"]\n')
        busybox = build_image(containerfile, busybox_root, BUSYBOX, tmp / "busybox.tar", "docker").output
        for tar in (_hello_tar(tmp), busybox):
            d.docker("load", "-i", str(tar))
        yield d
    finally:
        for problem in stop_dockerd(d):
            warnings.warn(f"private dockerd teardown: {problem}", stacklevel=1)


def _urunc_states(d: Dockerd) -> list[Path]:
    """urunc's state dirs under the daemon's runtime roots (exec root)."""
    return [p.parent for p in d.exec_root.rglob("urunc-state.json")]


def _processes_mentioning(needle: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmd:
            found.append(f"{pid}: {cmd[:160]}")
    return found


def _wait_logs(d: Dockerd, cid: str, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    out = ""
    while time.monotonic() < deadline:
        out = d.docker("logs", cid, check=False).stdout.replace("\r\n", "\n")
        if needle in out:
            return out
        if out.rstrip().endswith("bye"):  # the guest has ended
            break
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in the logs of {cid}:\n{out}")


def _assert_gone(d: Dockerd, cid: str, pid: int | None = None) -> None:
    assert d.docker("ps", "-aq", "--no-trunc").stdout.split() == []
    assert [p for p in _urunc_states(d) if p.name == cid] == []
    assert _processes_mentioning(cid) == []
    with open("/proc/self/mountinfo") as f:
        assert [line for line in f if cid in line] == []
    if pid is not None:
        assert not os.path.exists(f"/proc/{pid}")


def test_docker_run_rm_prints_guest_output_and_exit_code(dockerd: Dockerd) -> None:
    result = dockerd.docker("run", "--rm", "--runtime", "urunc", "-e", "K=V", HELLO, "hello", "a b", check=False)
    out = result.stdout.replace("\r\n", "\n")
    assert result.returncode == 0, result.stderr
    assert "hello from the urunc sample unikernel" in out
    assert "argv[0]=<hello>\nargv[1]=<a b>\n" in out
    assert "=<K=V>" in out
    assert out.rstrip().endswith("bye")
    assert dockerd.docker("ps", "-aq").stdout.split() == []
    assert _urunc_states(dockerd) == []


def test_docker_ordinary_image_under_urunc_runtime_is_runc_exit_code_and_all(dockerd: Dockerd) -> None:
    result = dockerd.docker("run", "--rm", "--runtime", "urunc", BUSYBOX, "sh", "-c", "echo hi; echo err >&2; exit 3",
                            check=False)
    assert (result.returncode, result.stdout, result.stderr.strip()) == (3, "hi\n", "err")


def test_docker_run_detached_then_rm_f_leaves_nothing(dockerd: Dockerd) -> None:
    cid = dockerd.docker("run", "-d", "--runtime", "urunc", HELLO, "hello", "wait").stdout.strip()
    try:
        _wait_logs(dockerd, cid, "waiting")
        pid = int(dockerd.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout)
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        assert [p.name for p in _urunc_states(dockerd)] == [cid]
    finally:
        dockerd.docker("rm", "-f", cid)
    _assert_gone(dockerd, cid, pid)


def test_docker_killed_guest_exit_code_is_128_plus_signal(dockerd: Dockerd) -> None:
    cid = dockerd.docker("run", "-d", "--runtime", "urunc", HELLO, "hello", "wait").stdout.strip()
    try:
        _wait_logs(dockerd, cid, "waiting")
        dockerd.docker("kill", "-s", "KILL", cid)
        assert dockerd.docker("wait", cid, timeout=30).stdout.strip() == "137"
        assert dockerd.docker("inspect", "-f", "{{.State.ExitCode}}", cid).stdout.strip() == "137"
    finally:
        dockerd.docker("rm", "-f", cid)
    _assert_gone(dockerd, cid)


def test_docker_unikernel_answers_on_container_ip(dockerd: Dockerd) -> None:
    cid = dockerd.docker("run", "-d", "--runtime", "urunc", HELLO, "hello", "serve").stdout.strip()
    try:
        ip = dockerd.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", cid).stdout.strip()
        assert ipaddress.IPv4Address(ip) in BRIDGE_NET
        out = _wait_logs(dockerd, cid, "net up", timeout=30)
        assert f"net up {ip}" in out, out
        deadline = time.monotonic() + 20
        while True:
            ping = dockerd.in_netns("/bin/busybox", "ping", "-c", "1", "-W", "1", ip)
            if ping.returncode == 0:
                break
            assert time.monotonic() < deadline, f"the unikernel does not answer ping on {ip}: {ping.stdout}"
    finally:
        dockerd.docker("rm", "-f", cid)
    _assert_gone(dockerd, cid)


def test_docker_user_and_seccomp_reach_the_monitor(dockerd: Dockerd) -> None:
    """`docker run --user 65534:65534` (Docker adds its default seccomp profile)."""
    cid = dockerd.docker("run", "-d", "--runtime", "urunc", "--user", "65534:65534", HELLO, "hello",
                         "wait").stdout.strip()
    try:
        _wait_logs(dockerd, cid, "waiting")
        pid = int(dockerd.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip())
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        assert status["Uid"].split() == ["65534"] * 4
        assert status["Gid"].split() == ["65534"] * 4
        assert status["Seccomp"] == "2"
    finally:
        dockerd.docker("rm", "-f", cid, check=False)


@pytest.fixture(scope="module")
def docker_linux_image(dockerd: Dockerd, busybox_root: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    if not Path("/usr/local/lib/urunc/guest/vmlinux").exists():
        pytest.skip("the Linux guest kernel is not installed (run make install)")
    tmp = tmp_path_factory.mktemp("docker-linux")
    containerfile = tmp / "Containerfile"
    containerfile.write_text("FROM scratch\nCOPY . /\nLABEL com.urunc.unikernel.unikernelType=linux "
                             'com.urunc.unikernel.hypervisor=qemu\nCMD ["sh"]\n')
    tar = build_image(containerfile, busybox_root, "urunc-docker-linux:1", tmp / "linux.tar", "docker").output
    dockerd.docker("load", "-i", str(tar))
    return "urunc-docker-linux:1"


def test_docker_exec_runs_in_the_linux_guest(dockerd: Dockerd, docker_linux_image: str) -> None:
    cid = dockerd.docker("run", "-d", "--runtime", "urunc", docker_linux_image, "sh", "-c",
                         "exec sleep 100000").stdout.strip()
    try:
        deadline = time.monotonic() + 60
        while True:
            result = dockerd.docker("exec", cid, "sh", "-c", "echo in-guest; cat /proc/1/cmdline; exit 6",
                                    check=False)
            if result.returncode == 6 or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # until the guest's agent answers
        assert result.returncode == 6, result.stderr
        assert result.stdout.startswith("in-guest\n/.urunc/init")
    finally:
        dockerd.docker("rm", "-f", cid, check=False)
    _assert_gone(dockerd, cid)


def test_docker_volume_reaches_a_linux_guest_read_only_and_read_write(
        dockerd: Dockerd, docker_linux_image: str, tmp_path: Path) -> None:
    ro, rw = tmp_path / "ro", tmp_path / "rw"
    ro.mkdir()
    rw.mkdir()
    (ro / "settings").write_text("docker-volume\n")
    result = dockerd.docker("run", "--rm", "--runtime", "urunc", "-v", f"{ro}:/data:ro", "-v", f"{rw}:/out",
                            docker_linux_image, "sh", "-c",
                            "cat /data/settings; (echo x > /data/new) 2>/dev/null || echo ro-refused; "
                            "echo from-guest > /out/file", check=False)
    assert result.returncode == 0, result.stderr
    # Docker's init layer carries /dev/console as an empty file: the guest's console is still its own.
    assert result.stdout.replace("\r\n", "\n") == "docker-volume\nro-refused\n"
    assert (rw / "file").read_text() == "from-guest\n"
    assert not (ro / "new").exists()


def test_docker_pause_and_unpause_stop_and_continue_a_linux_guest(dockerd: Dockerd, docker_linux_image: str) -> None:
    cid = dockerd.docker("run", "-d", "--runtime", "urunc", docker_linux_image, "sh", "-c",
                         "i=0; while :; do echo tick $i; i=$((i+1)); sleep 0.2; done").stdout.strip()
    try:
        _wait_logs(dockerd, cid, "tick 3", 90)
        pid = int(dockerd.docker("inspect", "-f", "{{.State.Pid}}", cid).stdout)
        dockerd.docker("pause", cid)
        assert dockerd.docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"
        time.sleep(0.5)
        frozen = dockerd.docker("logs", cid).stdout
        time.sleep(2.5)  # twelve ticks' worth
        assert dockerd.docker("logs", cid).stdout == frozen
        last = int(frozen.split()[-1])
        dockerd.docker("unpause", cid)
        assert dockerd.docker("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
        _wait_logs(dockerd, cid, f"tick {last + 3}\n", 30)
        dockerd.docker("pause", cid)
        dockerd.docker("rm", "-f", cid)  # a paused container is killed and removed
    finally:
        dockerd.docker("rm", "-f", cid, check=False)
    _assert_gone(dockerd, cid, pid)
