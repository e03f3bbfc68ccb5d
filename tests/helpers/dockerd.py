"""A private, throw-away Docker engine (Debian's `docker.io`) for end-to-end tests.

Everything the daemon owns is its own: a network namespace (created with
`ip netns add`, entered with `nsenter --net=` so the host's mount namespace,
cgroup mounts included, stays visible: `ip netns exec` would remount /sys),
data root, exec root, pidfile, API socket, cgroup parent and containerd: left
alone, dockerd would use a system containerd it finds at
/run/containerd/containerd.sock, so it gets a private one (tests/helpers/
containerd.py) through `--containerd`, in that instance's own namespace.
The default bridge is docker0 inside that namespace on 10.213.6.0/24, with
iptables off: nothing outside the namespace changes. The `runtimes` come from
packaging/docker/daemon.json, the file the docs tell users to install.

    with private_dockerd() as d:
        d.docker("load", "-i", "image.tar")
        d.docker("run", "--rm", "--runtime", "urunc", "urunc-hello:latest")
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.containerd import Containerd, quietly, start_containerd, stop_containerd, stop_process

REPO = Path(__file__).resolve().parents[2]
DAEMON_JSON = REPO / "packaging" / "docker" / "daemon.json"
DOCKERD = "/usr/sbin/dockerd"
# Debian's client, matching the daemon's API (another `docker` may come first on PATH).
DOCKER = "/usr/bin/docker"
BRIDGE_IP = "10.213.6.1/24"
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
START_TIMEOUT = 40.0
STOP_TIMEOUT = 20.0
CGROUP_ROOT = Path("/sys/fs/cgroup")
FIXED_DIRS = (Path("/run/docker/plugins"), Path("/run/docker"))  # deepest first


class DockerError(subprocess.CalledProcessError):
    def __str__(self) -> str:
        return (f"docker failed with exit code {self.returncode}: {self.cmd}\n"
                f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}")


class DockerdUnavailable(RuntimeError):
    """dockerd or the docker client is not installed."""


class DockerdStartError(RuntimeError):
    """dockerd is installed but did not come up; the message holds its log's tail."""


