"""urunc side by side: bare monitor, urunc, containerd, per command, density.

    .venv/bin/python bench/run.py [--runs N] [--ctr-runs N] [--density N] [--accel tcg|auto|kvm]
                                  [--quick] [--out DIR]

Writes DIR/results.json, DIR/results.md and DIR/chart.png (default bench/results/).
Contenders alternate run by run, so drift (a busy neighbour, a cache warming up)
hits every contender alike; ratios and differences are taken pair by pair (run i
against run i). Needs root, the installed runtime (`make install`), QEMU, runc,
containerd and the sample image (`make images`). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO / "src"), str(REPO)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from bench import _report  # noqa: E402
from bench._procs import (  # noqa: E402
    BenchError,
    LineWatch,
    become_subreaper,
    cmdline_of,
    exe_of,
    kill_quietly,
    memory_kib,
    ppid_of,
    python_processes,
    read_back,
    reap,
    reap_orphans,
    run_quiet,
    timed_run,
    wait_exit,
)
from bench._stats import pairwise, summary  # noqa: E402

URUNC = "/usr/local/bin/urunc"
SAMPLE_IMAGE = "docker.io/library/urunc-hello:latest"
BUSYBOX_IMAGE = "docker.io/library/urunc-bench-busybox:latest"
MONITOR_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
RUN_TIMEOUT = 30.0
SETTLE_S = 0.5  # a pause before each `ctr run` of the templates section (see there)
# Namespaces containerd's default spec asks for; the runtime creates them all.
NAMESPACES = [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")]
HELLO_ARGS = ["hello"]          # the sample image's CMD, so every section boots the same guest
WAIT_ARGS = ["hello", "wait"]   # prints `waiting` and stays up until killed
WAITING = b"waiting\n"


def ms(ns: int) -> float:
    return ns / 1e6


class Bench:
    def __init__(self, opts: argparse.Namespace) -> None:
        self.opts = opts
        self.work = Path(tempfile.mkdtemp(prefix="urunc-bench-", dir="/run"))
        self.root = str(self.work / "urunc-root")
        self.runc_root = str(self.work / "runc-root")
        self.env = dict(os.environ)
        self.env.pop("URUNC_TIMESTAMPS", None)
        self.config_path = ""
        if opts.accel != "auto":
            self.config_path = str(self.work / "config.toml")
            Path(self.config_path).write_text(f'[monitors.qemu]\naccel = "{opts.accel}"\n')
            self.env["URUNC_CONFIG"] = self.config_path
        self.interpreter = interpreter_of(opts.urunc)
        self.seq = 0
        self.accel_seen: set[str] = set()

    # -- setup ------------------------------------------------------------------------------
    def setup(self) -> None:
        kernel_dir = REPO / "build" / "hello"
        subprocess.run(["make", "-s", "-C", str(REPO / "guests" / "hello"), f"BUILD={kernel_dir}"],
                       check=True, capture_output=True)
        self.kernel = kernel_dir / "hello.elf"
        self.hello = self.unikernel_bundle("hello", HELLO_ARGS)
        self.wait = self.unikernel_bundle("wait", WAIT_ARGS)
        self.busybox = self.busybox_bundle()
        plan = self.probe_plan()
        from urunc import guests, monitors
        from urunc.unikernel.plan import Plan

        # Same Plan, own state dir: the argv may name files there (QEMU's QMP socket).
        self.floor_dir = self.work / "floor-state"
        self.floor_dir.mkdir(mode=0o700)
        p = Plan.from_dict(plan).replace(state_dir=str(self.floor_dir))
        self.floor_argv = monitors.get(p.monitor).argv(p, guests.get(p.guest), None)

    def unikernel_bundle(self, name: str, args: list[str]) -> str:
        bundle = self.work / name
        (bundle / "rootfs" / "unikernel").mkdir(parents=True)
        shutil.copy(self.kernel, bundle / "rootfs" / "unikernel" / "hello.elf")
        config = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
                        "env": ["PATH=/bin"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "annotations": {
                "com.urunc.unikernel.unikernelType": "unikraft",
                "com.urunc.unikernel.hypervisor": "qemu",
                "com.urunc.unikernel.binary": "/unikernel/hello.elf",
                "com.urunc.unikernel.unikernelVersion": "0.17.0",
            },
            "linux": {"namespaces": NAMESPACES},
        }
        (bundle / "config.json").write_text(json.dumps(config))
        return str(bundle)

    def busybox_bundle(self) -> str:
        from tests.helpers.rootfs import busybox_rootfs

        bundle = self.work / "busybox"
        busybox_rootfs(bundle / "rootfs")
        subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True, capture_output=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/sleep", "1000"]
        (bundle / "config.json").write_text(json.dumps(config))
        return str(bundle)

    def probe_plan(self) -> dict[str, Any]:
        """The Plan urunc builds for the hello bundle: the floor runs the same argv."""
        cid = self.new_id("probe")
        self.urunc("create", "--bundle", self.hello, cid, stdout=subprocess.DEVNULL)
        try:
            state = json.loads((Path(self.root) / cid / "urunc-state.json").read_text())
        finally:
            self.urunc("delete", "--force", cid)
            reap_orphans()
        self.accel_seen.add(state["plan"]["accel"])
        return dict(state["plan"])

    # -- primitives -------------------------------------------------------------------------
    def new_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}-{self.seq}"

    def urunc(self, *args: str, stdout: Any = None, env: dict[str, str] | None = None) -> None:
        rc, err = run_quiet([self.opts.urunc, "--root", self.root, *args], env=env or self.env,
                            stdout=stdout or subprocess.DEVNULL, timeout=RUN_TIMEOUT)
        if rc != 0:
            raise BenchError(f"urunc {' '.join(args)}: {err}")

    def state_plan_accel(self, cid: str) -> None:
        try:
            state = json.loads((Path(self.root) / cid / "urunc-state.json").read_text())
            self.accel_seen.add(state["plan"]["accel"])
        except (OSError, ValueError, KeyError):
            pass

    def floor_once(self) -> tuple[float, float]:
        """The monitor by hand, same argv, env and cwd as the runtime's: first line, exit (ms)."""
        for leftover in self.floor_dir.iterdir():
            leftover.unlink()
        r, w = os.pipe()
        err = tempfile.TemporaryFile()
        t0 = time.monotonic_ns()
        proc = subprocess.Popen(self.floor_argv, stdin=subprocess.DEVNULL, stdout=w,
                                stderr=err, cwd="/", env=MONITOR_ENV)
        os.close(w)
        watch = LineWatch(r)
        try:
            if not watch.wait_eof(time.monotonic() + RUN_TIMEOUT):
                proc.kill()
                raise BenchError("bare monitor did not exit within the timeout")
            proc.wait(timeout=RUN_TIMEOUT)
        finally:
            watch.close()
        if proc.returncode != 0 or b"bye" not in watch.buf:
            raise BenchError(f"bare monitor failed ({proc.returncode}): {watch.buf[-200:]!r} {read_back(err)}")
        err.close()
        return ms(watch.first_line_ns - t0), ms(watch.eof_ns - t0)

    def _wait(self, proc: subprocess.Popen[bytes], watch: LineWatch, what: str, err: Any = None) -> None:
        wait_exit(proc, RUN_TIMEOUT, watch)
        if proc.returncode != 0:
            raise BenchError(f"{what} exited {proc.returncode}: {read_back(err) if err else ''}")

    def runtime_once(self, timestamps: str | None = None) -> dict[str, Any]:
        """urunc create + start on the hello bundle; the container's stdout is our pipe."""
        cid = self.new_id("rt")
        env = dict(self.env, URUNC_TIMESTAMPS=timestamps) if timestamps else self.env
        pid_file = str(self.work / f"{cid}.pid")
        argv = [self.opts.urunc, "--root", self.root]
        r, w = os.pipe()
        watch = LineWatch(r)
        err = tempfile.TemporaryFile()
        t0 = time.monotonic_ns()
        create = subprocess.Popen([*argv, "create", "--bundle", self.hello, "--pid-file", pid_file, cid],
                                  stdin=subprocess.DEVNULL, stdout=w, stderr=err, env=env, cwd=self.hello)
        os.close(w)
        try:
            self._wait(create, watch, "urunc create", err)
            t_created = time.monotonic_ns()
            start = subprocess.Popen([*argv, "start", cid], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, env=env)
            self._wait(start, watch, "urunc start", err)
            t_started = time.monotonic_ns()
            if not watch.wait_eof(time.monotonic() + RUN_TIMEOUT):
                raise BenchError("container did not exit within the timeout")
            pid = int(Path(pid_file).read_text())
            status = reap(pid, RUN_TIMEOUT)
            if status is None or b"bye" not in watch.buf:
                raise BenchError(f"container failed ({status}): {watch.buf[-200:]!r}")
            self.state_plan_accel(cid)
        finally:
            watch.close()
            err.close()
            self.urunc("delete", "--force", cid)
        result = {
            "t0": t0, "create_pid": create.pid, "start_pid": start.pid,
            "created": t_created, "started": t_started,
            "first_line": watch.first_line_ns, "eof": watch.eof_ns,
            "first_line_ms": ms(watch.first_line_ns - t0), "exit_ms": ms(watch.eof_ns - t0),
        }
        return result

    def linux_bundle(self, name: str, extra_mib: int) -> str:
        """A Linux-guest bundle: busybox, plus EXTRA_MIB of incompressible files, echoing a line."""
        from tests.helpers.rootfs import busybox_rootfs

        bundle = self.work / name
        root = busybox_rootfs(bundle / "rootfs")
        for i in range(extra_mib // 10):
            (root / "data").mkdir(exist_ok=True)
            (root / "data" / f"blob{i}").write_bytes(os.urandom(10 << 20))
        config = {
            "ociVersion": "1.0.2",
            "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["echo", "first-output"],
                        "env": ["PATH=/bin"], "cwd": "/"},
            "root": {"path": "rootfs"},
            "annotations": {"com.urunc.unikernel.unikernelType": "linux",
                            "com.urunc.unikernel.hypervisor": "qemu"},
            "linux": {"namespaces": NAMESPACES},
        }
        (bundle / "config.json").write_text(json.dumps(config))
        return str(bundle)

    def linux_once(self, bundle: str) -> dict[str, Any]:
        """urunc create + start of a Linux-guest bundle: ms to its first output, the guest's memory."""
        cid = self.new_id("lx")
        argv = [self.opts.urunc, "--root", self.root]
        r, w = os.pipe()
        watch = LineWatch(r)
        watch.marker = b"first-output"
        err = tempfile.TemporaryFile()
        t0 = time.monotonic_ns()
        create = subprocess.Popen([*argv, "create", "--bundle", bundle, cid], stdin=subprocess.DEVNULL,
                                  stdout=w, stderr=err, env=self.env, cwd=bundle)
        os.close(w)
        try:
            self._wait(create, watch, "urunc create", err)
            t_created = time.monotonic_ns()
            state = json.loads((Path(self.root) / cid / "urunc-state.json").read_text())
            start = subprocess.Popen([*argv, "start", cid], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=err, env=self.env)
            self._wait(start, watch, "urunc start", err)
            deadline = time.monotonic() + 4 * RUN_TIMEOUT
            while not watch.marker_ns and not watch.eof_ns and time.monotonic() < deadline:
                watch.poll(0.05)
            if not watch.marker_ns:
                raise BenchError(f"linux guest gave no output: {watch.buf[-300:]!r}")
        finally:
            watch.close()
            err.close()
            self.urunc("delete", "--force", cid)
            reap_orphans()
        plan = state["plan"]
        return {"first_output_ms": ms(watch.marker_ns - t0), "create_ms": ms(t_created - t0),
                "memory_mib": plan["memory_mib"], "shared_root": any(m[0] == "root" for m in plan["mounts"])}

    def linux_image(self, name: str, cmd: str) -> Path:
        """An OCI archive of a busybox Linux-guest image NAME:latest whose CMD is CMD (JSON)."""
        from tests.helpers.rootfs import busybox_rootfs
        from urunc.image import build_image

        ctx = self.work / f"{name}-image"
        busybox_rootfs(ctx / "rootfs")
        (ctx / "Containerfile").write_text(
            "FROM scratch\nCOPY . /\nLABEL com.urunc.unikernel.unikernelType=linux "
            f"com.urunc.unikernel.hypervisor=qemu\nCMD {cmd}\n")
        return build_image(ctx / "Containerfile", ctx / "rootfs", f"{name}:latest", self.work / f"{name}.tar").output

    # -- sections ---------------------------------------------------------------------------
    def section_exec(self) -> dict[str, Any]:
        """`ctr task exec ... true`: into a Linux-guest container (urunc) and a busybox one (runc)."""
        if not Path("/usr/local/lib/urunc/guest/vmlinux").exists():
            return {"skipped": "no linux guest kernel installed (make install)"}
        from tests.helpers.containerd import private_containerd

        tar = self.linux_image("urunc-bench-linux", '["sleep", "100000"]')
        urunc_times: list[float] = []
        runc_times: list[float] = []
        with private_containerd() as ctd:
            ctd.ctr("image", "import", str(tar), timeout=120)
            image = "docker.io/library/urunc-bench-linux:latest"
            guest, plain = self.new_id("ex-uk"), self.new_id("ex-runc")
            ctd.seen_ids.update((guest, plain))
            ctd.ctr("run", "-d", "--runtime", "io.containerd.urunc.v2", image, guest, timeout=120)
            ctd.ctr("run", "-d", image, plain, "sleep", "100000", timeout=120)
            try:
                deadline = time.monotonic() + 90
                while ctd.ctr("task", "exec", "--exec-id", "ready", guest, "true", check=False,
                              timeout=60).returncode != 0:
                    if time.monotonic() > deadline:
                        raise BenchError("the linux guest's exec agent never answered")
                    time.sleep(0.5)
                runs = max(2, min(self.opts.runs, 30))
                for i in range(runs):
                    urunc_times.append(timed_run(ctd.ctr_argv("task", "exec", "--exec-id", f"u{i}", guest, "true"),
                                                 timeout=RUN_TIMEOUT))
                    runc_times.append(timed_run(ctd.ctr_argv("task", "exec", "--exec-id", f"r{i}", plain, "true"),
                                                timeout=RUN_TIMEOUT))
            finally:
                for cid in (guest, plain):
                    ctd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
                    ctd.ctr("task", "delete", "-f", cid, check=False)
                    ctd.ctr("container", "rm", cid, check=False)
        return {"runs": len(urunc_times), "urunc_linux_guest_ms": summary(urunc_times),
                "runc_ms": summary(runc_times),
                "pairs": {"urunc_minus_runc_ms": pairwise(urunc_times, runc_times, "diff")}}

    def section_templates(self) -> dict[str, Any]:
        """`ctr run --rm` of a busybox Linux-guest image (`echo hi`) booted cold, started from a
        template, and the same image under runc, alternately; then --density idle Linux guests
        from one template against as many cold-booted ones: their monitors' summed PSS."""
        if not Path("/usr/local/lib/urunc/guest/vmlinux").exists():
            return {"skipped": "no linux guest kernel installed (make install)"}
        tar = self.linux_image("urunc-bench-warm", '["echo", "hi"]')
        accel = f'[monitors.qemu]\naccel = "{self.opts.accel}"\n' if self.opts.accel != "auto" else ""
        # On disk, as a real templates directory is (/run is a tmpfs: its pages would be shmem).
        templates_dir = Path(tempfile.mkdtemp(prefix="urunc-bench-templates-", dir="/var/tmp"))
        try:
            return self._templates(tar, accel, templates_dir)
        finally:
            shutil.rmtree(templates_dir, ignore_errors=True)

    def _templates(self, tar: Path, accel: str, templates_dir: Path) -> dict[str, Any]:
        from tests.helpers.containerd import private_containerd

        image = "docker.io/library/urunc-bench-warm:latest"
        for name, templates in (("cold", "false"), ("warm", "true")):
            (self.work / f"{name}.toml").write_text(
                f'{accel}[templates]\nenabled = {templates}\ndir = "{templates_dir}"\n')
        # Warm runs are plain `--runtime io.containerd.urunc.v2`, as a user's are: containerd
        # passes its environment (URUNC_CONFIG) to the shim and so to urunc. Cold ones name a
        # wrapper that points urunc at a config with templates off (its ~1 ms a call is
        # nothing beside a cold boot).
        cold = self.work / "urunc-cold"
        cold.write_text(f'#!/bin/sh\nURUNC_CONFIG={self.work / "cold.toml"} exec {self.opts.urunc} "$@"\n')
        cold.chmod(0o755)
        runtimes = {"runc": [], "cold": ["--runc-binary", str(cold)],
                    "warm": ["--runtime", "io.containerd.urunc.v2"]}
        times: dict[str, list[float]] = {"runc": [], "cold": [], "warm": []}
        pss: dict[str, list[int]] = {}
        saved = os.environ.get("URUNC_CONFIG")
        os.environ["URUNC_CONFIG"] = str(self.work / "warm.toml")
        try:
            with private_containerd() as ctd:
                ctd.ctr("image", "import", str(tar), timeout=120)

                def run(kind: str) -> float:
                    cid = self.new_id(f"tpl-{kind}")
                    ctd.seen_ids.add(cid)
                    t0 = time.monotonic_ns()
                    proc = subprocess.run(ctd.ctr_argv("run", "--rm", *runtimes[kind], image, cid),
                                          stdin=subprocess.DEVNULL, capture_output=True,
                                          timeout=4 * RUN_TIMEOUT, check=False)
                    t1 = time.monotonic_ns()
                    if proc.returncode != 0 or proc.stdout != b"hi\n":
                        raise BenchError(f"ctr run ({kind}) exited {proc.returncode}: {proc.stdout[-200:]!r} "
                                         f"{proc.stderr[-300:]!r}")
                    return ms(t1 - t0)

                for kind in times:  # warm-up; the first warm run makes the templates
                    run(kind)
                os.sync()  # their memory files' writeback is the making's cost, not a start's
                for _ in range(max(2, min(self.opts.ctr_runs, 15))):
                    for kind in times:
                        # Each run starts on a quiet host: a cold boot's teardown (its
                        # monitor's memory, containerd's cleanup) overlapped the next run.
                        time.sleep(SETTLE_S)
                        times[kind].append(run(kind))
                for kind in ("warm", "cold"):
                    pss[kind] = self._idle_guests(ctd, image, runtimes[kind], kind)
        finally:
            if saved is None:
                os.environ.pop("URUNC_CONFIG", None)
            else:
                os.environ["URUNC_CONFIG"] = saved
        return {
            "runs": len(times["runc"]),
            "ctr_run_ms": {kind: summary(values) for kind, values in times.items()},
            "pairs": {"warm_over_runc": pairwise(times["warm"], times["runc"], "ratio"),
                      "cold_over_runc": pairwise(times["cold"], times["runc"], "ratio")},
            "idle_guests": self.opts.density,
            "idle_pss_sum_mib": {kind: round(sum(values) / 1024, 1) for kind, values in pss.items()},
            "idle_pss_each_mib": {kind: round(sum(values) / 1024 / max(1, len(values)), 1)
                                  for kind, values in pss.items()},
        }

    def _idle_guests(self, ctd: Any, image: str, runtime: list[str], kind: str) -> list[int]:
        """Start --density idle Linux guests, wait until each one's exec agent answers, and
        return their monitors' PSS in KiB."""
        ids = [self.new_id(f"idle-{kind}") for _ in range(self.opts.density)]
        ctd.seen_ids.update(ids)
        try:
            for cid in ids:
                ctd.ctr("run", "-d", *runtime, image, cid, "sleep", "100000", timeout=4 * RUN_TIMEOUT)
            deadline = time.monotonic() + 20 * RUN_TIMEOUT
            for cid in ids:
                while ctd.ctr("task", "exec", "--exec-id", "up", cid, "true", check=False,
                              timeout=120).returncode != 0:
                    if time.monotonic() > deadline:
                        raise BenchError(f"idle guest {cid} ({kind}) never answered")
                    time.sleep(0.5)
            time.sleep(1.0)
            pids = {}
            for line in ctd.ctr("task", "ls").stdout.splitlines()[1:]:
                fields = line.split()
                if fields and fields[0] in ids:
                    pids[fields[0]] = int(fields[1])
            if sorted(pids) != sorted(ids):
                raise BenchError(f"idle guests ({kind}) not all running: {sorted(set(ids) - set(pids))}")
            return [memory_kib(pid).get("pss", 0) for pid in pids.values()]
        finally:
            for cid in ids:
                ctd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
            for cid in ids:
                ctd.ctr("task", "delete", "-f", cid, check=False)
                ctd.ctr("container", "rm", cid, check=False)

    def section_large_rootfs(self) -> dict[str, Any]:
        """A busybox Linux guest against the same with --large-mib more rootfs, run alternately."""
        if not Path("/usr/local/lib/urunc/guest/vmlinux").exists():
            return {"skipped": "no linux guest kernel installed (make install)"}
        small = self.linux_bundle("linux-busybox", 0)
        large = self.linux_bundle("linux-large", self.opts.large_mib)
        runs = max(2, min(self.opts.runs, 10))
        self.linux_once(small)  # warm-up, not counted
        a, b = [], []
        for _ in range(runs):
            a.append(self.linux_once(small))
            b.append(self.linux_once(large))
        first_small = [x["first_output_ms"] for x in a]
        first_large = [x["first_output_ms"] for x in b]
        return {
            "runs": runs, "large_extra_mib": self.opts.large_mib,
            "busybox": {"first_output_ms": summary(first_small),
                        "create_ms": summary([x["create_ms"] for x in a]),
                        "memory_mib": sorted({x["memory_mib"] for x in a}),
                        "shared_root": sorted({x["shared_root"] for x in a})},
            "large": {"first_output_ms": summary(first_large),
                      "create_ms": summary([x["create_ms"] for x in b]),
                      "memory_mib": sorted({x["memory_mib"] for x in b}),
                      "shared_root": sorted({x["shared_root"] for x in b})},
            "pairs": {"first_output_ratio": pairwise(first_large, first_small, "ratio")},
        }

    def section_start_path(self) -> dict[str, Any]:
        runs = self.opts.runs
        floor_first, floor_exit, rt_first, rt_exit, ts_first, ts_exit = [], [], [], [], [], []
        phase_runs: list[dict[str, float]] = []
        self.floor_once()
        self.runtime_once()  # warm-up, not counted
        for i in range(runs):
            f1, f2 = self.floor_once()
            r = self.runtime_once()
            ts_file = str(self.work / f"ts-{i}.txt")
            t = self.runtime_once(timestamps=ts_file)
            floor_first.append(f1)
            floor_exit.append(f2)
            rt_first.append(r["first_line_ms"])
            rt_exit.append(r["exit_ms"])
            ts_first.append(t["first_line_ms"])
            ts_exit.append(t["exit_ms"])
            phase_runs.append(phases_of(t, ts_file))
            reap_orphans()
        phases = {name: summary([p[name] for p in phase_runs if name in p])
                  for name in phase_runs[0]}
        return {
            "floor": {"first_line_ms": summary(floor_first), "exit_ms": summary(floor_exit)},
            "runtime": {"first_line_ms": summary(rt_first), "exit_ms": summary(rt_exit)},
            "runtime_with_timestamps": {"first_line_ms": summary(ts_first), "exit_ms": summary(ts_exit)},
            "pairs": {
                "first_line_overhead_ms": pairwise(rt_first, floor_first, "diff"),
                "exit_overhead_ms": pairwise(rt_exit, floor_exit, "diff"),
                "first_line_ratio": pairwise(rt_first, floor_first, "ratio"),
                "exit_ratio": pairwise(rt_exit, floor_exit, "ratio"),
                "timestamps_cost_ms": pairwise(ts_first, rt_first, "diff"),
            },
            "phases_ms": phases,
            "floor_argv": self.floor_argv,
        }

    def urunc_commands_once(self) -> dict[str, float]:
        cid = self.new_id("cmd")
        base = [self.opts.urunc, "--root", self.root]
        pid_file = str(self.work / f"{cid}.pid")
        out: dict[str, float] = {}
        try:
            out["create"] = timed_run([*base, "create", "--bundle", self.wait, "--pid-file", pid_file, cid],
                                      env=self.env, cwd=self.wait)
            pid = int(Path(pid_file).read_text())
            out["start"] = timed_run([*base, "start", cid], env=self.env)
            out["state"] = timed_run([*base, "state", cid], env=self.env)
            out["kill"] = timed_run([*base, "kill", cid, "9"], env=self.env)
            if reap(pid, RUN_TIMEOUT) is None:
                raise BenchError(f"monitor {pid} survived SIGKILL")
            out["delete"] = timed_run([*base, "delete", cid], env=self.env)
        except BaseException:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, env=self.env, check=False)
            raise
        return out

    def runc_commands_once(self) -> dict[str, float]:
        cid = self.new_id("runc")
        base = ["runc", "--root", self.runc_root]
        pid_file = str(self.work / f"{cid}.pid")
        out: dict[str, float] = {}
        try:
            out["create"] = timed_run([*base, "create", "--bundle", self.busybox, "--pid-file", pid_file, cid],
                                      cwd=self.busybox)
            pid = int(Path(pid_file).read_text())
            out["start"] = timed_run([*base, "start", cid])
            out["state"] = timed_run([*base, "state", cid])
            out["kill"] = timed_run([*base, "kill", cid, "9"])
            if reap(pid, RUN_TIMEOUT) is None:
                raise BenchError(f"runc container {pid} survived SIGKILL")
            out["delete"] = timed_run([*base, "delete", cid])
        except BaseException:
            subprocess.run([*base, "delete", "--force", cid], capture_output=True, check=False)
            raise
        return out

    def section_commands(self) -> dict[str, Any]:
        names = ("create", "start", "state", "kill", "delete")
        urunc: dict[str, list[float]] = {n: [] for n in names}
        runc: dict[str, list[float]] = {n: [] for n in names}
        python: list[float] = []
        python_argv = [self.interpreter, "-I", "-S", "-c", "pass"]
        self.urunc_commands_once()
        self.runc_commands_once()
        timed_run(python_argv)
        for _ in range(self.opts.runs):
            python.append(timed_run(python_argv))
            for n, v in self.urunc_commands_once().items():
                urunc[n].append(v)
            for n, v in self.runc_commands_once().items():
                runc[n].append(v)
            reap_orphans()
        return {
            "interpreter": python_argv,
            "python_floor_ms": summary(python),
            "urunc_ms": {n: summary(v) for n, v in urunc.items()},
            "runc_ms": {n: summary(v) for n, v in runc.items()},
            "pairs": {
                "state_minus_python_ms": pairwise(urunc["state"], python, "diff"),
                **{f"{n}_urunc_minus_runc_ms": pairwise(urunc[n], runc[n], "diff") for n in names},
                **{f"{n}_urunc_over_runc": pairwise(urunc[n], runc[n], "ratio") for n in names},
            },
        }

    def section_containerd(self) -> dict[str, Any]:
        from tests.helpers.containerd import private_containerd
        from urunc.image import build_image

        sample = REPO / "build" / "images" / "hello.tar"
        if not sample.is_file():
            raise BenchError(f"{sample} missing: run `make images`")
        ctx = self.work / "busybox-image"
        ctx.mkdir()
        shutil.copy("/bin/busybox", ctx / "busybox")
        (ctx / "Containerfile").write_text(
            'FROM scratch\nCOPY busybox /bin/busybox\nCMD ["/bin/busybox", "true"]\n')
        busybox_tar = build_image(ctx / "Containerfile", ctx, "urunc-bench-busybox:latest",
                                  self.work / "busybox.tar").output
        floor: list[float] = []
        uni_wall: list[float] = []
        uni_first: list[float] = []
        bb_wall: list[float] = []
        # containerd passes its environment down to the shim and so to urunc: URUNC_CONFIG too.
        saved = os.environ.get("URUNC_CONFIG")
        if self.config_path:
            os.environ["URUNC_CONFIG"] = self.config_path
        try:
            with private_containerd() as ctd:
                ctd.ctr("image", "import", str(sample), timeout=120)
                ctd.ctr("image", "import", str(busybox_tar), timeout=120)

                def unikernel() -> tuple[float, float]:
                    cid = self.new_id("ctr-uk")
                    ctd.seen_ids.add(cid)
                    r, w = os.pipe()
                    watch = LineWatch(r)
                    err = tempfile.TemporaryFile()
                    t0 = time.monotonic_ns()
                    proc = subprocess.Popen(
                        ctd.ctr_argv("run", "--rm", "--runtime", "io.containerd.urunc.v2", SAMPLE_IMAGE, cid),
                        stdin=subprocess.DEVNULL, stdout=w, stderr=err)
                    os.close(w)
                    try:
                        self._wait(proc, watch, "ctr run (urunc)", err)
                        t1 = time.monotonic_ns()
                        watch.wait_eof(time.monotonic() + 5)
                    finally:
                        watch.close()
                        err.close()
                    if b"bye" not in watch.buf:
                        raise BenchError(f"ctr run (urunc) printed {watch.buf[-200:]!r}")
                    return ms(t1 - t0), ms(watch.first_line_ns - t0)

                def busybox() -> float:
                    cid = self.new_id("ctr-bb")
                    ctd.seen_ids.add(cid)
                    return timed_run(ctd.ctr_argv("run", "--rm", BUSYBOX_IMAGE, cid), timeout=RUN_TIMEOUT)

                unikernel()
                busybox()
                for _ in range(self.opts.ctr_runs):
                    floor.append(self.floor_once()[1])
                    wall, first = unikernel()
                    uni_wall.append(wall)
                    uni_first.append(first)
                    bb_wall.append(busybox())
        finally:
            if saved is None:
                os.environ.pop("URUNC_CONFIG", None)
            else:
                os.environ["URUNC_CONFIG"] = saved
        residual = [u - b - f for u, b, f in zip(uni_wall, bb_wall, floor, strict=False)]
        return {
            "floor_exit_ms": summary(floor),
            "urunc_unikernel": {"wall_ms": summary(uni_wall), "first_line_ms": summary(uni_first)},
            "runc_busybox_true": {"wall_ms": summary(bb_wall)},
            "pairs": {
                "unikernel_minus_busybox_ms": pairwise(uni_wall, bb_wall, "diff"),
                "unikernel_minus_busybox_minus_floor_ms": summary(residual),
                "unikernel_over_busybox": pairwise(uni_wall, bb_wall, "ratio"),
            },
        }

    def section_density(self) -> dict[str, Any]:
        n = self.opts.density
        base = [self.opts.urunc, "--root", self.root]
        containers: list[tuple[str, int, LineWatch, int]] = []  # id, pid, watch, spawn ns
        failures: list[str] = []
        t0 = time.monotonic_ns()
        try:
            for _ in range(n):
                cid = self.new_id("dens")
                pid_file = str(self.work / f"{cid}.pid")
                for _, _, other, _ in containers:  # timestamps of the ones already up stay honest
                    other.drain()
                r, w = os.pipe()
                watch = LineWatch(r)
                watch.marker = WAITING
                t_spawn = time.monotonic_ns()
                try:
                    rc, err = run_quiet([*base, "create", "--bundle", self.wait, "--pid-file", pid_file, cid],
                                        stdout=w, env=self.env, cwd=self.wait, timeout=RUN_TIMEOUT)
                finally:
                    os.close(w)
                if rc != 0:
                    failures.append(f"{cid} create: {err}")
                    watch.close()
                    continue
                pid = int(Path(pid_file).read_text())
                containers.append((cid, pid, watch, t_spawn))
                rc, err = run_quiet([*base, "start", cid], env=self.env, timeout=RUN_TIMEOUT)
                if rc != 0:
                    failures.append(f"{cid} start: {err}")
            t_started = time.monotonic_ns()
            up: list[float] = []
            last = t0
            deadline = time.monotonic() + RUN_TIMEOUT * 2
            for cid, _pid, watch, t_spawn in containers:
                if watch.wait_for(WAITING, deadline) and not watch.eof_ns:
                    up.append(ms(watch.marker_ns - t_spawn))
                    last = max(last, watch.marker_ns)
                else:
                    failures.append(f"{cid} never printed {WAITING!r}: {watch.buf[-200:]!r}")
            time.sleep(0.2)  # let every guest settle into hlt before reading memory
            alive = [(cid, pid) for cid, pid, _, _ in containers if os.path.exists(f"/proc/{pid}")]
            mem = [memory_kib(pid) for _, pid in alive]
            me = os.getpid()
            monitor_exes = {exe_of(pid) for _, pid in alive}
            parents = {ppid_of(pid) for _, pid in alive}
            pythons = [(pid, argv) for pid, argv in python_processes() if pid != me]
            # Other sessions may run urunc on this host at the same time: count ours (our
            # --root, or a process in one of our bundles' state) and report the rest apart.
            urunc_pythons = [(pid, argv) for pid, argv in pythons
                             if any(a == self.opts.urunc or a.endswith("/urunc") or "urunc.cli" in a
                                    for a in argv[:3])]
            ours = [(pid, argv) for pid, argv in urunc_pythons if self.root in argv]
            result = {
                "n": n,
                "failures": len(failures),
                "failure_messages": failures[:5],
                "running": len(alive),
                "create_start_all_ms": round(ms(t_started - t0), 2),
                "all_up_ms": round(ms(last - t0), 2),
                "per_instance_up_ms": summary(up) if up else {},
                "rss_kib": summary([m["rss"] for m in mem if "rss" in m]) if mem else {},
                "pss_kib": summary([m["pss"] for m in mem if "pss" in m]) if mem else {},
                "monitor_executables": sorted(monitor_exes),
                "monitor_parents_are_bench": parents <= {me},
                "python_processes_other": len(pythons),
                "urunc_python_processes": len(ours),
                "urunc_python_processes_other_roots": len(urunc_pythons) - len(ours),
                "urunc_python_argv": [argv for _, argv in urunc_pythons][:5],
            }
            for _cid, pid in alive:
                if cmdline_of(pid)[:1] != [self.floor_argv[0]]:
                    result["monitor_parents_are_bench"] = False
        finally:
            for cid, pid, watch, _ in containers:
                subprocess.run([*base, "kill", cid, "9"], capture_output=True, env=self.env, check=False)
                if reap(pid, 10) is None:
                    kill_quietly(pid)
                    reap(pid, 5)
                subprocess.run([*base, "delete", "--force", cid], capture_output=True, env=self.env, check=False)
                watch.close()
            reap_orphans()
        return result

    # -- teardown ---------------------------------------------------------------------------
    def cleanup(self) -> None:
        for cid in list_dir(self.root):
            subprocess.run([self.opts.urunc, "--root", self.root, "delete", "--force", cid],
                           capture_output=True, env=self.env, check=False)
        for cid in list_dir(self.runc_root):
            subprocess.run(["runc", "--root", self.runc_root, "delete", "--force", cid],
                           capture_output=True, check=False)
        reap_orphans()
        shutil.rmtree(self.work, ignore_errors=True)


