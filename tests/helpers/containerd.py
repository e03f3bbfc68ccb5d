"""A private, throw-away containerd for end-to-end tests.

Each instance has its own root, state dir, gRPC and ttrpc sockets and its own
containerd namespace, so it never touches a system containerd
(/run/containerd/containerd.sock, /var/lib/containerd). What instances do
share is the runc shim's state under /run/containerd/runc/<namespace> (and the
shim socket and FIFO dirs under /run/containerd/), hence the unique namespace.

    with private_containerd() as ctd:
        ctd.ctr("run", "--rm", "--rootfs", rootfs, "t-1", "/bin/true")
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# The runc shim (and our shim wrapper, which is the runc shim) keeps per
# namespace state here whatever containerd's own state dir is.
RUNC_SHIM_ROOT = Path("/run/containerd/runc")
SHARED_RUN_DIR = Path("/run/containerd")
CGROUP_ROOT = Path("/sys/fs/cgroup")

# /usr/local/bin first: the shim wrapper containerd-shim-urunc-v2 and urunc
# are installed there. Fixed rather than inherited so runs are reproducible.
DAEMON_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
DEFAULT_DISABLED_PLUGINS = ("io.containerd.grpc.v1.cri",)


class CtrError(subprocess.CalledProcessError):
    """`ctr` exited non-zero; the message carries its argv and output."""

    def __str__(self) -> str:
        return (
            f"ctr failed with exit code {self.returncode}: {self.cmd}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )


class ContainerdStartError(RuntimeError):
    """The daemon did not answer `ctr version` in time."""


def _toml_str(value: str | os.PathLike[str]) -> str:
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(os.fspath(value))


def render_config(
    *,
    root: Path,
    state: Path,
    address: str,
    ttrpc_address: str,
    opt_dir: Path,
    disabled_plugins: Sequence[str] = DEFAULT_DISABLED_PLUGINS,
    extra_config: str = "",
) -> str:
    """containerd config.toml (version 2) for a private instance.

    *extra_config* is appended with `@ROOT@` and `@STATE@` replaced by the
    instance's root and state dirs; it may add tables (for example the CRI
    plugin's) but must not repeat the keys written here. The CRI plugin
    creates its CNI `conf_dir` (default /etc/cni/net.d), so point that under
    `@STATE@` when enabling CRI.
    """
    extra_config = extra_config.replace("@ROOT@", os.fspath(root)).replace("@STATE@", os.fspath(state))
    disabled = ", ".join(_toml_str(p) for p in disabled_plugins)
    return "\n".join(
        [
            "version = 2",
            f"root = {_toml_str(root)}",
            f"state = {_toml_str(state)}",
            f"disabled_plugins = [{disabled}]",
            "",
            "[grpc]",
            f"  address = {_toml_str(address)}",
            "",
            "[ttrpc]",
            f"  address = {_toml_str(ttrpc_address)}",
            "",
            "[debug]",
            '  level = "debug"',
            "",
            # The default is /opt/containerd, shared with a system instance.
            '[plugins."io.containerd.internal.v1.opt"]',
            f"  path = {_toml_str(opt_dir)}",
            "",
            extra_config,
            "",
        ]
    )


@dataclass
class Containerd:
    """A running private containerd and the `ctr` that talks to it."""

    address: str
    namespace: str
    root: Path
    state: Path
    run_dir: Path
    log_path: Path
    config_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # /run/containerd dirs that did not exist before this instance started.
    shared_dirs_created: list[Path] = field(default_factory=list, repr=False)
    problems: list[str] = field(default_factory=list)
    # Every container ID teardown came across, to find shim sockets and FIFOs.
    seen_ids: set[str] = field(default_factory=set, repr=False)

    def ctr_argv(self, *args: str | os.PathLike[str]) -> list[str]:
        argv = ["ctr", "--address", self.address, "-n", self.namespace]
        argv.extend(os.fspath(a) for a in args)
        return argv

    def ctr(
        self,
        *args: str | os.PathLike[str],
        check: bool = True,
        timeout: float = 60,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `ctr --address SOCK -n NAMESPACE ARGS` and capture its output."""
        argv = self.ctr_argv(*args)
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise CtrError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def ctr_popen(self, *args: str | os.PathLike[str], **kwargs: object) -> subprocess.Popen[str]:
        """Start `ctr ARGS` in the background, stdout and stderr piped."""
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(self.ctr_argv(*args), text=True, **kwargs)  # type: ignore[call-overload]

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"(no containerd log at {self.log_path}: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def list_ids(self, *what: str) -> list[str]:
        """IDs printed by `ctr WHAT ls -q` (empty when the call fails)."""
        proc = self.ctr(*what, "ls", "-q", check=False, timeout=30)
        return proc.stdout.split() if proc.returncode == 0 else []


