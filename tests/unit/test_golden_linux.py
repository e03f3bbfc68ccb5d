"""Golden argv for the Linux guest: QEMU (microvm) and Firecracker, with and without network and disk.

The initrd is the one ``write_files`` made in the state dir at create; the network
reaches the guest's init through a second archive appended at start, so the
kernel command line is the same with a network and without.
"""

from __future__ import annotations

import json
import os

from _plans import NET, plan

from urunc import guests, monitors

QEMU = "/usr/bin/qemu-system-x86_64"
KERNEL = "/usr/local/lib/urunc/guest/vmlinux"
INITRD = "/run/urunc/c1/initrd.cpio"
DISK = "/b/rootfs/disk.img"
CMDLINE = ("console=ttyS0 panic=-1 tsc_early_khz=2000000 tsc=reliable cryptomgr.notests loglevel=3 "
           "rdinit=/.urunc/init")
HEAD = [QEMU, "-name", "urunc-c1", "-nodefaults", "-no-user-config", "-display", "none",
        "-serial", "stdio", "-no-reboot", "-accel", "tcg", "-M", "microvm", "-m", "256", "-smp", "1",
        "-kernel", KERNEL]
TAIL = ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-device", "pvpanic",
        "-action", "panic=exit-failure", "-qmp", "unix:/run/urunc/c1/qmp.sock,server=on,wait=off"]


def _linux(**overrides: object) -> object:
    values: dict[str, object] = dict(guest="linux", kernel=KERNEL, memory_mib=256, args=("sh", "-c", "echo hi"),
                                     files={"initrd": INITRD})
    values.update(overrides)
    return plan(**values)


def test_linux_on_qemu_without_network() -> None:
    p = _linux()
    argv = monitors.get("qemu").argv(p, guests.get("linux"), None)  # type: ignore[arg-type]
    assert argv == HEAD + ["-append", CMDLINE, "-initrd", INITRD] + TAIL


def test_linux_on_qemu_with_network() -> None:
    p = _linux()
    argv = monitors.get("qemu").argv(p, guests.get("linux"), NET)  # type: ignore[arg-type]
    assert argv == HEAD + ["-append", CMDLINE, "-initrd", INITRD,
                           "-netdev", "tap,id=n0,ifname=tap-c1,script=no,downscript=no,vhost=off",
                           "-device", "virtio-net-device,netdev=n0,mac=02:42:0a:d5:00:05"] + TAIL


def test_linux_on_qemu_with_a_root_disk() -> None:
    p = _linux(block=DISK)
    argv = monitors.get("qemu").argv(p, guests.get("linux"), None)  # type: ignore[arg-type]
    assert argv == HEAD + ["-append", CMDLINE + " root=/dev/vda", "-initrd", INITRD,
                           "-drive", f"file={DISK},if=none,id=d0,format=raw",
                           "-device", "virtio-blk-device,drive=d0"] + TAIL


def test_linux_on_firecracker_with_network(tmp_path: object) -> None:
    state_dir = str(tmp_path)
    p = _linux(monitor="firecracker", monitor_path="/usr/local/bin/firecracker", accel="kvm", state_dir=state_dir)
    argv = monitors.get("firecracker").argv(p, guests.get("linux"), NET)  # type: ignore[arg-type]
    config = os.path.join(state_dir, "firecracker.json")
    assert argv == ["/usr/local/bin/firecracker", "--no-api", "--config-file", config]
    with open(config) as f:
        assert json.load(f) == {
            "boot-source": {"kernel_image_path": KERNEL, "boot_args": CMDLINE, "initrd_path": INITRD},
            "machine-config": {"vcpu_count": 1, "mem_size_mib": 256, "smt": False},
            "drives": [],
            "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap-c1",
                                    "guest_mac": "02:42:0a:d5:00:05"}],
        }


def test_linux_is_covered_on_every_monitor_it_declares() -> None:
    assert {m for g, m in guests.matrix() if g == "linux"} == {"qemu", "firecracker"}


SNAPSHOT = "/var/lib/urunc/templates/0123abcd"
EXEC = ["-device", "virtio-serial-device,id=urunc-ser,max_ports=3",
        "-chardev", "socket,id=exec0,fd=7,server=on,wait=off",
        "-device", "virtserialport,bus=urunc-ser.0,chardev=exec0,name=urunc.exec.0,nr=1"]


def test_linux_restored_from_a_template_maps_its_memory_private_and_reads_its_job() -> None:
    """No initramfs: the guest's RAM is the template's file (copy-on-write), the device state
    comes through QMP commands in a file, the job through a pipe chardev on urunc.job."""
    p = _linux(exec_ports=1, netns="/var/run/netns/x",
               files={"snapshot": SNAPSHOT, "job": "/run/urunc/c1/job.in", "exec_fds": "7"})
    argv = monitors.get("qemu").argv(p, guests.get("linux"), NET)  # type: ignore[arg-type]
    assert argv == HEAD + ["-append", CMDLINE,
                           "-object", f"memory-backend-file,id=mem,size=256M,mem-path={SNAPSHOT}/ram,share=off",
                           "-machine", "memory-backend=mem",
                           "-netdev", "tap,id=n0,ifname=tap-c1,script=no,downscript=no,vhost=off",
                           "-device", "virtio-net-device,netdev=n0,mac=02:42:0a:d5:00:05", *EXEC,
                           "-chardev", "pipe,id=job,path=/run/urunc/c1/job",
                           "-device", "virtserialport,bus=urunc-ser.0,chardev=job,name=urunc.job,nr=2"] + TAIL + [
                           "-chardev", "pipe,id=restore,path=/run/urunc/c1/restore",
                           "-mon", "chardev=restore,mode=control", "-incoming", "defer"]


def test_a_template_being_made_writes_its_memory_through_and_has_no_peer() -> None:
    work = "/var/lib/urunc/templates/.new-k-1"
    p = _linux(exec_ports=1, state_dir=work, files={"snapshot_make": work, "initrd": f"{work}/initrd.cpio",
                                                    "exec_fds": "7", "qmp_fd": "9"})
    argv = monitors.get("qemu").argv(p, guests.get("linux"), NET)  # type: ignore[arg-type]
    assert f"memory-backend-file,id=mem,size=256M,mem-path={work}/ram,share=on" in argv
    assert argv[argv.index("-netdev") + 1] == "hubport,id=n0,hubid=0"
    assert "null,id=job" in argv and "-incoming" not in argv


def test_a_cold_boot_has_the_job_port_too_so_both_ways_give_the_same_devices() -> None:
    p = _linux(exec_ports=1, files={"initrd": INITRD, "exec_fds": "7"})
    argv = monitors.get("qemu").argv(p, guests.get("linux"), None)  # type: ignore[arg-type]
    at = argv.index("-append") + 4
    assert argv[at:at + len(EXEC) + 4] == [*EXEC, "-chardev", "null,id=job", "-device",
                                           "virtserialport,bus=urunc-ser.0,chardev=job,name=urunc.job,nr=2"]