@dataclass
class Dockerd:
    name: str
    netns: str
    socket: Path
    data_root: Path
    exec_root: Path
    pidfile: Path
    log_path: Path
    client_config: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    containerd: Containerd | None = field(default=None, repr=False)
    # Fixed paths dockerd creates whatever its roots (plugin discovery), if it made them.
    created_dirs: list[Path] = field(default_factory=list, repr=False)
    problems: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        return dict(os.environ, DOCKER_HOST=self.host, DOCKER_CONFIG=str(self.client_config))

    def docker(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        argv = [DOCKER, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env(),
                              stdin=subprocess.DEVNULL)
        if check and proc.returncode != 0:
            raise DockerError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def in_netns(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run argv in the daemon's network namespace (where docker0 and the containers are)."""
        return subprocess.run(["nsenter", f"--net={self.netns}", "--", *argv], capture_output=True, text=True,
                              timeout=timeout)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError as exc:
            return f"(no dockerd log: {exc})"


def start_dockerd(*, bridge_ip: str = BRIDGE_IP) -> Dockerd:
    """Start a private dockerd; pair with `stop_dockerd` (even on error)."""
    if not os.access(DOCKERD, os.X_OK) or not os.access(DOCKER, os.X_OK):
        raise DockerdUnavailable(f"{DOCKERD} or {DOCKER} missing (apt-get install docker.io)")
    name = f"urunc-test-docker-{secrets.token_hex(3)}"
    d = Dockerd(
        name=name,
        netns=f"/run/netns/{name}",
        socket=Path(f"/run/{name}.sock"),
        data_root=Path("/var/lib") / name,
        exec_root=Path("/run") / name,
        pidfile=Path("/run") / name / "dockerd.pid",
        log_path=Path("/var/lib") / name / "dockerd.log",
        client_config=Path("/var/lib") / name / "client",
    )
    d.created_dirs = [p for p in FIXED_DIRS if not p.exists()]
    try:
        subprocess.run(["ip", "netns", "add", name], check=True, capture_output=True)
        subprocess.run(["nsenter", f"--net={d.netns}", "--", "ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True)
        for p in (d.data_root, d.exec_root, d.client_config):
            p.mkdir(mode=0o700, parents=True)
        # The shipped daemon.json plus one key: dockerd 20.10 otherwise writes /etc/docker/key.json.
        settings = json.loads(DAEMON_JSON.read_text())
        settings["deprecated-key-path"] = str(d.data_root / "key.json")
        config = d.data_root / "daemon.json"
        config.write_text(json.dumps(settings, indent=2))
        argv = [
            "nsenter", f"--net={d.netns}", "--", DOCKERD,
            "--config-file", str(config),
            "--data-root", str(d.data_root), "--exec-root", str(d.exec_root),
            "--pidfile", str(d.pidfile), "-H", d.host,
            "--bip", bridge_ip, "--iptables=false", "--ip-masq=false", "--ip-forward=false",
            "--cgroup-parent", f"/{name}", "--storage-driver", "overlay2",
        ]  # fmt: skip
        d.containerd = start_containerd()
        argv += ["--containerd", d.containerd.address, "--containerd-namespace", d.containerd.namespace,
                 "--containerd-plugins-namespace", d.containerd.namespace + "-plugins"]
        with open(d.log_path, "ab") as log:
            d.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         env=dict(os.environ, PATH=DAEMON_PATH), close_fds=True,
                                         start_new_session=True)
        _wait_ready(d)
    except BaseException:
        stop_dockerd(d)
        raise
    return d


def _wait_ready(d: Dockerd) -> None:
    assert d.process is not None
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if d.process.poll() is not None:
            raise DockerdStartError(f"dockerd exited with {d.process.returncode}\n{d.log_tail()}")
        if d.socket.exists():
            proc = d.docker("version", "--format", "{{.Server.Version}}", check=False, timeout=10)
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
        time.sleep(0.2)
    raise DockerdStartError(f"dockerd did not answer within {START_TIMEOUT:.0f}s ({last})\n{d.log_tail()}")


def _remove_containers(d: Dockerd) -> None:
    ids = d.docker("ps", "-aq", check=False, timeout=30).stdout.split()
    if ids:
        d.problems.append(f"containers left at teardown: {ids}")
        d.docker("rm", "-f", *ids, check=False, timeout=60)


def _stop_daemon(d: Dockerd) -> None:
    stop_process(d.process, "dockerd", d.problems, STOP_TIMEOUT)


def _kill_leftovers(d: Dockerd) -> None:
    """Processes still naming our roots (dockerd's containerd, shims, monitors)."""
    needles = (str(d.exec_root), str(d.data_root))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmd for n in needles) and int(pid) != os.getpid():
            d.problems.append(f"process {pid} was still running: {cmd[:160]}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)


def _unmount_under(*dirs: Path) -> None:
    prefixes = [str(p).rstrip("/") + "/" for p in dirs]
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4].encode().decode("unicode_escape") for line in f]
    for point in sorted((p for p in points if any((p + "/").startswith(x) for x in prefixes)),
                        key=lambda p: -p.count("/")):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)


def _remove_cgroups(name: str) -> None:
    if not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        group = hierarchy / name
        if group.is_dir():
            for dirpath, _dirs, _files in sorted(os.walk(group), key=lambda w: -w[0].count("/")):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)


def stop_dockerd(d: Dockerd) -> list[str]:
    """Tear everything down; returns what was found left over."""
    if d.process is not None and d.process.poll() is None:
        quietly(d.problems, "containers", _remove_containers, d)
    quietly(d.problems, "stop dockerd", _stop_daemon, d)
    quietly(d.problems, "leftover processes", _kill_leftovers, d)
    if d.containerd is not None:
        d.problems += [f"containerd: {p}" for p in stop_containerd(d.containerd)]
    quietly(d.problems, "unmount", _unmount_under, d.data_root, d.exec_root)
    quietly(d.problems, "cgroups", _remove_cgroups, d.name)
    for path in (d.exec_root, d.data_root):
        quietly(d.problems, f"remove {path}", shutil.rmtree, path, True)
    with contextlib.suppress(FileNotFoundError):
        d.socket.unlink()
    for path in d.created_dirs:
        with contextlib.suppress(OSError):
            path.rmdir()
    if os.path.exists(d.netns):
        proc = subprocess.run(["ip", "netns", "delete", d.name], capture_output=True, text=True)
        if proc.returncode != 0:
            d.problems.append(f"netns {d.name} not deleted: {proc.stderr.strip()}")
    return d.problems


@contextlib.contextmanager
def private_dockerd(**kwargs: str) -> Iterator[Dockerd]:
    d = start_dockerd(**kwargs)
    try:
        yield d
    finally:
        stop_dockerd(d)
