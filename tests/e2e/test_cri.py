"""Kubernetes' way in: containerd's CRI plugin with the `urunc` runtime handler, driven over gRPC.

The private containerd runs with the CRI plugin enabled and the shipped
packaging/containerd/urunc-cri.toml appended to its config (the same snippet a
node gets). CNI is a bridge on 10.213.5.0/24 whose conflist this module writes
into the daemon's own conf_dir. Images (the project's pause image, the sample
unikernel, a busybox) are imported into the `k8s.io` namespace, the CRI
plugin's.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from tests.cri import CriApi, CriClient, compile_api, container_config, parse_cri_log, pod_config
from tests.helpers.containerd import Containerd
from tests.helpers.probes import http_get, ping
from urunc.image import build_image

REPO = Path(__file__).resolve().parents[2]
CRI_TOML = REPO / "packaging" / "containerd" / "urunc-cri.toml"
HELLO_TAR = REPO / "build" / "images" / "hello.tar"
PAUSE_TAR = REPO / "build" / "images" / "pause.tar"
HELLO = "docker.io/library/urunc-hello:latest"
PAUSE = "docker.io/library/urunc-pause:1"
BUSYBOX = "docker.io/library/urunc-cri-busybox:1"
HANDLER = "urunc"
K8S_NS = "k8s.io"
RUNC_ROOT = Path("/run/containerd/runc") / K8S_NS
NETNS_DIR = Path("/var/run/netns")

CNI_NAME = "urunc-cri"
CNI_BRIDGE = "urunc-cri0"
CNI_SUBNET = ipaddress.IPv4Network("10.213.5.0/24")
CNI_CONFLIST = {
    "cniVersion": "1.0.0",
    "name": CNI_NAME,
    "plugins": [{
        "type": "bridge", "bridge": CNI_BRIDGE, "isGateway": True, "ipMasq": False, "hairpinMode": False,
        "ipam": {"type": "host-local",
                 "ranges": [[{"subnet": str(CNI_SUBNET), "rangeStart": "10.213.5.10",
                              "rangeEnd": "10.213.5.250", "gateway": "10.213.5.1"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]},
    }],
}

CRI_DAEMON = {"disabled_plugins": (), "extra_config": CRI_TOML.read_text()}
pytestmark = pytest.mark.parametrize("containerd", [CRI_DAEMON], indirect=True, ids=["cri"])

CONTAINER_RUNNING = 1
CONTAINER_EXITED = 2


# -- fixtures -------------------------------------------------------------------------------------

def _ctr_k8s(ctd: Containerd, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    argv = ["ctr", "--address", ctd.address, "-n", K8S_NS, *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise AssertionError(f"{argv} failed ({proc.returncode}): {proc.stderr}")
    return proc


def _pause_tar(tmp: Path) -> Path:
    """build/images/pause.tar (make images), or the same build into *tmp*."""
    if PAUSE_TAR.exists():
        return PAUSE_TAR
    subprocess.run(["make", "-s", "-C", str(REPO / "guests" / "pause"), f"BUILD={tmp}"], check=True,
                   capture_output=True)
    return build_image(REPO / "guests" / "pause" / "Containerfile", tmp, "urunc-pause:1", tmp / "pause.tar").output


def _busybox_tar(tmp: Path, busybox_root: Path) -> Path:
    containerfile = tmp / "Containerfile.busybox"
    containerfile.write_text('FROM scratch\nCOPY . /\nCMD ["sh"]\n')
    return build_image(containerfile, busybox_root, "urunc-cri-busybox:1", tmp / "busybox.tar").output


@pytest.fixture(scope="module")
def cri_api(tmp_path_factory: pytest.TempPathFactory) -> CriApi:
    return compile_api(tmp_path_factory.mktemp("cri-stubs"))


@pytest.fixture(scope="module")
def cri(containerd: Containerd, cri_api: CriApi, busybox_root: Path,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[CriClient]:
    """A CRI client on the private containerd, with its CNI network and images ready."""
    if not HELLO_TAR.exists():
        pytest.skip(f"{HELLO_TAR} is not built (run make images)")
    runc_root_existed = RUNC_ROOT.exists()
    # The pods' cgroups live under a k8s.io parent in each hierarchy, which nothing removes.
    cgroup_parents = [p for p in Path("/sys/fs/cgroup").glob(f"*/{K8S_NS}")]
    forward_before = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    bridge_existed = _link_exists(CNI_BRIDGE)
    client = CriClient(cri_api, containerd.address)
    try:
        conf_dir = containerd.state / "cni"
        conf_dir.mkdir(parents=True, exist_ok=True)
        (conf_dir / "10-urunc-cri.conflist").write_text(json.dumps(CNI_CONFLIST, indent=2))
        client.wait_network_ready()
        tmp = tmp_path_factory.mktemp("cri-images")
        for tar in (_pause_tar(tmp), HELLO_TAR, _busybox_tar(tmp, busybox_root)):
            _ctr_k8s(containerd, "image", "import", str(tar))
        listed = _ctr_k8s(containerd, "image", "ls", "-q").stdout.split()
        assert {PAUSE, HELLO, BUSYBOX} <= set(listed), listed
        yield client
    finally:
        with contextlib.suppress(Exception):
            for pod in client.list_pod_sandboxes():
                _remove_pod(client, pod.id)
        client.close()
        if not bridge_existed and _link_exists(CNI_BRIDGE):
            subprocess.run(["ip", "link", "delete", "dev", CNI_BRIDGE], capture_output=True)
        Path("/proc/sys/net/ipv4/ip_forward").write_text(forward_before)
        shutil.rmtree(Path("/var/lib/cni/networks") / CNI_NAME, ignore_errors=True)
        results = Path("/var/lib/cni/results")
        for entry in results.glob(f"{CNI_NAME}-*") if results.is_dir() else ():
            entry.unlink(missing_ok=True)
        if not runc_root_existed:
            with contextlib.suppress(OSError):
                RUNC_ROOT.rmdir()
        for parent in Path("/sys/fs/cgroup").glob(f"*/{K8S_NS}"):
            if parent not in cgroup_parents:
                with contextlib.suppress(OSError):
                    parent.rmdir()


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    d = tmp_path / "pod-logs"
    d.mkdir()
    return d


# -- helpers --------------------------------------------------------------------------------------

def _remove_pod(cri: CriClient, pod_id: str) -> None:
    cri.stop_pod_sandbox(pod_id)
    cri.remove_pod_sandbox(pod_id)


def _pod_facts(cri: CriClient, pod_id: str) -> tuple[str, int, str]:
    """(pod IP, pause PID, network namespace path) from PodSandboxStatus(verbose)."""
    resp = cri.pod_sandbox_status(pod_id, verbose=True)
    info = json.loads(resp.info["info"])
    netns = next(ns.get("path", "") for ns in info["runtimeSpec"]["linux"]["namespaces"] if ns["type"] == "network")
    return resp.status.network.ip, int(info["pid"]), netns


def _container_pid(cri: CriClient, container_id: str) -> int:
    info = json.loads(cri.container_status(container_id, verbose=True).info["info"])
    return int(info["pid"])


def _runtime_of(container_id: str) -> str:
    """Whose state the runc shim's root holds for a container: urunc's, runc's, or none."""
    d = RUNC_ROOT / container_id
    if (d / "urunc-state.json").exists():
        return "urunc"
    if (d / "state.json").exists():
        return "runc"
    return "none"


