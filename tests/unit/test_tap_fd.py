"""A monitor that runs as the container's user attaches to the tap through an inherited fd."""

from __future__ import annotations

from tests.unit._plans import NET, plan
from urunc import guests, monitors


def _netdev(argv: list[str]) -> str:
    return argv[argv.index("-netdev") + 1]


def test_root_monitor_opens_the_tap_by_name() -> None:
    argv = monitors.get("qemu").argv(plan(), guests.get("unikraft"), NET)
    assert _netdev(argv) == "tap,id=n0,ifname=tap-c1,script=no,downscript=no,vhost=off"


def test_unprivileged_monitor_gets_the_tap_fd_the_init_opened() -> None:
    argv = monitors.get("qemu").argv(plan(uid=65534, gid=65534, files={"tap_fd": "7"}), guests.get("unikraft"), NET)
    assert _netdev(argv) == "tap,id=n0,fd=7,vhost=off"
    assert not any("ifname=" in a for a in argv)


def test_unprivileged_solo5_tender_gets_the_tap_fd() -> None:
    p = plan(guest="solo5", monitor="hvt", monitor_path="/usr/local/bin/solo5-hvt", accel="kvm", uid=65534,
             gid=65534, devices={"net": "service0"}, files={"tap_fd": "9"})
    argv = monitors.get("hvt").argv(p, guests.get("solo5"), NET)
    assert "--net:service0=@9" in argv and not any("=tap-c1" in a for a in argv)
