"""urunc-build against awkward inputs: special files, huge or non-UTF-8 Containerfiles, labels
naming files the image lacks, and signals or SIGKILL in the middle of a build.

The CLI cases drive the installed /usr/local/bin/urunc-build (packaging/install.sh), each with
a timeout and an address-space cap, so a hang or an unbounded read fails the test instead of
the machine.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from urunc.image import ImageBuildError, _layer, build_image
from urunc.image._containerfile import parse_containerfile

URUNC_BUILD = os.environ.get("URUNC_BUILD", "/usr/local/bin/urunc-build")
HEADER = "FROM scratch\nCOPY k /unikernel/k\n"
LABELS = "LABEL com.urunc.unikernel.unikernelType=unikraft com.urunc.unikernel.hypervisor=qemu"


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run_build(*args: str | Path, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    if not os.access(URUNC_BUILD, os.X_OK):
        pytest.skip(f"{URUNC_BUILD} is not installed (make install)")
    return subprocess.run([URUNC_BUILD, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, preexec_fn=_cap_memory, stdin=subprocess.DEVNULL)


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("urunc-build: "), result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


@pytest.fixture
def ctx(tmp_path: Path) -> Path:
    context = tmp_path / "ctx"
    (context / "boot").mkdir(parents=True)
    (context / "k").write_bytes(b"\x7fELF kernel")
    (context / "boot" / "initrd").write_bytes(b"initrd")
    return context


# --- the Containerfile itself -------------------------------------------------------------------

def test_a_fifo_as_containerfile_is_refused_at_once(ctx: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    began = time.monotonic()
    err = one_line_error(run_build("-f", fifo, "-t", "x:1", "-o", tmp_path / "x.tar", ctx, timeout=20))
    assert time.monotonic() - began < 10
    assert err == f"urunc-build: containerfile '{fifo}' is not a regular file\n"
    assert not (tmp_path / "x.tar").exists()


def test_dev_zero_as_containerfile_is_refused_before_any_read(ctx: Path, tmp_path: Path) -> None:
    err = one_line_error(run_build("-f", "/dev/zero", "-t", "x:1", "-o", tmp_path / "x.tar", ctx, timeout=20))
    assert err == "urunc-build: containerfile '/dev/zero' is not a regular file\n"


def test_a_containerfile_over_the_size_bound_is_refused(ctx: Path, tmp_path: Path) -> None:
    big = tmp_path / "Big"
    big.write_text("FROM scratch\n" + "# padding\n" * 120_000)  # 1.2 MB
    err = one_line_error(run_build("-f", big, "-t", "x:1", "-o", tmp_path / "x.tar", ctx))
    assert err == f"urunc-build: containerfile '{big}' is larger than {1 << 20} bytes\n"


def test_a_containerfile_that_is_not_utf8_is_one_line(ctx: Path, tmp_path: Path) -> None:
    bad = tmp_path / "Latin1"
    data = b"FROM scratch\nLABEL note=caf\xe9\n"
    bad.write_bytes(data)
    err = one_line_error(run_build("-f", bad, "-t", "x:1", "-o", tmp_path / "x.tar", ctx))
    assert err == f"urunc-build: containerfile '{bad}' is not utf-8 text (byte {data.index(0xE9)}: b'\\xe9')\n"


def test_a_symlinked_containerfile_is_still_read(ctx: Path, tmp_path: Path) -> None:
    (ctx / "Containerfile").write_text(HEADER)
    (tmp_path / "Dockerfile").symlink_to(ctx / "Containerfile")
    result = run_build("-f", tmp_path / "Dockerfile", "-t", "x:1", "-o", tmp_path / "x.tar", ctx)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "x.tar").is_file()


# --- COPY sources -------------------------------------------------------------------------------

@pytest.mark.parametrize("special", ["fifo", "dev"])
def test_a_special_file_as_copy_source_is_refused(ctx: Path, tmp_path: Path, special: str) -> None:
    if special == "fifo":
        os.mkfifo(ctx / "special")
    else:
        if os.geteuid() != 0:
            pytest.skip("mknod needs root")
        os.mknod(ctx / "special", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero's numbers
    (ctx / "Containerfile").write_text(HEADER + "COPY special /special\n")
    err = one_line_error(run_build("-t", "x:1", "-o", tmp_path / "x.tar", ctx, timeout=20))
    assert "unsupported file type in COPY" in err and str(ctx / "special") in err


def _swap_after_resolve(ctx: Path, make_special: object) -> str:
    """Resolve COPY k, replace k by something else, then write the layer: the error, if any."""
    recipe = parse_containerfile(HEADER)
    table = _layer.resolve_copies(recipe.copies, ctx)
    (ctx / "k").unlink()
    make_special(ctx / "k")  # type: ignore[operator]

    def too_slow(signum: int, frame: object) -> None:
        raise TimeoutError("write_layer blocked")

    old = signal.signal(signal.SIGALRM, too_slow)
    signal.setitimer(signal.ITIMER_REAL, 10)
    try:
        with open(os.devnull, "wb") as sink:
            _layer.write_layer(table.entries(), sink, 0)  # type: ignore[arg-type]
    except ImageBuildError as exc:
        return str(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    raise AssertionError("the swapped source was read")


def test_a_copy_source_swapped_for_a_fifo_after_resolution_does_not_block(ctx: Path) -> None:
    message = _swap_after_resolve(ctx, os.mkfifo)
    assert message == f"COPY source '{ctx / 'k'}' is not a regular file"


def test_a_copy_source_swapped_for_a_symlink_to_a_device_is_not_followed(ctx: Path) -> None:
    message = _swap_after_resolve(ctx, lambda p: p.symlink_to("/dev/zero"))
    assert message.startswith(f"cannot read COPY source '{ctx / 'k'}': ")


# --- labels naming files ------------------------------------------------------------------------

@pytest.mark.parametrize(("label", "value"), [
    ("binary", "/unikernel/missing.elf"),
    ("binary", "/unikernel"),                 # a directory
    ("binary", "/unikernel/k/x"),             # under a file
    ("binary", "/dangling"),                  # a symlink to nothing
    ("initrd", "/boot/nope"),
    ("block", "/disk.img"),
])
def test_a_label_naming_a_file_the_image_lacks_fails_the_build(ctx: Path, tmp_path: Path, label: str,
                                                               value: str) -> None:
    (ctx / "dangling").symlink_to("nowhere")
    binary = "" if label == "binary" else " com.urunc.unikernel.binary=/unikernel/k"
    (ctx / "Containerfile").write_text(
        HEADER + "COPY dangling /dangling\n" + f"{LABELS}{binary} com.urunc.unikernel.{label}={value}\n")
    with pytest.raises(ImageBuildError) as info:
        build_image(ctx / "Containerfile", ctx, "x:1", tmp_path / "x.tar")
    assert str(info.value) == (f"{ctx / 'Containerfile'}: label com.urunc.unikernel.{label} names "
                               f"'{value}', which is not a file in the image")
    assert not (tmp_path / "x.tar").exists()
    err = one_line_error(run_build("-t", "x:1", "-o", tmp_path / "x.tar", ctx))
    assert err == f"urunc-build: {info.value}\n"


@pytest.mark.parametrize("value", ["/unikernel/k", "unikernel/k", "/boot/../unikernel/./k", "/link",
                                   "/dirlink/k", "/abs", "/../../unikernel/k"])
def test_labels_naming_files_in_the_image_build_as_the_runtime_resolves_them(ctx: Path, tmp_path: Path,
                                                                              value: str) -> None:
    (ctx / "link").symlink_to("unikernel/k")
    (ctx / "dirlink").symlink_to("/unikernel")  # absolute: the image's root, as RESOLVE_IN_ROOT
    (ctx / "abs").symlink_to("/dirlink/../dirlink/k")
    (ctx / "Containerfile").write_text(
        HEADER + "COPY link dirlink abs /\nCOPY boot /boot/\n"
        + f"{LABELS} com.urunc.unikernel.binary={value} com.urunc.unikernel.initrd=/boot/initrd\n")
    assert build_image(ctx / "Containerfile", ctx, "x:1", tmp_path / "x.tar").output.is_file()


# --- signals and leftovers ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_context(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A context whose build takes seconds: 48 MiB that gzip cannot shrink."""
    context = tmp_path_factory.mktemp("big") / "ctx"
    context.mkdir()
    with open(context / "k", "wb") as f:
        for _ in range(48):
            f.write(os.urandom(1 << 20))
    (context / "Containerfile").write_text(HEADER)
    return context


