"""QEMU: argv built element by element; the guest's command line is one -append element."""

from __future__ import annotations

import os

from urunc import _errors
from urunc.monitors import Monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.config import Config
    from urunc.guests import Guest
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan


def kvm_usable() -> bool:
    """Trust /dev/kvm only on hardware virtualisation.

    A software KVM (this machine's PVM, module ``kvm_pvm``) runs guest kernels
    80-200x slower than TCG and kills some guests outright; a CPU without
    vmx/svm cannot give a hardware KVM, so "auto" means TCG there.
    """
    if not os.access("/dev/kvm", os.R_OK | os.W_OK) or os.path.exists("/sys/module/kvm_pvm"):
        return False
    try:
        with open("/proc/cpuinfo", "rb") as f:
            for line in f:
                if line.startswith(b"flags"):
                    flags = line.split()
                    return b"vmx" in flags or b"svm" in flags
    except OSError:
        return False
    return False


def qmp_path(plan: Plan) -> str:
    """The QMP socket in the state dir (graceful power-down on SIGTERM), or "" for none.

    A root QEMU binds it itself; for a monitor run as another user (no access to
    the 0700 state dir) the init binds it and hands it over as ``files["qmp_fd"]``.
    """
    from urunc.monitors import qmp

    return qmp.socket_path(plan.state_dir) if plan.state_dir else ""


SNAPSHOT_SECONDS = 180.0  # a template VM's boot: 2-3 s under TCG here, much longer on a loaded host

# The machine a guest's platform needs: a PC, or microvm (PVH, virtio-mmio, no BIOS).
_MACHINES = {"pc": "pc", "minimal": "microvm"}