def _unique_suffix() -> str:
    return secrets.token_hex(4)


def _wait_ready(ctd: Containerd, timeout: float) -> None:
    assert ctd.process is not None
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if ctd.process.poll() is not None:
            raise ContainerdStartError(
                f"containerd exited with code {ctd.process.returncode} during start-up\n"
                f"--- {ctd.log_path} (tail) ---\n{ctd.log_tail()}"
            )
        if os.path.exists(ctd.address):
            proc = ctd.ctr("version", check=False, timeout=5)
            if proc.returncode == 0:
                return
            last = proc.stderr.strip()
        time.sleep(0.1)
    raise ContainerdStartError(
        f"containerd did not answer `ctr version` on {ctd.address} within {timeout:.0f}s"
        f" (last error: {last or 'socket not created'})\n"
        f"--- {ctd.log_path} (tail) ---\n{ctd.log_tail()}"
    )


def start_containerd(
    *,
    extra_config: str = "",
    disabled_plugins: Sequence[str] = DEFAULT_DISABLED_PLUGINS,
    path: str = DAEMON_PATH,
    start_timeout: float = START_TIMEOUT,
) -> Containerd:
    """Start a private containerd; pair with `stop_containerd` (even on error)."""
    shared_missing = _missing_shared_dirs()
    suffix = _unique_suffix()
    name = f"urunc-test-{suffix}"
    run_dir = Path("/run") / name
    lib_dir = Path("/var/lib") / name
    run_dir.mkdir(mode=0o700)
    lib_dir.mkdir(mode=0o700)
    ctd = Containerd(
        address=str(run_dir / "containerd.sock"),
        namespace=name,
        root=lib_dir / "root",
        state=run_dir / "state",
        run_dir=run_dir,
        log_path=lib_dir / "containerd.log",
        config_path=lib_dir / "config.toml",
        shared_dirs_created=shared_missing,
    )
    ctd.config_path.write_text(
        render_config(
            root=ctd.root,
            state=ctd.state,
            address=ctd.address,
            ttrpc_address=ctd.address + ".ttrpc",
            opt_dir=lib_dir / "opt",
            disabled_plugins=disabled_plugins,
            extra_config=extra_config,
        )
    )
    env = dict(os.environ, PATH=path)
    try:
        with open(ctd.log_path, "ab") as log:
            ctd.process = subprocess.Popen(
                ["containerd", "--config", str(ctd.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                # Keep the test runner's descriptors out of containerd, its
                # shims and the runtime they exec, and keep ^C to pytest.
                close_fds=True,
                start_new_session=True,
            )
        _wait_ready(ctd, start_timeout)
    except BaseException:
        stop_containerd(ctd)
        raise
    return ctd


def quietly(problems: list[str], step: str, fn: Callable[..., object], *args: object) -> None:
    """FN(*ARGS) for a teardown step: a failure is noted in PROBLEMS and teardown goes on."""
    try:
        fn(*args)
    except Exception as exc:  # teardown goes on whatever fails
        problems.append(f"{step}: {exc}")


def _empty_namespace(ctd: Containerd) -> None:
    """Delete tasks, containers, images, snapshots, leases, then the namespace."""
    for task in ctd.list_ids("tasks"):
        ctd.ctr("tasks", "kill", "--all", "--signal", "SIGKILL", task, check=False, timeout=15)
        ctd.ctr("tasks", "delete", "--force", task, check=False, timeout=30)
    containers = ctd.list_ids("containers")
    ctd.seen_ids.update(containers)
    for container in containers:
        ctd.ctr("containers", "delete", container, check=False, timeout=30)
    images = ctd.list_ids("images")
    if images:
        ctd.ctr("images", "delete", "--sync", *images, check=False, timeout=60)
    for lease in ctd.list_ids("leases"):
        ctd.ctr("leases", "delete", lease, check=False, timeout=30)
    for snapshotter in ("overlayfs", "native"):
        proc = ctd.ctr("snapshots", "--snapshotter", snapshotter, "ls", check=False, timeout=30)
        keys = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
        # Children before parents: retry until nothing more goes.
        for _ in range(len(keys)):
            if not keys:
                break
            keys = [
                k
                for k in keys
                if ctd.ctr("snapshots", "--snapshotter", snapshotter, "rm", k, check=False).returncode != 0
            ]
    leftovers = ctd.list_ids("containers") + ctd.list_ids("tasks")
    if leftovers:
        ctd.problems.append(f"namespace {ctd.namespace} still holds {leftovers}")
    proc = ctd.ctr("namespaces", "remove", ctd.namespace, check=False, timeout=30)
    if proc.returncode != 0:
        ctd.problems.append(f"namespace {ctd.namespace} not removed: {proc.stderr.strip()}")


def stop_process(proc: subprocess.Popen[bytes] | None, name: str, problems: list[str],
                 timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM a daemon we started, SIGKILL it (noting the problem) if it does not go."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        problems.append(f"{name} {proc.pid} ignored SIGTERM; killed")
        proc.kill()
        proc.wait(timeout=timeout)


def _stop_daemon(ctd: Containerd) -> None:
    stop_process(ctd.process, "containerd", ctd.problems)


def _read_cmdline(pid: str) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _kill_our_shims(ctd: Containerd) -> None:
    """SIGKILL shims still serving our namespace on our containerd address."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        argv = _read_cmdline(pid)
        if not argv or not os.path.basename(argv[0]).startswith("containerd-shim"):
            continue
        if ctd.address not in argv or ctd.namespace not in argv:
            continue
        ctd.problems.append(f"shim {pid} was still running: {' '.join(argv)}")
        if "-id" in argv[:-1]:
            ctd.seen_ids.add(argv[argv.index("-id") + 1])
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _delete_runtime_state(ctd: Containerd) -> None:
    """Force-delete containers the shim runtime still knows in our namespace."""
    root = RUNC_SHIM_ROOT / ctd.namespace
    if not root.is_dir():
        return
    runtimes = [b for b in ("runc", "/usr/local/bin/urunc") if shutil.which(b)]
    for entry in sorted(root.iterdir()):
        if not entry.is_dir():
            continue
        ctd.problems.append(f"runtime state left for {entry.name} in {root}")
        ctd.seen_ids.add(entry.name)
        for runtime in runtimes:
            subprocess.run(
                [runtime, "--root", str(root), "delete", "--force", entry.name],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=30,
            )
    shutil.rmtree(root, ignore_errors=True)


def _remove_shim_leftovers(ctd: Containerd) -> None:
    """Shim sockets and ctr FIFOs of our containers in the shared /run/containerd.

    A shim that exits normally removes its socket, and containerd removes the
    FIFOs with the task; after a crash both stay. Only names derived from our
    address, namespace and container IDs are touched.
    """
    bundles = ctd.state / "io.containerd.runtime.v2.task" / ctd.namespace
    if bundles.is_dir():
        ctd.seen_ids.update(p.name for p in bundles.iterdir())
    for cid in ctd.seen_ids:
        # containerd 1.6 shim.SocketAddress: sha256(<grpc address>/<ns>/<id>).
        digest = hashlib.sha256(os.path.join(ctd.address, ctd.namespace, cid).encode()).hexdigest()
        with contextlib.suppress(FileNotFoundError):
            (SHARED_RUN_DIR / "s" / digest).unlink()
    fifo_root = SHARED_RUN_DIR / "fifo"
    if not fifo_root.is_dir():
        return
    prefixes = tuple(f"{cid}-std" for cid in ctd.seen_ids)
    for fifo_dir in fifo_root.iterdir():
        names = os.listdir(fifo_dir) if fifo_dir.is_dir() else []
        if names and prefixes and all(n.startswith(prefixes) for n in names):
            shutil.rmtree(fifo_dir, ignore_errors=True)


def _mounts_under(*dirs: Path) -> list[str]:
    prefixes = [os.fspath(d).rstrip("/") + "/" for d in dirs]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            # Field 5 is the mount point, with spaces etc. octal-escaped.
            point = line.split()[4].encode().decode("unicode_escape")
            if any((point + "/").startswith(p) for p in prefixes):
                found.append(point)
    return found


def unmount_under(*dirs: Path) -> list[str]:
    """Unmount everything mounted at or below *dirs*, deepest first."""
    points = _mounts_under(*dirs)
    for point in sorted(points, key=lambda p: p.count("/"), reverse=True):
        if subprocess.run(["umount", point], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", point], capture_output=True)
    return points


def _remove_cgroups(namespace: str) -> None:
    """containerd puts containers in /<namespace>/<id> of every hierarchy."""
    if not CGROUP_ROOT.is_dir():
        return
    for hierarchy in CGROUP_ROOT.iterdir():
        group = hierarchy / namespace
        if not group.is_dir():
            continue
        # cgroupfs directories go with rmdir only, leaves first.
        for dirpath, _dirs, _files in sorted(os.walk(group), key=lambda w: -w[0].count("/")):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _remove_shared_dirs(created: Sequence[Path]) -> None:
    """rmdir the /run/containerd dirs this instance created, if now empty."""
    for d in created:
        with contextlib.suppress(OSError):
            d.rmdir()


def stop_containerd(ctd: Containerd) -> list[str]:
    """Tear everything down; returns what was found left over (for reporting)."""
    if ctd.process is not None and ctd.process.poll() is None:
        quietly(ctd.problems, "empty namespace", _empty_namespace, ctd)
    quietly(ctd.problems, "stop containerd", _stop_daemon, ctd)
    quietly(ctd.problems, "kill shims", _kill_our_shims, ctd)
    quietly(ctd.problems, "runtime state", _delete_runtime_state, ctd)
    quietly(ctd.problems, "shim leftovers", _remove_shim_leftovers, ctd)
    quietly(ctd.problems, "unmount", unmount_under, ctd.root, ctd.state, ctd.run_dir)
    quietly(ctd.problems, "cgroups", _remove_cgroups, ctd.namespace)
    for d in (ctd.run_dir, ctd.root.parent):
        quietly(ctd.problems, f"remove {d}", shutil.rmtree, d)
    _remove_shared_dirs(ctd.shared_dirs_created)
    return ctd.problems


def _missing_shared_dirs() -> list[Path]:
    # Deepest first, so rmdir at teardown can go back up the tree.
    dirs = [SHARED_RUN_DIR / "runc", SHARED_RUN_DIR / "s", SHARED_RUN_DIR / "fifo", SHARED_RUN_DIR]
    return [d for d in dirs if not d.exists()]


@contextlib.contextmanager
def private_containerd(**kwargs: object) -> Iterator[Containerd]:
    """Context manager around `start_containerd` / `stop_containerd`."""
    ctd = start_containerd(**kwargs)  # type: ignore[arg-type]
    try:
        yield ctd
    finally:
        stop_containerd(ctd)
