"""Golden argv for every supported guest × monitor pair (Linux has its own tests).

Each row pins the exact monitor argv (and, for Firecracker, the exact config
file) from a Plan and an optional network; nothing boots.
"""

from __future__ import annotations

import json
import os

import pytest
from _plans import NET, plan

from urunc import guests, monitors

QEMU = "/usr/bin/qemu-system-x86_64"
QEMU_HEAD = [QEMU, "-name", "urunc-c1", "-nodefaults", "-no-user-config", "-display", "none",
             "-serial", "stdio", "-no-reboot", "-accel", "tcg", "-M", "pc"]
K = "/b/rootfs/unikernel/app.elf"
INITRD = "/b/rootfs/unikernel/initrd.cpio"
DISK = "/b/rootfs/disk.img"
QNET = ["-netdev", "tap,id=n0,ifname=tap-c1,script=no,downscript=no,vhost=off",
        "-device", "virtio-net-pci,netdev=n0,mac=02:42:0a:d5:00:05"]
QDISK = ["-drive", f"file={DISK},if=none,id=d0,format=raw", "-device", "virtio-blk-pci,drive=d0"]
QMP = ["-qmp", "unix:/run/urunc/c1/qmp.sock,server=on,wait=off"]
HVT = "/usr/local/bin/solo5-hvt"
SPT = "/usr/local/bin/solo5-spt"

