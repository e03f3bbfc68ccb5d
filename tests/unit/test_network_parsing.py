"""Pure parts of urunc.host.network: tap naming, resolv.conf, the resources record."""

from __future__ import annotations

import json
import os
import string
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from urunc.host import network, resources


@given(st.text(min_size=1, max_size=128))
def test_tap_name_is_a_valid_interface_name(container_id: str) -> None:
    name = network.tap_name(container_id)
    assert len(name) <= 15
    assert name.startswith("tap")
    assert set(name) <= set(string.ascii_lowercase + string.digits)
    assert network.tap_name(container_id) == name


def test_tap_names_differ_between_containers() -> None:
    names = {network.tap_name(f"container-{i}") for i in range(2000)}
    assert len(names) == 2000


@pytest.mark.parametrize(
    ("text", "dns"),
    [
        ("nameserver 10.0.0.53\n", "10.0.0.53"),
        ("# nameserver 1.1.1.1\nsearch x\nnameserver 9.9.9.9\nnameserver 8.8.8.8\n", "9.9.9.9"),
        ("nameserver fd00::1\nnameserver 192.168.1.1\n", "192.168.1.1"),
        ("  nameserver\t172.16.0.1  # office\n", "172.16.0.1"),
        ("nameserver 300.1.1.1\nnameserver 1.2.3\n", ""),
        ("nameservers 1.1.1.1\n", ""),
        ("", ""),
    ],
)
def test_first_ipv4_nameserver(text: str, dns: str) -> None:
    assert network.parse_resolv_conf(text) == dns


def test_resolv_conf_from_the_last_bind_mount_wins(tmp_path: Path) -> None:
    config = {"mounts": [
        {"destination": "/etc/resolv.conf", "source": "/first/resolv.conf"},
        {"destination": "/etc/hosts", "source": "/h"},
        {"destination": "/etc/resolv.conf", "source": "/second/resolv.conf"},
    ]}
    assert network.resolv_conf_source(config, str(tmp_path)) == "/second/resolv.conf"


def test_relative_resolv_conf_mount_source_is_ignored(tmp_path: Path) -> None:
    config = {"mounts": [{"destination": "/etc/resolv.conf", "source": "relative/resolv.conf"}]}
    assert network.resolv_conf_source(config, str(tmp_path)) is None


def test_resolv_conf_symlink_in_the_rootfs_stays_inside_it(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (rootfs / "run").mkdir()
    (rootfs / "run" / "resolv.conf").write_text("nameserver 10.1.2.3\n")
    (rootfs / "etc" / "resolv.conf").symlink_to("/run/resolv.conf")
    assert network.resolv_conf_source({}, str(rootfs)) == str(rootfs / "run" / "resolv.conf")
    (rootfs / "etc" / "resolv.conf").unlink()
    (rootfs / "etc" / "resolv.conf").symlink_to("../../../../etc/resolv.conf")
    assert network.resolv_conf_source({}, str(rootfs)) is None


def _plan(tmp_path: Path, **changes: object) -> object:
    from urunc.unikernel.plan import Plan

    values: dict[str, object] = {name: "" for name in Plan.__slots__}
    values.update(container_id="c", bundle=str(tmp_path), rootfs=str(tmp_path / "rootfs"),
                  state_dir=str(tmp_path / "state"), netns="none", args=(), env=(), files={})
    values.update(changes)
    return Plan(**values)


def test_container_dns_reads_the_mounted_resolv_conf(tmp_path: Path) -> None:
    mounted = tmp_path / "resolv.conf"
    mounted.write_text("nameserver 10.213.0.53\n")
    (tmp_path / "rootfs" / "etc").mkdir(parents=True)
    (tmp_path / "rootfs" / "etc" / "resolv.conf").write_text("nameserver 10.9.9.9\n")
    (tmp_path / "config.json").write_text(json.dumps(
        {"mounts": [{"destination": "/etc/resolv.conf", "type": "bind", "source": str(mounted)}]}))
    assert network.container_dns(_plan(tmp_path)) == "10.213.0.53"  # type: ignore[arg-type]
    (tmp_path / "config.json").write_text("{}")
    assert network.container_dns(_plan(tmp_path)) == "10.9.9.9"  # type: ignore[arg-type]


def test_host_networking_gives_no_network(tmp_path: Path) -> None:
    assert network.setup(_plan(tmp_path, netns="none")) is None  # type: ignore[arg-type]
    assert not (tmp_path / "state").exists()


def test_record_appends_then_rewrites_in_place_keeping_others(tmp_path: Path) -> None:
    other = {"kind": "file", "path": "/x"}
    (tmp_path / resources.RESOURCES_FILE).write_text(json.dumps([other]))
    index = resources.record(str(tmp_path), {"kind": "tap", "ifindex": 0}, None)
    assert index == 1
    resources.record(str(tmp_path), {"kind": "tap", "ifindex": 7}, index)
    assert json.loads((tmp_path / resources.RESOURCES_FILE).read_text()) == [other, {"kind": "tap", "ifindex": 7}]
    assert os.listdir(tmp_path) == [resources.RESOURCES_FILE]  # no temporary file left


def test_release_of_a_vanished_namespace_is_a_no_op(tmp_path: Path) -> None:
    before = sorted(os.listdir("/sys/class/net"))
    assert network.release({"kind": "tap", "netns": str(tmp_path / "gone"), "netns_id": [1, 2],
                            "name": "tap0", "ifindex": 5, "eth": "eth0", "eth_ifindex": 2,
                            "eth_ingress": True}) is None
    assert sorted(os.listdir("/sys/class/net")) == before  # nothing in this namespace touched
    assert list(tmp_path.iterdir()) == []



@pytest.mark.parametrize("hostile", ["fifo-resolv", "fifo-config", "zero-resolv"])
def test_container_dns_never_blocks_or_reads_without_bound(tmp_path: Path, hostile: str) -> None:
    """resolv.conf and config.json are outside input read at start: a FIFO must not hang it."""
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    (tmp_path / "config.json").write_text('{"mounts": []}')
    if hostile == "fifo-resolv":
        os.mkfifo(rootfs / "etc" / "resolv.conf")
    elif hostile == "zero-resolv":
        (rootfs / "etc" / "resolv.conf").symlink_to("/dev/zero")
    else:
        (tmp_path / "config.json").unlink()
        os.mkfifo(tmp_path / "config.json")
        (rootfs / "etc" / "resolv.conf").write_text("nameserver 10.0.0.53\n")
    plan = _plan(tmp_path)
    import threading

    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(network.container_dns(plan)), daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "container_dns blocked"
    assert result == ["10.0.0.53" if hostile == "fifo-config" else ""]
