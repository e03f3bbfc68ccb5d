"""cgroups, user and seccomp of a unikernel container as containerd sets them (issue 6)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.helpers.containerd import Containerd

RUNTIME = "io.containerd.urunc.v2"


def _task_pid(containerd: Containerd, cid: str) -> int:
    row = next(line.split() for line in containerd.ctr("task", "ls").stdout.splitlines()
               if line.startswith(cid + " "))
    assert row[2] == "RUNNING", row
    return int(row[1])


def _status(pid: int) -> dict[str, str]:
    """/proc/PID/status once QEMU has installed its sandbox (a few ms after exec), or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        with open(f"/proc/{pid}/status") as f:
            status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
        if status.get("Seccomp") == "2" or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def _stop(containerd: Containerd, cid: str) -> None:
    containerd.ctr("task", "kill", "-s", "SIGKILL", cid, check=False)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if containerd.ctr("task", "delete", cid, check=False).returncode == 0:
            break
        time.sleep(0.1)
    containerd.ctr("container", "rm", cid, check=False)


def test_metrics_report_the_vm_usage_under_its_memory_limit(containerd: Containerd, hello_image: str,
                                                            unique_id: str) -> None:
    containerd.ctr("run", "-d", "--runtime", RUNTIME, "--memory-limit", str(96 * 1024 * 1024),
                   hello_image, unique_id, "hello", "wait", timeout=120)
    try:
        pid = _task_pid(containerd, unique_id)
        limit = (96 + 64 + 5) * 1024 * 1024
        # `ctr run -d` returns once the task is started, when the monitor may still be the
        # init or a QEMU that has not touched its memory yet: wait for what is measured.
        deadline = time.monotonic() + 60
        while True:
            metrics = containerd.ctr("task", "metrics", unique_id).stdout
            values = dict(line.split(None, 1) for line in metrics.splitlines()[3:] if line.strip())
            usage = int(values["memory.usage_in_bytes"])
            if usage > 4 * 1024 * 1024:  # QEMU and guest memory, not a stub
                break
            assert time.monotonic() < deadline, f"memory usage still {usage} bytes after 60 s"
            time.sleep(0.2)
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        # A 96 MiB limit gives a 96 MiB guest; its cgroup adds the monitor's overhead.
        assert "-m\x0096\x00" in Path(f"/proc/{pid}/cmdline").read_text()
        assert int(values["memory.limit_in_bytes"]) == limit
        assert usage < limit
        assert int(values["pids.current"]) >= 1
    finally:
        _stop(containerd, unique_id)


def test_seccomp_from_ctr_reaches_the_monitor(containerd: Containerd, hello_image: str, unique_id: str) -> None:
    containerd.ctr("run", "-d", "--runtime", RUNTIME, "--seccomp", hello_image, unique_id, "hello", "wait",
                   timeout=120)
    try:
        pid = _task_pid(containerd, unique_id)
        assert os.readlink(f"/proc/{pid}/exe").endswith("qemu-system-x86_64")
        status = _status(pid)
        assert status["Seccomp"] == "2"
        assert status["NoNewPrivs"] == "1"
    finally:
        _stop(containerd, unique_id)