# (id, plan overrides, with network, expected argv)
ROWS = [
    ("unikraft-qemu", dict(), False,
     QEMU_HEAD + ["-m", "64", "-smp", "1", "-kernel", K,
                  "-append", "env.vars=[ PATH=/bin A=b ] -- app -v"] + QMP),
    ("unikraft-qemu-net", dict(), True,
     QEMU_HEAD + ["-m", "64", "-smp", "1", "-kernel", K,
                  "-append", "netdev.ip=10.213.0.5/24:10.213.0.1:10.213.0.1 env.vars=[ PATH=/bin A=b ] -- app -v"]
     + QNET + QMP),
    ("unikraft-qemu-initrd", dict(initrd=INITRD, env=()), False,
     QEMU_HEAD + ["-m", "64", "-smp", "1", "-kernel", K,
                  "-append", 'vfs.fstab=[ "initrd0:/:extract:::" ] -- app -v', "-initrd", INITRD] + QMP),
    ("unikraft-qemu-0.15-net-initrd", dict(version="0.15.0", initrd=INITRD, memory_mib=128, vcpus=2), True,
     QEMU_HEAD + ["-m", "128", "-smp", "2", "-kernel", K,
                  "-append", "netdev.ipv4_addr=10.213.0.5 netdev.ipv4_gw_addr=10.213.0.1 "
                  "netdev.ipv4_subnet_mask=255.255.255.0 vfs.rootfs=initrd -- app -v",
                  "-initrd", INITRD] + QNET + QMP),
    ("solo5-hvt", dict(guest="solo5", monitor="hvt", monitor_path=HVT, accel="kvm",
                       devices={"net": "service"}), False,
     [HVT, "--mem=64", "--", K, "app", "-v"]),
    ("solo5-hvt-net", dict(guest="solo5", monitor="hvt", monitor_path=HVT, accel="kvm",
                           devices={"net": "service0"}), True,
     [HVT, "--mem=64", "--net:service0=tap-c1", "--net-mac:service0=02:42:0a:d5:00:05", "--", K, "app", "-v"]),
    ("solo5-spt-net-block", dict(guest="solo5", monitor="spt", monitor_path=SPT, accel="",
                                 block=DISK, devices={"net": "service0", "block": "storage"}), True,
     [SPT, "--mem=64", "--net:service0=tap-c1", "--net-mac:service0=02:42:0a:d5:00:05",
      f"--block:storage={DISK}", "--", K, "app", "-v"]),
    ("solo5-spt-no-net-device", dict(guest="solo5", monitor="spt", monitor_path=SPT, accel=""), True,
     [SPT, "--mem=64", "--", K, "app", "-v"]),
    ("mirage-hvt-net-named-block", dict(guest="mirage", monitor="hvt", monitor_path=HVT, accel="kvm",
                                        block=DISK, devices={"net": "service0", "block": "storage"}), True,
     [HVT, "--mem=64", "--net:service0=tap-c1", "--net-mac:service0=02:42:0a:d5:00:05",
      f"--block:storage={DISK}", "--", K,
      "--service0-ipv4=10.213.0.5/24", "--service0-ipv4-gateway=10.213.0.1", "app", "-v"]),
    ("mirage-spt-net-block", dict(guest="mirage", monitor="spt", monitor_path=SPT, accel="",
                                  block=DISK, devices={"net": "service", "block": "storage"}), True,
     [SPT, "--mem=64", "--net:service=tap-c1", "--net-mac:service=02:42:0a:d5:00:05",
      f"--block:storage={DISK}", "--", K, "--ipv4=10.213.0.5/24", "--ipv4-gateway=10.213.0.1", "app", "-v"]),
    ("mirage-hvt-no-net", dict(guest="mirage", monitor="hvt", monitor_path=HVT, accel="kvm",
                               devices={"net": "service"}), False,
     [HVT, "--mem=64", "--", K, "app", "-v"]),
    ("rumprun-hvt", dict(guest="rumprun", monitor="hvt", monitor_path=HVT, accel="kvm"), False,
     [HVT, "--mem=64", "--", K, '{"cmdline":"app -v","env":"PATH=/bin","env":"A=b"}']),
    ("rumprun-hvt-net", dict(guest="rumprun", monitor="hvt", monitor_path=HVT, accel="kvm", env=(),
                             devices={"net": "tap"}), True,
     [HVT, "--mem=64", "--net:tap=tap-c1", "--net-mac:tap=02:42:0a:d5:00:05", "--", K,
      '{"cmdline":"app -v","net":{"if":"ukvmif0","cloner":"True","type":"inet","method":"static",'
      '"addr":"10.213.0.5","mask":"24","gw":"10.213.0.1"}}']),
    ("rumprun-spt-net-block", dict(guest="rumprun", monitor="spt", monitor_path=SPT, accel="", env=(),
                                   block=DISK, block_mountpoint="/data",
                                   devices={"net": "tap", "block": "rootfs"}), True,
     [SPT, "--mem=64", "--net:tap=tap-c1", "--net-mac:tap=02:42:0a:d5:00:05", f"--block:rootfs={DISK}",
      "--", K,
      '{"cmdline":"app -v","net":{"if":"ukvmif0","cloner":"True","type":"inet","method":"static",'
      '"addr":"10.213.0.5","mask":"24","gw":"10.213.0.1"},'
      '"blk":{"source":"etfs","path":"/dev/ld0a","fstype":"blk","mountpoint":"/data"}}']),
    ("osv-qemu", dict(guest="osv", monitor="qemu", args=("/hello", "a b"), memory_mib=256), False,
     QEMU_HEAD + ["-m", "256", "-smp", "1", "-kernel", K,
                  "-append", '--env=PATH=/bin --env=A=b /hello "a b"'] + QMP),
    ("osv-qemu-net-block", dict(guest="osv", monitor="qemu", args=("/hello",), env=(), block=DISK,
                                memory_mib=256), True,
     QEMU_HEAD + ["-m", "256", "-smp", "1", "-kernel", K,
                  "-append", "--ip=eth0,10.213.0.5,255.255.255.0 --defaultgw=10.213.0.1 "
                  "--nameserver=10.213.0.1 /hello"] + QNET + QDISK + QMP),
    ("mewz-qemu", dict(guest="mewz", monitor="qemu", args=(), env=(), memory_mib=256), False,
     QEMU_HEAD + ["-m", "256", "-smp", "1", "-kernel", K, "-append", "",
                  "-device", "isa-debug-exit,iobase=0x501,iosize=0x02"] + QMP),
    ("mewz-qemu-net", dict(guest="mewz", monitor="qemu", args=(), env=(), memory_mib=256), True,
     QEMU_HEAD + ["-m", "256", "-smp", "1", "-kernel", K, "-append", "ip=10.213.0.5/24 gateway=10.213.0.1",
                  "-netdev", "tap,id=n0,ifname=tap-c1,script=no,downscript=no,vhost=off",
                  "-device", "virtio-net-pci,netdev=n0,mac=02:42:0a:d5:00:05,disable-legacy=on,disable-modern=off",
                  "-device", "isa-debug-exit,iobase=0x501,iosize=0x02"] + QMP),
    ("osv-qemu-seccomp-comma-in-disk-path", dict(guest="osv", args=("/x",), env=(), seccomp=True,
                                                   block="/b/rootfs/a,b.img"), False,
     QEMU_HEAD + ["-m", "64", "-smp", "1", "-kernel", K, "-append", "/x",
                  "-drive", "file=/b/rootfs/a,,b.img,if=none,id=d0,format=raw",
                  "-device", "virtio-blk-pci,drive=d0",
                  "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"] + QMP),
]


