"""Hostile images and bad input: every case fails `create` cleanly.

Each case writes a bundle of the sample guest, breaks one thing, and runs the
installed `urunc --root <tmp> create`. It must exit non-zero with exactly one
line on stderr starting with `urunc: `, and leave nothing behind: no state
dir, no process or mount naming the container, no cgroup, no new network link.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers.bundles import URUNC, cgroups_named, hello_bundle, leftovers
from tests.helpers.procs import processes_naming

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "com.urunc.unikernel."


def b64(text: str | bytes) -> str:
    return base64.b64encode(text.encode() if isinstance(text, str) else text).decode()


def spec_of(bundle: Path) -> dict:
    return json.loads((bundle / "config.json").read_text())


def edit_spec(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        spec = spec_of(bundle)
        fn(spec)
        (bundle / "config.json").write_text(json.dumps(spec))
    return apply


def annotate(**values: str) -> Callable[[Path], None]:
    return edit_spec(lambda s: s["annotations"].update({PREFIX + k: v for k, v in values.items()}))


def resources(res: dict) -> Callable[[Path], None]:
    return edit_spec(lambda s: s["linux"].__setitem__("resources", res))


def urunc_json(content: bytes | dict, annotations: bool = False) -> Callable[[Path], None]:
    """Move the unikernel settings into /urunc.json (or keep spec annotations too)."""
    def apply(bundle: Path) -> None:
        if not annotations:
            edit_spec(lambda s: s.__setitem__("annotations", {}))(bundle)
        data = content if isinstance(content, bytes) else json.dumps(content).encode()
        (bundle / "rootfs" / "urunc.json").write_bytes(data)
    return apply


GOOD_JSON = {PREFIX + "unikernelType": b64("unikraft"), PREFIX + "hypervisor": b64("qemu")}


def kernel_as(kind: str) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        k = bundle / "rootfs" / "unikernel" / "hello.elf"
        k.unlink()
        if kind == "dir":
            k.mkdir()
        elif kind == "rel-escape":
            k.symlink_to("../../../../../../../../etc/passwd")
        elif kind == "abs-outside":
            k.symlink_to("/etc/hostname")  # read as <rootfs>/etc/hostname: absent there
        elif kind == "loop":
            k.symlink_to("hello.elf")
        elif kind == "huge":
            with open(k, "wb") as f:
                f.truncate(1024 * 1024 * 1024 + 1)  # sparse: costs no disk
        elif kind == "fifo":
            os.mkfifo(k)
    return apply


def write_config(text: str) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        (bundle / "config.json").write_text(text)
    return apply


def remove(rel: str) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        p = bundle / rel
        if p.is_dir():
            import shutil

            shutil.rmtree(p)
        else:
            p.unlink()
    return apply


def urunc_toml(text: str) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        (bundle / "urunc.toml").write_text(text)
    return apply


def special(rel: str, kind: str) -> Callable[[Path], None]:
    """REL in the bundle as a FIFO, or as a symlink to a device (a read that never ends)."""
    def apply(bundle: Path) -> None:
        p = bundle / rel
        if p.exists() or p.is_symlink():
            p.unlink()
        if kind == "fifo":
            os.mkfifo(p)
        else:
            p.symlink_to(kind)
    return apply


def solo5_kernel(phoff: int, note_offset: int | None = None) -> Callable[[Path], None]:
    """A Solo5 guest on solo5-spt whose ELF names an offset past any file (>= 2**63)."""
    import struct

    def apply(bundle: Path) -> None:
        header = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)          # ELFCLASS64, little endian
        header += struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0, phoff, 0, 0, 64, 56, 1, 0, 0, 0)
        note = struct.pack("<IIQQQQQQ", 4, 4, note_offset or 0, 0, 0, 100, 100, 8)  # one PT_NOTE
        (bundle / "rootfs" / "unikernel" / "hello.elf").write_bytes(header + note + bytes(64))
        annotate(unikernelType="solo5", hypervisor="spt")(bundle)
    return apply


def both(*fns: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(bundle: Path) -> None:
        for fn in fns:
            fn(bundle)
    return apply


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    # annotations
    "unknown-guest-type": (annotate(unikernelType="nosuch"), "unknown guest type"),
    "unknown-monitor": (annotate(hypervisor="nosuch"), "unknown monitor"),
    "unsupported-pair": (annotate(hypervisor="hvt"), "does not run on monitor"),
    "no-binary": (edit_spec(lambda s: s["annotations"].pop(PREFIX + "binary")), "binary"),
    "no-type": (edit_spec(lambda s: s["annotations"].pop(PREFIX + "unikernelType")), "unikerneltype"),
    "nul-in-annotation": (annotate(binary="/unikernel/hello.elf\0x"), "nul"),
    "huge-annotation": (annotate(cmdline="a" * 70000), "longer than"),
    "non-string-annotation": (edit_spec(lambda s: s["annotations"].__setitem__(PREFIX + "binary", 7)),
                              "must be a string"),
    "unbalanced-cmdline": (both(edit_spec(lambda s: s["process"].__setitem__("args", [])),
                                annotate(cmdline='hello "unterminated')), "cmdline"),
    "shell-in-binary": (annotate(binary="/unikernel/hello.elf; touch /tmp/urunc-pwned"), "not found"),
    "block-on-initrd-only-guest": (annotate(block="/unikernel/hello.elf"), "no block device"),
    # urunc.json
    "urunc-json-bad-json": (urunc_json(b"{not json"), "malformed urunc.json"),
    "urunc-json-bad-base64": (urunc_json({**GOOD_JSON, PREFIX + "binary": "!!!notbase64"}), "base64"),
    "urunc-json-bad-utf8": (urunc_json({**GOOD_JSON, PREFIX + "binary": b64(b"\xff\xfe")}), "base64"),
    "urunc-json-not-object": (urunc_json(b'["a", "b"]'), "not a json object"),
    "urunc-json-huge": (urunc_json(b'{"x": "' + b"a" * (1024 * 1024 + 10) + b'"}'), "larger than"),
    "urunc-json-non-string": (urunc_json({**GOOD_JSON, PREFIX + "binary": 12}), "not a string"),
    "urunc-json-unknown-keys-ignored": (
        urunc_json({**GOOD_JSON, PREFIX + "binary": b64("/nope"), PREFIX + "evil": "$(reboot)",
                    "other.key": 5}), "kernel /nope not found"),
    "urunc-json-symlink-escape": (
        both(urunc_json(b"{}"), remove("rootfs/urunc.json"),
             lambda b: (b / "rootfs" / "urunc.json").symlink_to("../../../../../../etc/passwd")),
        "escapes the rootfs"),
    # config.json
    "config-missing": (remove("config.json"), "missing config.json"),
    "config-malformed": (write_config("{\"ociVersion\": "), "malformed"),
    "config-not-object": (write_config("[1, 2]"), "not a json object"),
    "config-args-wrong-type": (edit_spec(lambda s: s["process"].__setitem__("args", "hello")),
                               "process.args"),
    "config-memory-negative": (resources({"memory": {"limit": -5}}), "memory.limit"),
    "config-memory-huge": (resources({"memory": {"limit": 2**70}}), "memory.limit"),
    "config-memory-tiny": (resources({"memory": {"limit": 1024 * 1024}}), "below"),
    "config-bad-cpuset": (resources({"cpu": {"cpus": "a-b"}}), "cpuset"),
    "config-bad-pids": (resources({"pids": {"limit": "many"}}), "pids.limit"),
    "config-new-user-namespace": (edit_spec(lambda s: s["linux"]["namespaces"].append({"type": "user"})),
                                  "user namespaces are not supported"),
    "config-unknown-namespace": (edit_spec(lambda s: s["linux"]["namespaces"].append({"type": "bogus"})),
                                 "unknown namespace type"),
    "config-root-missing": (remove("rootfs"), "not a directory"),
    "config-root-wrong-type": (edit_spec(lambda s: s.__setitem__("root", {"path": 5})), "root.path"),
    "config-uid-negative": (edit_spec(lambda s: s["process"]["user"].__setitem__("uid", -1)), "uid"),
    "config-cgroups-path-escape": (edit_spec(lambda s: s["linux"].__setitem__("cgroupsPath", "/../../x")),
                                   "cgroupspath"),
    "config-terminal-no-socket": (edit_spec(lambda s: s["process"].__setitem__("terminal", True)),
                                  "console-socket"),
    "config-too-many-args": (edit_spec(lambda s: s["process"].__setitem__("args", ["a"] * 5000)),
                             "more than"),
    # paths
    "kernel-missing": (remove("rootfs/unikernel/hello.elf"), "not found"),
    "kernel-is-dir": (kernel_as("dir"), "not a regular file"),
    "kernel-is-fifo": (kernel_as("fifo"), "not a regular file"),
    "kernel-dotdot-escape": (annotate(binary="/unikernel/../../../etc/passwd"), "escapes the rootfs"),
    "kernel-symlink-relative-escape": (kernel_as("rel-escape"), "escapes the rootfs"),
    "kernel-symlink-absolute-stays-inside": (kernel_as("abs-outside"), "not found"),
    "kernel-symlink-loop": (kernel_as("loop"), "too many levels"),
    "kernel-too-large": (kernel_as("huge"), "larger than"),
    # special files and unbounded input (issue 12, items 3-5): refused before they are read
    "config-json-fifo": (special("config.json", "fifo"), "config.json: not a regular file"),
    "config-json-dev-zero": (special("config.json", "/dev/zero"), "config.json: not a regular file"),
    "config-json-nested": (write_config('{"a":' * 100000 + "1" + "}" * 100000), "nested too deeply"),
    "urunc-json-fifo": (both(urunc_json(GOOD_JSON), special("rootfs/urunc.json", "fifo")),
                        "cannot read urunc.json: not a regular file"),
    "urunc-json-nested": (urunc_json(b'{"a":' * 100000 + b"1" + b"}" * 100000), "nested too deeply"),
    "config-toml-fifo": (special("urunc.toml", "fifo"), "urunc.toml: not a regular file"),
    "config-toml-dev-zero": (special("urunc.toml", "/dev/zero"), "urunc.toml: not a regular file"),
    "config-one-mib-argument": (edit_spec(lambda s: s["process"].__setitem__("args", ["hello", "a" * (1 << 20)])),
                                "more than the 126976 one qemu argument can take"),
    "config-args-too-long-together": (
        edit_spec(lambda s: s["process"].__setitem__("args", ["hello"] + ["a" * 1000] * 130)),
        "process.args and process.env make a guest command line of"),
    "solo5-phdr-offset-beyond-2-63": (solo5_kernel(phoff=2**63), "program header table at offset 9223372036854775808"),
    "solo5-note-offset-beyond-2-63": (solo5_kernel(phoff=64, note_offset=2**64 - 1),
                                      "note at offset 18446744073709551615"),
    # host configuration
    "monitor-binary-missing": (urunc_toml('[monitors.qemu]\npath = "/nonexistent/qemu"\n'),
                               "not executable"),
    "config-toml-malformed": (urunc_toml("[monitors.qemu\n"), "malformed"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_in_one_line_and_leaves_nothing(case: str, tmp_path: Path) -> None:
    mutate, expected = CASES[case]
    container_id = f"bad-{case}-{os.getpid()}"
    bundle = hello_bundle(tmp_path / "bundle", args=("hello",))
    edit_spec(lambda s: s["linux"].__setitem__("cgroupsPath", f"/urunc-bad/{container_id}"))(bundle)
    mutate(bundle)
    root = tmp_path / "state"
    links_before = set(os.listdir("/sys/class/net"))
    env = dict(os.environ)
    toml = bundle / "urunc.toml"
    env["URUNC_CONFIG"] = str(toml) if toml.exists() else str(tmp_path / "no-config.toml")
    proc = subprocess.run([URUNC, "--root", str(root), "create", "--bundle", str(bundle), container_id],
                          capture_output=True, text=True, timeout=60, cwd=bundle, env=env,
                          stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("urunc: "), proc.stderr
    assert expected in lines[0].lower(), lines[0]
    assert len(lines[0]) < 600, lines[0]
    assert_left_nothing(root, container_id, links_before)


def assert_left_nothing(root: Path, container_id: str, links_before: set[str]) -> None:
    assert leftovers(root) == []
    assert processes_naming(container_id, zombies=True) == []
    with open("/proc/self/mountinfo") as f:
        assert container_id not in f.read()
    assert cgroups_named(container_id) == []
    assert not any(p.is_dir() for p in CGROUP_ROOT.glob("*/urunc-bad"))
    assert set(os.listdir("/sys/class/net")) - links_before == set()
    assert not Path("/tmp/urunc-pwned").exists()


def test_a_pid_file_that_cannot_be_written_fails_at_once_and_leaves_nothing(tmp_path: Path) -> None:
    # The last step of create, after the init joined its cgroup and namespaces: undoing
    # it must take the cgroup too (a cgroup with a process in it cannot be removed).
    container_id = f"bad-pid-file-{os.getpid()}"
    bundle = hello_bundle(tmp_path / "bundle", args=("hello",))
    edit_spec(lambda s: s["linux"].__setitem__("cgroupsPath", f"/urunc-bad/{container_id}"))(bundle)
    root = tmp_path / "state"
    links_before = set(os.listdir("/sys/class/net"))
    started = time.monotonic()
    proc = subprocess.run([URUNC, "--root", str(root), "create", "--bundle", str(bundle),
                           "--pid-file", str(tmp_path / "missing-dir" / "pid"), container_id],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"urunc: cannot create container {container_id}: No such file or "
                                        f"directory ({tmp_path / 'missing-dir' / 'pid'}.urunc-tmp)"]
    assert time.monotonic() - started < 1.5  # no wait for a busy cgroup
    assert_left_nothing(root, container_id, links_before)


def test_there_are_at_least_30_cases() -> None:
    assert len(CASES) >= 30
