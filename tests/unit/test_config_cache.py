"""config.toml is parsed once per version of the file; the marshal cache never serves a stale one."""

from __future__ import annotations

import marshal
import os
from pathlib import Path

import pytest

from urunc import config


@pytest.fixture
def toml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text('[monitors.qemu]\ndefault_vcpus = 2\n')
    monkeypatch.setenv("URUNC_CONFIG", str(path))
    return path


def _vcpus(cache_dir: Path) -> int:
    return config.load(str(cache_dir)).monitor_int("qemu", "default_vcpus", 1, 1, 64)


def test_the_first_load_writes_the_cache_and_the_next_reads_it(toml: Path, tmp_path: Path) -> None:
    cache_dir = tmp_path / "root"
    assert _vcpus(cache_dir) == 2
    cache = cache_dir / config.CACHE_NAME
    key, data = marshal.loads(cache.read_bytes())
    assert key[0] == str(toml) and data == {"monitors": {"qemu": {"default_vcpus": 2}}}
    # Served from the cache: a planted value under the same key comes back (the file is not read).
    cache.write_bytes(marshal.dumps((key, {"monitors": {"qemu": {"default_vcpus": 7}}})))
    assert _vcpus(cache_dir) == 7


@pytest.mark.parametrize("change", ["rewrite", "replace", "touch"])
def test_any_change_to_the_file_is_seen(toml: Path, tmp_path: Path, change: str) -> None:
    cache_dir = tmp_path / "root"
    assert _vcpus(cache_dir) == 2
    if change == "rewrite":  # same size, new contents
        toml.write_text('[monitors.qemu]\ndefault_vcpus = 3\n')
    elif change == "replace":  # a new file renamed over it (editors, config management)
        new = toml.with_name("new.toml")
        new.write_text('[monitors.qemu]\ndefault_vcpus = 4\n')
        os.rename(new, toml)
    else:  # contents kept, times changed: parsed again, same answer
        os.utime(toml, ns=(1, 1))
    assert _vcpus(cache_dir) == {"rewrite": 3, "replace": 4, "touch": 2}[change]


@pytest.mark.parametrize("junk", [b"", b"\x00garbage", marshal.dumps(("not", "a", "pair"))])
def test_a_damaged_cache_is_ignored_and_rewritten(toml: Path, tmp_path: Path, junk: bytes) -> None:
    cache_dir = tmp_path / "root"
    cache_dir.mkdir()
    (cache_dir / config.CACHE_NAME).write_bytes(junk)
    assert _vcpus(cache_dir) == 2
    key, _data = marshal.loads((cache_dir / config.CACHE_NAME).read_bytes())
    assert key[0] == str(toml)


def test_no_file_means_defaults_and_no_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("URUNC_CONFIG", str(tmp_path / "absent.toml"))
    assert _vcpus(tmp_path / "root") == 1
    assert not (tmp_path / "root").exists()