class Qemu(Monitor):
    name = "qemu"
    binary = "qemu-system-x86_64"
    storage = frozenset({"initrd", "block", "sharedfs"})
    channel = True
    fd_sets = True
    snapshots = True

    def choose_accel(self, cfg: Config) -> str:
        accel = cfg.accel(self.name)
        if accel == "auto":
            return "kvm" if kvm_usable() else "tcg"
        if accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise _errors.PlanError("accel kvm requested but /dev/kvm is not usable")
        return accel

    def argv(self, plan: Plan, guest: Guest, net: NetInfo | None) -> list[str]:
        argv = [
            plan.monitor_path,
            "-name", f"urunc-{plan.container_id}",
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot",
            "-accel", plan.accel,
            "-M", _MACHINES[guest.platform],
            "-m", str(plan.memory_mib),
            "-smp", str(plan.vcpus),
            "-kernel", plan.kernel,
            "-append", guest.cmdline(plan, net),
        ]
        argv += _snapshot_memory(plan)
        initrd = plan.files.get("initrd") or plan.initrd
        if initrd:
            argv += ["-initrd", _unsplit("initrd", initrd)]
        virtio = "device" if guest.platform == "minimal" else "pci"  # virtio-mmio or PCI
        virtio_opts = ",disable-legacy=on,disable-modern=off" if guest.virtio_modern_only else ""
        if net is not None:
            if plan.files.get("snapshot_make"):
                backend = "hubport,id=n0,hubid=0"  # a template's card is connected to nothing
            elif plan.files.get("tap_fd"):  # a monitor that is not root: the tap the init opened
                backend = f"tap,id=n0,fd={plan.files['tap_fd']},vhost=off"
            else:
                backend = f"tap,id=n0,ifname={net.tap},script=no,downscript=no,vhost=off"
            argv += ["-netdev", backend,
                     "-device", f"virtio-net-{virtio},netdev=n0,mac={net.mac}{virtio_opts}"]
        block = plan.files.get("block") or plan.block
        if block:
            if plan.files.get("block_fd"):  # a disk the monitor's user cannot open: an fd from the init
                argv += ["-add-fd", f"fd={plan.files['block_fd']},set=1"]
            argv += ["-drive", f"file={_escape_opt(block)},if=none,id=d0,format=raw",
                     "-device", f"virtio-blk-{virtio},drive=d0{virtio_opts}"]
        argv += _shares(plan, virtio)
        argv += _channel(plan, guest, virtio)
        if guest.exit_port is not None:  # the status a guest writes there becomes QEMU's
            port, size = guest.exit_port
            argv += ["-device", f"isa-debug-exit,iobase={port:#x},iosize={size:#04x}"]
        if guest.panic_exits:  # pvpanic: a guest kernel panic is exit status 1, not a reboot
            argv += ["-device", "pvpanic", "-action", "panic=exit-failure"]
        if plan.seccomp:
            argv += ["-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"]
        if plan.files.get("qmp_fd"):
            argv += ["-chardev", f"socket,id=qmp0,fd={plan.files['qmp_fd']},server=on,wait=off",
                     "-mon", "chardev=qmp0,mode=control"]
        else:
            qmp_socket = qmp_path(plan)
            if qmp_socket:
                argv += ["-qmp", f"unix:{_escape_opt(qmp_socket)},server=on,wait=off"]
        if plan.files.get("snapshot"):
            # The restore, with nobody to drive it: QMP commands QEMU reads from a file
            # (restore.in, written by hand_over; its answers land in restore.out).
            restore = os.path.join(plan.state_dir, "restore")
            argv += ["-chardev", f"pipe,id=restore,path={_escape_opt(restore)}",
                     "-mon", "chardev=restore,mode=control", "-incoming", "defer"]
        return argv

    def snapshot(self, plan: Plan, guest: Guest, net: NetInfo | None, out: str,
                 timeout: float = SNAPSHOT_SECONDS) -> None:
        """Boot PLAN (a template: its memory written through to ``files["snapshot_make"]/ram``),
        wait for the guest's ``template_ready`` line, migrate the running VM to OUT with
        ``x-ignore-shared`` (only the devices' state: the memory is the file already) and quit.
        The VM keeps running while it is migrated, so a restored one runs at once."""
        import subprocess
        import time

        from urunc.monitors import qmp

        plan, fds = self.hand_over(plan)
        argv = self.argv(plan, guest, net)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    pass_fds=fds, cwd="/")
        finally:
            for fd in fds:
                os.close(fd)
        try:
            _wait_for_line(proc, guest.template_ready, timeout)
            state_fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                with qmp.Client(qmp.socket_path(plan.state_dir), timeout=30.0) as client:
                    client.execute("migrate-set-capabilities",
                                   {"capabilities": [{"capability": "x-ignore-shared", "state": True}]})
                    client.send_fd("template-state", state_fd)
                    client.execute("migrate", {"uri": "fd:template-state"})
                    deadline = time.monotonic() + 60
                    while True:
                        status = client.execute("query-migrate")
                        if status.get("status") == "completed":
                            break
                        if status.get("status") in ("failed", "cancelled") or time.monotonic() > deadline:
                            raise _errors.HostError(f"template migration {status.get('status', 'timed out')}: "
                                                f"{status.get('error-desc', '')}".rstrip(": "))
                        time.sleep(0.01)
                    client.execute("quit")
            finally:
                os.close(state_fd)
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise _errors.HostError("the template VM did not quit after its migration") from None
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for stream in (proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()

    def pause_vm(self, state_dir: str) -> bool:
        """QMP ``stop``: the vCPUs halt where they are, QMP still answers (``cont`` resumes)."""
        return _qmp_command(state_dir, "stop")

    def resume_vm(self, state_dir: str) -> None:
        _qmp_command(state_dir, "cont")

    def hand_over(self, plan: Plan) -> tuple[Plan, list[int]]:
        """Sockets the init binds for QEMU, so they exist before QEMU does: the exec channel's
        ports, and QMP (a SIGTERM right after start reaches QEMU through it: as PID 1 of its
        PID namespace, QEMU would drop a signal that came before its handler; and a QEMU run
        as another user could not bind in the 0700 state dir)."""
        fds: list[int] = []
        files = dict(plan.files)
        if files.get("snapshot"):
            fds.append(_restore_commands(plan))
        if plan.exec_ports:
            from urunc.guests import linux_exec

            exec_fds = linux_exec.listen_all(plan.state_dir, plan.exec_ports)
            fds += exec_fds
            files["exec_fds"] = ",".join(map(str, exec_fds))
        from urunc.monitors import qmp

        path = qmp.socket_path(plan.state_dir)
        if path:
            fd = qmp.listen(path)
            fds.append(fd)
            files["qmp_fd"] = str(fd)
        return (plan.replace(files=files) if fds else plan), fds


def _snapshot_memory(plan: Plan) -> list[str]:
    """Guest RAM in a template's memory file: written through while a template is made
    (``share=on``, so the migration need not carry it: ``x-ignore-shared``), mapped private
    (copy-on-write) by every guest restored from it."""
    if plan.files.get("snapshot_make"):
        path, share = os.path.join(plan.files["snapshot_make"], "ram"), "on"
    elif plan.files.get("snapshot"):
        path, share = os.path.join(plan.files["snapshot"], "ram"), "off"
    else:
        return []
    return ["-object", f"memory-backend-file,id=mem,size={plan.memory_mib}M,mem-path={_escape_opt(path)},"
                       f"share={share}", "-machine", "memory-backend=mem"]


def _restore_commands(plan: Plan) -> int:
    """Open the template's device state for QEMU (an inherited fd) and write the QMP commands
    that restore it: ``x-ignore-shared`` (the memory is the file QEMU maps), then the
    incoming migration; QEMU runs the guest once it is loaded (the template was running)."""
    from urunc import _jsonlite

    state = os.path.join(plan.files["snapshot"], "state")
    try:
        fd = os.open(state, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        raise _errors.HostError(f"cannot open template state {state}: {exc.strerror}") from None
    os.set_inheritable(fd, True)
    commands = [{"execute": "qmp_capabilities"},
                {"execute": "migrate-set-capabilities",
                 "arguments": {"capabilities": [{"capability": "x-ignore-shared", "state": True}]}},
                {"execute": "migrate-incoming", "arguments": {"uri": f"fd:{fd}"}}]
    restore = os.path.join(plan.state_dir, "restore")
    from urunc._files import write_atomic

    write_atomic(restore + ".in", "".join(_jsonlite.dumps(c) + "\n" for c in commands).encode())
    write_atomic(restore + ".out", b"")
    job = plan.files.get("job", "")
    if job.endswith(".in"):
        write_atomic(job[:-3] + ".out", b"")  # the job port's other direction: the guest writes nothing
    return fd


def _wait_for_line(proc: Any, line: bytes, timeout: float) -> None:
    """Read the VM's console until LINE; its exit or TIMEOUT is a HostError."""
    import select
    import time

    deadline = time.monotonic() + timeout
    output = errors = b""
    out, err = proc.stdout.fileno(), proc.stderr.fileno()
    while line not in output:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _errors.HostError(f"the template VM did not say it was ready within {timeout:.0f} s")
        ready, _, _ = select.select([out, err], [], [], left)
        for fd in ready:
            data = os.read(fd, 65536)
            if fd == err:
                errors = (errors + data)[-4096:]
                continue
            output = (output + data)[-65536:]
            if not data:
                proc.wait()
                said = (errors or output).decode(errors="replace").strip().splitlines()[-1:] or [""]
                raise _errors.HostError(f"the template VM exited ({proc.returncode}) before it was ready: "
                                    f"{said[0][:200]}")


def _qmp_command(state_dir: str, command: str) -> bool:
    """COMMAND through the container's QMP socket; False when there is none to ask."""
    from urunc.monitors import qmp

    path = qmp.socket_path(state_dir)
    if not path or not os.path.exists(path):
        return False
    with qmp.Client(path) as client:
        client.execute(command)
    return True


def _shares(plan: Plan, virtio: str) -> list[str]:
    """One 9p device per shared directory (unikernel/mounts.py), mount tag ``urunc<N>``.

    security_model: ``passthrough`` for a root monitor: the guest sees and sets the host's
    real owners and modes, so a volume written in the guest is owned on the host as the
    guest wrote it. A monitor run as another user cannot chown, so ``none``: the same
    passthrough of modes and data, with ownership changes ignored instead of failing; and
    the host's permission checks, made as that user, decide what it serves. ``readonly=on``
    makes QEMU refuse writes itself: a read-only volume stays so whatever the guest does.
    QEMU's local backend opens every path component without following symlinks, so no
    symlink or ``..`` in a share reaches outside it.
    """
    from urunc.unikernel import mounts

    model = "passthrough" if plan.uid == 0 else "none"
    argv: list[str] = []
    for index, (tag, mount) in enumerate(mounts.shares(plan.mounts)):
        readonly = ",readonly=on" if mount[3] else ""
        argv += ["-fsdev", f"local,id=fs{index},path={_escape_opt(mount[1])},security_model={model}{readonly}",
                 "-device", f"virtio-9p-{virtio},fsdev=fs{index},mount_tag={tag}"]
    return argv


def _channel(plan: Plan, guest: Guest, virtio: str) -> list[str]:
    """The exec channel's virtio-serial ports, ``urunc.exec.N``, each on a socket the init
    bound (``files["exec_fds"]``: inherited fds, so they exist before QEMU does)."""
    fds = [fd for fd in plan.files.get("exec_fds", "").split(",") if fd]
    if not fds:
        return []
    job = guest.templates
    argv = ["-device", f"virtio-serial-{virtio},id=urunc-ser,max_ports={len(fds) + 1 + bool(job)}"]
    for index, fd in enumerate(fds):
        argv += ["-chardev", f"socket,id=exec{index},fd={fd},server=on,wait=off",
                 "-device", f"virtserialport,bus=urunc-ser.0,chardev=exec{index},name=urunc.exec.{index},"
                            f"nr={index + 1}"]
    if job:
        # A template's init waits for its job here (urunc/templates.py): the job file (read
        # through a pipe chardev: job.in) once restored; nothing while a template is made, or
        # in a cold boot, which has the port too, so that both give the guest the same devices.
        backend = f"pipe,id=job,path={_escape_opt(plan.files['job'][:-3])}" if plan.files.get("job") \
            else "null,id=job"
        argv += ["-chardev", backend,
                 "-device", f"virtserialport,bus=urunc-ser.0,chardev=job,name=urunc.job,nr={len(fds) + 1}"]
    return argv


def _unsplit(what: str, value: str) -> str:
    """A path QEMU splits with no escape: the multiboot loader (chosen by the kernel's
    contents, so by the image) cuts ``-initrd`` into modules at each comma and a module's
    name at its first space, and would open every piece as a host file. The image's own
    files arrive as /proc/self/fd/N (host/handover.py), so only a state dir path can hold one."""
    if "," in value or " " in value:
        raise _errors.PlanError(f"qemu cannot take {what} path {value!r}: it holds a comma or a space")
    return value


def _escape_opt(value: str) -> str:
    """QEMU's option syntax: a comma inside a value is written twice."""
    return value.replace(",", ",,")


MONITOR = Qemu()