def scratch_dirs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith(".urunc-build-"))


def start_and_catch_mid_build(context: Path, out: Path) -> tuple[subprocess.Popen[bytes], Path]:
    if not os.access(URUNC_BUILD, os.X_OK):
        pytest.skip(f"{URUNC_BUILD} is not installed (make install)")
    proc = subprocess.Popen([URUNC_BUILD, "-t", "big:1", "-o", str(out / "big.tar"), str(context)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        found = [d for d in scratch_dirs(out) if (d / "layer.tar").exists()]
        if found:
            return proc, found[0]
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no scratch directory appeared"
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_mid_build_removes_the_scratch_directory(big_context: Path, tmp_path: Path,
                                                          sig: signal.Signals) -> None:
    proc, scratch = start_and_catch_mid_build(big_context, tmp_path)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == -sig, (proc.returncode, err)  # it still ends by the signal
    assert b"Traceback" not in err
    assert not scratch.exists()
    assert scratch_dirs(tmp_path) == [] and not (tmp_path / "big.tar").exists()


def _marker(pid: int, start: str, boot: str | None = None, pidns: str | None = None) -> str:
    boot = boot if boot is not None else Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    pidns = pidns if pidns is not None else os.readlink("/proc/self/ns/pid")
    return f"pid={pid} start={start} boot={boot} pidns={pidns}\n"


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]


@pytest.fixture
def dead_pid() -> Iterator[tuple[int, str]]:
    """The pid and start time of a process that has exited and been reaped."""
    proc = subprocess.Popen(["sleep", "30"])
    start = _start_time(proc.pid)
    proc.kill()
    proc.wait()
    yield proc.pid, start


def _scratch(out: Path, name: str, marker: str | None) -> Path:
    d = out / f".urunc-build-{name}"
    d.mkdir()
    (d / "layer.tar").write_bytes(b"x" * 4096)
    if marker is not None:
        (d / "owner").write_text(marker)
    return d


def test_the_next_build_removes_provable_leftovers_only(ctx: Path, tmp_path: Path,
                                                        dead_pid: tuple[int, str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    pid, start = dead_pid
    me = os.getpid()
    gone = _scratch(out, "dead", _marker(pid, start))
    rebooted = _scratch(out, "rebooted", _marker(me, _start_time(me), boot="0" * 8 + "-0000-0000-0000-" + "0" * 12))
    live = _scratch(out, "live", _marker(me, _start_time(me)))
    reused = _scratch(out, "reused", _marker(me, str(int(_start_time(me)) + 1)))  # our pid, not our start
    other_ns = _scratch(out, "otherns", _marker(pid, start, pidns="pid:[1]"))
    unmarked = _scratch(out, "unmarked", None)
    garbled = _scratch(out, "garbled", "pid=x start=\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "owner").write_text(_marker(pid, start))
    (out / ".urunc-build-link").symlink_to(elsewhere)
    not_ours = _scratch(out.parent, "beside", _marker(pid, start))  # not in the output's directory
    (ctx / "Containerfile").write_text(HEADER)
    result = run_build("-t", "x:1", "-o", out / "x.tar", ctx)
    assert result.returncode == 0, result.stderr
    assert not gone.exists() and not rebooted.exists() and not reused.exists()
    for kept in (live, other_ns, unmarked, garbled, not_ours):
        assert (kept / "layer.tar").exists(), kept
    assert (out / ".urunc-build-link").is_symlink() and (elsewhere / "owner").exists()
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".urunc-build-live", ".urunc-build-otherns", ".urunc-build-unmarked", ".urunc-build-garbled",
         ".urunc-build-link", "x.tar"])


def test_a_build_killed_by_sigkill_is_cleaned_up_by_the_next_one(big_context: Path, tmp_path: Path,
                                                                 ctx: Path) -> None:
    proc, scratch = start_and_catch_mid_build(big_context, tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    assert scratch.exists()  # nothing can clean up after SIGKILL...
    (ctx / "Containerfile").write_text(HEADER)
    result = run_build("-t", "x:1", "-o", tmp_path / "x.tar", ctx)
    assert result.returncode == 0, result.stderr
    assert not scratch.exists()  # ...but the next build into the same directory does
    assert scratch_dirs(tmp_path) == []