def list_dir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []


PYTHON_ENTRY = "/usr/local/lib/urunc/urunc-py"  # where the C front end (`urunc`) hands commands


def interpreter_of(script: str) -> str:
    """The interpreter urunc's Python entry script runs on (its #! line)."""
    with open(script, "rb") as f:
        if f.read(4) == b"\x7fELF":
            script = PYTHON_ENTRY
    with open(script, "rb") as f:
        first = f.readline().decode().strip()
    if not first.startswith("#!"):
        raise BenchError(f"{script} is not a script with a #! line")
    return first[2:].split()[0]


# Named points in time, in order; a phase is the gap from the previous point.
PHASES = (
    ("create: front end, init process, interpreter", "create", "cli-start"),
    ("create: imports", "create", "command-imported"),
    ("create: spec load + unikernel detect", "create", "spec-loaded"),
    ("create: config load", "create", "config-loaded"),
    ("create: plan build", "create", "plan-built"),
    ("create: cgroup, init into its namespaces, record", "create", "init-placed"),
    ("create: pid file + state save", "create", "create-done"),
    ("create: exit", "bench", "created"),
    ("start: interpreter + urunc.cli import", "start", "cli-start"),
    ("start: command import", "start", "command-imported"),
    ("start: lock + load state + open fifo", "start", "start-fifo-opened"),
    ("init: wake up", "init", "init-released"),
    ("init: monitor argv", "init", "argv-built"),
    ("init: signals, fds, to execve", "init", "init-exec"),
    ("monitor: execve to first guest line", "bench", "first_line"),
)