def _log_stdout(path: Path) -> str:
    stdout, _stderr = parse_cri_log(path.read_text(errors="replace"))
    return "\n".join(line.replace("\r", "") for line in stdout)


def _wait_log(path: Path, needle: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        if path.exists():
            text = _log_stdout(path)
            if needle in text:
                return text
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not in {path} after {timeout:.0f}s; it holds:\n{text}")


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if any(n in cmd for n in needles):
            found.append(f"{pid}: {cmd[:200]}")
    return found


def _mounts_mentioning(*needles: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.strip() for line in f if any(n in line for n in needles)]


def _assert_nothing_left(pod_id: str, container_ids: list[str], netns: str) -> None:
    ids = [pod_id, *container_ids]
    assert [i for i in ids if (RUNC_ROOT / i).exists()] == []
    assert _processes_mentioning(*ids) == []
    assert _mounts_mentioning(*ids) == []
    assert netns and not os.path.exists(netns), f"network namespace {netns} (and the taps in it) still there"


def _uid() -> str:
    return str(uuid.uuid4())


# -- tests ----------------------------------------------------------------------------------------

def test_cri_version_names_containerd(cri: CriClient) -> None:
    version = cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"


def test_unikernel_pod_full_lifecycle_log_exit_codes_and_teardown(cri: CriClient, log_dir: Path) -> None:
    api = cri.api
    config = pod_config(api, "hello-lifecycle", log_dir, uid=_uid())
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    try:
        status = cri.pod_sandbox_status(pod_id).status
        assert status.state == api.pb.SANDBOX_READY
        assert status.runtime_handler == HANDLER
        pod_ip, pause_pid, netns = _pod_facts(cri, pod_id)
        assert ipaddress.IPv4Address(pod_ip) in CNI_SUBNET
        # The pause container went through urunc's shim and was handed to runc.
        assert _runtime_of(pod_id) == "runc"
        # runc's start returns when its init was released, a moment before that init execs
        # /pause (until then its exe is runc's own detached copy, which reads as "/").
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{pause_pid}/exe") != "/pause" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.readlink(f"/proc/{pause_pid}/exe") == "/pause"

        # 1. A guest that prints and exits: its console is the CRI log, exit code 0.
        cid = cri.create_container(pod_id, container_config(api, "hello", HELLO, args=["hello", "a b"],
                                                            envs={"K": "V"}), config)
        cri.start_container(cid)
        done = cri.wait_container_state(cid, CONTAINER_EXITED)
        log = log_dir / "hello.log"
        assert (done.exit_code, done.reason) == (0, "Completed"), log.read_text()
        assert done.log_path == str(log)
        for line in log.read_text().splitlines():
            stamp, stream, tag, _text = line.split(" ", 3)
            assert stream == "stdout" and tag in ("F", "P") and stamp[:4].isdigit() and stamp.endswith("Z"), line
        out = _log_stdout(log)
        assert "hello from the urunc sample unikernel" in out
        assert "argv[0]=<hello>\nargv[1]=<a b>\n" in out
        assert "=<K=V>" in out
        assert out.rstrip().endswith("bye")
        cri.remove_container(cid)
        assert not (RUNC_ROOT / cid).exists()

        # 2. A guest that runs until stopped: the task is the monitor; StopContainer kills it
        # and the kill surfaces as exit code 128+9.
        cid2 = cri.create_container(pod_id, container_config(api, "waiter", HELLO, args=["hello", "wait"]), config)
        cri.start_container(cid2)
        _wait_log(log_dir / "waiter.log", "waiting")
        assert cri.container_status(cid2).status.state == CONTAINER_RUNNING
        assert _runtime_of(cid2) == "urunc"
        pid = _container_pid(cri, cid2)
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        cri.stop_container(cid2, timeout=0)
        stopped = cri.wait_container_state(cid2, CONTAINER_EXITED)
        assert stopped.exit_code == 137
        cri.remove_container(cid2)
    finally:
        _remove_pod(cri, pod_id)
    with pytest.raises(grpc.RpcError) as err:
        cri.pod_sandbox_status(pod_id)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    _assert_nothing_left(pod_id, [cid, cid2], netns)


def test_whole_pod_sidecar_via_runc_unikernel_answers_on_pod_ip(cri: CriClient, log_dir: Path) -> None:
    api = cri.api
    config = pod_config(api, "hello-serve", log_dir, uid=_uid())
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    ids: list[str] = []
    try:
        pod_ip, _pause_pid, netns = _pod_facts(cri, pod_id)
        sidecar = cri.create_container(pod_id, container_config(api, "sidecar", BUSYBOX,
                                                                command=["sleep", "600"]), config)
        ids.append(sidecar)
        cri.start_container(sidecar)
        assert cri.container_status(sidecar).status.state == CONTAINER_RUNNING
        assert _runtime_of(sidecar) == "runc"

        server = cri.create_container(pod_id, container_config(api, "server", HELLO, args=["hello", "serve"]), config)
        ids.append(server)
        cri.start_container(server)
        assert _runtime_of(server) == "urunc"
        out = _wait_log(log_dir / "server.log", "net up", timeout=30)
        assert f"net up {pod_ip}" in out, out
        assert ping(pod_ip, timeout=20), f"the unikernel does not answer ping on the pod IP {pod_ip}"
        assert cri.container_status(server).status.state == CONTAINER_RUNNING
    finally:
        # RemovePodSandbox alone must take running containers down with it.
        _remove_pod(cri, pod_id)
    assert cri.list_containers(pod_id) == []
    _assert_nothing_left(pod_id, ids, netns)


@pytest.mark.parametrize(("container_version", "env_reaches_guest"), [(None, False), ("0.17.0", True)],
                         ids=["pod-annotation", "container-annotation-wins"])
def test_annotation_overrides_image_value(cri: CriClient, log_dir: Path, container_version: str | None,
                                          env_reaches_guest: bool) -> None:
    """The image says unikernelVersion 0.17.0 (Unikraft's new dialect, which passes env.vars).

    A pod annotation 0.15.0 selects the old dialect, which has no environment
    parameter, so the guest sees no environment; a container annotation (applied
    after the pod's by containerd) puts 0.17.0 back.
    """
    api = cri.api
    config = pod_config(api, "hello-annotated", log_dir, uid=_uid(),
                        annotations={"com.urunc.unikernel.unikernelVersion": "0.15.0"})
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    try:
        annotations = {"com.urunc.unikernel.unikernelVersion": container_version} if container_version else {}
        cid = cri.create_container(pod_id, container_config(api, "hello", HELLO, args=["hello", "x"],
                                                            envs={"K": "V"}, annotations=annotations), config)
        cri.start_container(cid)
        done = cri.wait_container_state(cid, CONTAINER_EXITED)
        out = _log_stdout(log_dir / "hello.log")
        assert done.exit_code == 0, out
        assert "argv[0]=<hello>\nargv[1]=<x>\n" in out
        assert ("=<K=V>" in out) is env_reaches_guest, out
        cri.remove_container(cid)
    finally:
        _remove_pod(cri, pod_id)


def test_malformed_pod_annotation_is_a_clear_cri_error(cri: CriClient, log_dir: Path) -> None:
    api = cri.api
    config = pod_config(api, "hello-bad", log_dir, uid=_uid(),
                        annotations={"com.urunc.unikernel.unikernelType": "plan9"})
    # The pod's pause container is not a unikernel whatever the pod's annotations say.
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    cid = ""
    try:
        _ip, _pid, netns = _pod_facts(cri, pod_id)
        cid = cri.create_container(pod_id, container_config(api, "hello", HELLO), config)
        with pytest.raises(grpc.RpcError) as err:
            cri.start_container(cid)
        assert err.value.code() == grpc.StatusCode.UNKNOWN
        assert "unknown guest type 'plan9'" in err.value.details(), err.value.details()
        assert cri.container_status(cid).status.state != CONTAINER_RUNNING
        cri.remove_container(cid)
        assert not (RUNC_ROOT / cid).exists()
    finally:
        _remove_pod(cri, pod_id)
    _assert_nothing_left(pod_id, [cid], netns)


LINUX_IMAGE = "docker.io/library/urunc-cri-linux:1"


@pytest.fixture(scope="module")
def linux_image(containerd: Containerd, cri: CriClient, busybox_root: Path,
                tmp_path_factory: pytest.TempPathFactory) -> str:
    """Busybox with a page to serve, labelled to run as a Linux microVM under QEMU."""
    if not Path("/usr/local/lib/urunc/guest/vmlinux").exists():
        pytest.skip("the Linux guest kernel is not installed (run make install)")
    www = busybox_root / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("served from a urunc pod\n")
    tmp = tmp_path_factory.mktemp("cri-linux")
    (tmp / "Containerfile").write_text(
        "FROM scratch\nCOPY . /\nLABEL com.urunc.unikernel.unikernelType=linux com.urunc.unikernel.hypervisor=qemu\n"
        'CMD ["httpd", "-f", "-p", "80", "-h", "/www"]\n')
    built = build_image(tmp / "Containerfile", busybox_root, "urunc-cri-linux:1", tmp / "linux.tar")
    _ctr_k8s(containerd, "image", "import", str(built.output))
    return LINUX_IMAGE


def test_linux_guest_pod_serves_http_at_the_pod_ip(cri: CriClient, log_dir: Path, linux_image: str) -> None:
    api = cri.api
    config = pod_config(api, "linux-http", log_dir, uid=_uid())
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    ids: list[str] = []
    try:
        pod_ip, _pause_pid, netns = _pod_facts(cri, pod_id)
        cid = cri.create_container(pod_id, container_config(api, "web", linux_image), config)
        ids.append(cid)
        cri.start_container(cid)
        assert _runtime_of(cid) == "urunc"
        pid = _container_pid(cri, cid)
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        assert http_get(pod_ip, 60) == "served from a urunc pod\n"
        cri.stop_container(cid, timeout=0)
        assert cri.wait_container_state(cid, CONTAINER_EXITED).exit_code == 137
        cri.remove_container(cid)
    finally:
        _remove_pod(cri, pod_id)
    _assert_nothing_left(pod_id, ids, netns)


def test_linux_guest_pod_volumes_hostpath_read_only_and_a_writable_dir(
        cri: CriClient, log_dir: Path, linux_image: str, tmp_path: Path) -> None:
    config_dir, scratch = tmp_path / "config", tmp_path / "scratch"
    config_dir.mkdir()
    scratch.mkdir()
    (config_dir / "app.conf").write_text("from-a-configmap\n")
    api = cri.api
    config = pod_config(api, "linux-vol", log_dir, uid=_uid())
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    ids: list[str] = []
    try:
        _ip, _pause_pid, netns = _pod_facts(cri, pod_id)
        script = ("cat /etc/app/app.conf; echo written-in-guest > /scratch/result; "
                  "(echo x > /etc/app/new) 2>/dev/null || echo ro-refused")
        cid = cri.create_container(pod_id, container_config(
            api, "vol", linux_image, command=["sh", "-c", script],
            mounts=[(str(config_dir), "/etc/app", True), (str(scratch), "/scratch", False)]), config)
        ids.append(cid)
        cri.start_container(cid)
        done = cri.wait_container_state(cid, CONTAINER_EXITED, timeout=120)
        out = _log_stdout(log_dir / "vol.log")
        assert done.exit_code == 0, out
        assert out.splitlines() == ["from-a-configmap", "ro-refused"], out
        assert (scratch / "result").read_text() == "written-in-guest\n"
        assert not (config_dir / "new").exists()
        cri.remove_container(cid)
    finally:
        _remove_pod(cri, pod_id)
    _assert_nothing_left(pod_id, ids, netns)


def test_exec_sync_and_an_exec_readiness_probe_run_in_the_linux_guest(
        cri: CriClient, log_dir: Path, linux_image: str) -> None:
    api = cri.api
    config = pod_config(api, "linux-exec", log_dir, uid=_uid())
    pod_id = cri.run_pod_sandbox(config, HANDLER)
    ids: list[str] = []
    try:
        _ip, _pause_pid, netns = _pod_facts(cri, pod_id)
        cid = cri.create_container(pod_id, container_config(
            api, "app", linux_image, command=["sh", "-c", "sleep 2; touch /tmp/ready; exec sleep 100000"]), config)
        ids.append(cid)
        cri.start_container(cid)
        # A readiness probe as the kubelet runs it: ExecSync until it succeeds.
        deadline = time.monotonic() + 90
        while True:
            probe = cri.exec_sync(cid, ["cat", "/tmp/ready"], timeout=20)
            if probe.exit_code == 0:
                break
            assert time.monotonic() < deadline, (probe.exit_code, probe.stderr)
            time.sleep(1)
        result = cri.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; cat /proc/1/cmdline; exit 4"])
        assert result.exit_code == 4
        assert result.stdout.startswith(b"out\n/.urunc/init")
        assert result.stderr == b"err\n"
        cri.stop_container(cid, timeout=0)
        cri.remove_container(cid)
    finally:
        _remove_pod(cri, pod_id)
    _assert_nothing_left(pod_id, ids, netns)