@pytest.mark.parametrize("overrides, with_net, expected", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_monitor_argv_is_pinned(overrides: dict[str, object], with_net: bool, expected: list[str]) -> None:
    p = plan(**overrides)
    argv = monitors.get(p.monitor).argv(p, guests.get(p.guest), NET if with_net else None)
    assert argv == expected


def test_rows_cover_every_supported_pair_but_linux() -> None:
    covered = {(plan(**r[1]).guest, plan(**r[1]).monitor) for r in ROWS} | {
        (plan(**r[1]).guest, plan(**r[1]).monitor) for r in FC_ROWS}
    expected = {pair for pair in guests.matrix() if pair[0] != "linux"}
    assert covered == expected


FC = "/usr/local/bin/firecracker"
# (id, plan overrides, with network, expected config)
FC_ROWS = [
    ("unikraft-firecracker", dict(guest="unikraft", monitor="firecracker", env=()), False,
     {"boot-source": {"kernel_image_path": K, "boot_args": "unikernel -- app -v"},
      "machine-config": {"vcpu_count": 1, "mem_size_mib": 64, "smt": False},
      "drives": [], "network-interfaces": []}),
    ("unikraft-firecracker-net-initrd", dict(guest="unikraft", monitor="firecracker", env=(), initrd=INITRD,
                                             vcpus=2, memory_mib=96), True,
     {"boot-source": {"kernel_image_path": K,
                      "boot_args": 'unikernel netdev.ip=10.213.0.5/24:10.213.0.1:10.213.0.1 '
                                   'vfs.fstab=[ "initrd0:/:extract:::" ] -- app -v',
                      "initrd_path": INITRD},
      "machine-config": {"vcpu_count": 2, "mem_size_mib": 96, "smt": False},
      "drives": [],
      "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap-c1", "guest_mac": "02:42:0a:d5:00:05"}]}),
    ("osv-firecracker-net-block", dict(guest="osv", monitor="firecracker", args=("/hello",), env=(),
                                       block=DISK, memory_mib=256), True,
     {"boot-source": {"kernel_image_path": K,
                      "boot_args": "--ip=eth0,10.213.0.5,255.255.255.0 --defaultgw=10.213.0.1 "
                                   "--nameserver=10.213.0.1 /hello"},
      "machine-config": {"vcpu_count": 1, "mem_size_mib": 256, "smt": False},
      "drives": [{"drive_id": "d0", "path_on_host": DISK, "is_root_device": False, "is_read_only": False}],
      "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap-c1", "guest_mac": "02:42:0a:d5:00:05"}]}),
]


@pytest.mark.parametrize("overrides, with_net, expected", [r[1:] for r in FC_ROWS], ids=[r[0] for r in FC_ROWS])
def test_firecracker_argv_and_config_are_pinned(tmp_path: object, overrides: dict[str, object], with_net: bool,
                                                expected: dict[str, object]) -> None:
    state_dir = str(tmp_path)
    p = plan(monitor_path=FC, accel="kvm", state_dir=state_dir, **overrides)
    argv = monitors.get("firecracker").argv(p, guests.get(p.guest), NET if with_net else None)
    config_path = os.path.join(state_dir, "firecracker.json")
    assert argv == [FC, "--no-api", "--config-file", config_path]
    with open(config_path) as f:
        text = f.read()
    assert json.loads(text) == expected
    assert list(json.loads(text)) == ["boot-source", "machine-config", "drives", "network-interfaces"]
    assert os.stat(config_path).st_mode & 0o777 == 0o600
    assert os.listdir(state_dir) == ["firecracker.json"]