def phases_of(run: dict[str, Any], ts_file: str) -> dict[str, float]:
    points: dict[tuple[str, str], int] = {("bench", "created"): run["created"],
                                          ("bench", "first_line"): run["first_line"]}
    # `create`'s work runs in the init process (the front end only relays its verdict),
    # so a point is create's or the init's by its name; only `start` is told by its PID.
    init_points = {name for _, proc, name in PHASES if proc == "init"}
    with open(ts_file) as f:
        for line in f:
            name, ns, pid = line.split()
            proc = "start" if int(pid) == run["start_pid"] else "init" if name in init_points else "create"
            points.setdefault((proc, name), int(ns))
    out: dict[str, float] = {}
    prev = run["t0"]
    for label, proc, name in PHASES:
        t = points.get((proc, name))
        if t is None:
            raise BenchError(f"timestamp {proc}:{name} missing from {ts_file}")
        if label.startswith("start: interpreter"):
            prev = run["created"]  # the bench spawns `start` right after `create` exits
        out[label] = round(ms(t - prev), 3)
        prev = t
    out["start: after execve, until start exits"] = round(ms(run["started"] - points[("init", "init-exec")]), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100, help="runs per contender (start path, commands)")
    p.add_argument("--ctr-runs", type=int, default=15, help="runs per contender through containerd")
    p.add_argument("--density", type=int, default=20, help="unikernels running at once")
    p.add_argument("--accel", choices=("tcg", "auto", "kvm"), default="tcg",
                   help="accelerator forced through a URUNC_CONFIG file (auto: no config file)")
    p.add_argument("--large-mib", type=int, default=300,
                   help="extra rootfs of the large Linux-guest image, MiB (quick: 40)")
    p.add_argument("--quick", action="store_true", help="tiny counts: under a minute")
    p.add_argument("--only", action="append", default=[], help="run only this section (repeatable)")
    p.add_argument("--urunc", default=URUNC, help="the installed runtime to measure")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    opts = p.parse_args(argv)
    if opts.quick:
        opts.runs, opts.ctr_runs, opts.density, opts.large_mib = 3, 2, 3, 40
    if os.geteuid() != 0:
        print("bench: needs root (containers, containerd)", file=sys.stderr)
        return 2
    become_subreaper()
    bench = Bench(opts)
    started = time.monotonic()
    results: dict[str, Any] = {}
    try:
        bench.setup()
        sections = (("start_path", bench.section_start_path), ("commands", bench.section_commands),
                    ("containerd", bench.section_containerd), ("density", bench.section_density),
                    ("large_rootfs", bench.section_large_rootfs), ("exec", bench.section_exec),
                    ("templates", bench.section_templates))
        for name, fn in sections:
            if opts.only and name not in opts.only:
                continue
            t = time.monotonic()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            results[name] = fn()
            print(f"bench: {name} done in {time.monotonic() - t:.1f}s", file=sys.stderr, flush=True)
    finally:
        bench.cleanup()
    results["meta"] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
        "accel_requested": opts.accel, "accel_used": sorted(bench.accel_seen),
        "urunc": opts.urunc, "interpreter": bench.interpreter,
        "qemu": subprocess.run([bench.floor_argv[0], "--version"], capture_output=True,
                               text=True, check=False).stdout.splitlines()[0],
        "runc": subprocess.run(["runc", "--version"], capture_output=True, text=True,
                               check=False).stdout.splitlines()[0],
        "runs": opts.runs, "ctr_runs": opts.ctr_runs, "density": opts.density, "quick": opts.quick,
        "duration_s": round(time.monotonic() - started, 1),
    }
    if opts.only:  # a partial run: its numbers on stdout, the report of a full run stays as it is
        print(json.dumps(results, indent=1))
        return 0
    results["targets"] = _report.targets(results)
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (opts.out / "results.md").write_text(_report.markdown(results))
    chart = _report.chart(results, opts.out / "chart.png")
    print(f"bench: wrote {opts.out}/results.json, results.md{', chart.png' if chart else ''} "
          f"in {results['meta']['duration_s']}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
