"""_files.read_regular: every outside file is read only when it is a regular file, bounded before the read."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from urunc._files import open_regular, read_regular


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100_000)
    assert read_regular(str(path), 100_000) == b"x" * 100_000
    (tmp_path / "empty").write_bytes(b"")
    assert read_regular(str(tmp_path / "empty"), 10) == b""


def test_a_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a plain open would block for ever
    started = time.monotonic()
    with pytest.raises(OSError, match="not a regular file") as caught:
        read_regular(str(fifo), 1024)
    assert caught.value.errno == errno.EINVAL and caught.value.filename == str(fifo)
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null", "/dev/urandom"])
def test_a_device_is_refused_before_anything_is_read(device: str) -> None:
    with pytest.raises(OSError, match="not a regular file"):
        read_regular(device, 1 << 30)


def test_a_file_larger_than_the_bound_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(1 << 40)  # sparse: reading it would take for ever
    started = time.monotonic()
    with pytest.raises(OSError, match=f"larger than {1 << 20} bytes") as caught:
        read_regular(str(big), 1 << 20)
    assert caught.value.errno == errno.EFBIG
    assert time.monotonic() - started < 1
    exact = tmp_path / "exact"
    exact.write_bytes(b"y" * 1024)
    assert read_regular(str(exact), 1024) == b"y" * 1024
    with pytest.raises(OSError, match="larger than 1023 bytes"):
        read_regular(str(exact), 1023)


def test_nofollow_refuses_a_symlink_as_the_last_component(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.write_text("secret")
    link = tmp_path / "link"
    link.symlink_to(target)
    assert read_regular(str(link), 100) == b"secret"  # followed by default (a bundle's config.json)
    with pytest.raises(OSError, match="a symbolic link"):
        read_regular(str(link), 100, nofollow=True)


def test_a_directory_is_refused_as_one(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        read_regular(str(tmp_path), 100)
    with pytest.raises(IsADirectoryError):
        open_regular(str(tmp_path))


def test_no_descriptor_is_left_open(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "f").write_bytes(b"abc")
    before = sorted(os.listdir("/proc/self/fd"))
    for path in (fifo, tmp_path, Path("/dev/zero"), tmp_path / "f"):
        try:
            read_regular(str(path), 1)
        except OSError:
            pass
    assert sorted(os.listdir("/proc/self/fd")) == before
