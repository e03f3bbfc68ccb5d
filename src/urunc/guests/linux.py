"""Linux: an ordinary container image booted as a microVM.

The kernel is the image's ``binary`` if it names one, else the host's
(Debian's, installed by ``make install`` at ``/usr/local/lib/urunc/guest/
vmlinux``: the uncompressed vmlinux that QEMU boots through PVH). The
container's rootfs becomes the initramfs, overlaid at ``create`` with this
project's init (``guests/linux/init.c``) and its inputs under ``/.urunc/``
(argv, env, cwd, user, hostname as files, so any byte reaches the
application exactly); at ``start`` a second, tiny archive with the network
(``/.urunc/net``) is appended, since the kernel unpacks concatenated archives
in order. The init runs ``process.args`` and powers the VM off with the
application's exit status (see ``guests/linux/README.md`` for the mapping).

Why an initramfs by default: measured under TCG here, it starts a busybox
container faster than a 9p share (no 9p/virtio-mmio modules, no file
round-trips through QEMU); a disk image (``block``) mounts as the root instead.
"""

from __future__ import annotations

import os

from urunc import _errors
from urunc.guests import Guest, linux_exec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.guests.linux_initrd import InitrdEntry
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan

GUEST_DIR = os.environ.get("URUNC_GUEST_DIR", "/usr/local/lib/urunc/guest")
INITRD = "initrd.cpio"
NINEP_ROOT = "9p rootfs trans=virtio,version=9p2000.L,msize=524288,cache=loose"


def mount_entries(mounts: tuple[tuple[Any, ...], ...]) -> list[InitrdEntry]:
    """``/.urunc/mounts`` for the init (``guests/linux/README.md``): per mount four
    NUL-terminated fields KIND SOURCE DESTINATION ro|rw, in mounting order; KIND ``9p``
    (SOURCE: the mount tag), ``file`` (SOURCE: N, the copy at ``/.urunc/files/N``) or
    ``tmpfs`` (SOURCE: its options). A file mount's copy is taken now, at create."""
    from urunc.guests import linux_initrd as initrd
    from urunc.unikernel import mounts as _mounts

    if not any(m[0] != "root" for m in mounts):
        return []
    tags = {id(m): tag for tag, m in _mounts.shares(mounts)}
    fields: list[str] = []
    entries: list[InitrdEntry] = []
    for index, mount in enumerate(mounts):
        kind, source, destination, readonly, options = mount
        if kind == "root":
            continue  # /.urunc/root
        if kind == "share":
            fields += ["9p", tags[id(mount)]]
        elif kind == "file":
            fields += ["file", str(index)]
            try:
                st = os.stat(str(source))
                entries.append(initrd.InitrdEntry(f"/.urunc/files/{index}", st.st_mode & 0o7777,
                                                  source=str(source), uid=st.st_uid, gid=st.st_gid))
            except OSError as exc:
                raise _errors.HostError(f"mount {destination}: cannot read {source}: {exc.strerror}") from None
        else:
            fields += ["tmpfs", str(options)]
        fields += [str(destination), "ro" if readonly else "rw"]
    data = b"".join(os.fsencode(f) + b"\0" for f in fields)
    return [initrd.InitrdEntry.file("/.urunc/mounts", data), *entries]


class Linux(Guest):
    name = "linux"
    monitors = frozenset({"qemu", "firecracker"})
    storage = frozenset({"block", "sharedfs", "files", "tmpfs"})
    default_memory_mib = 256
    # From this rootfs size on, share it over 9p instead of copying it into the initramfs
    # (README: the measured crossover); mountRootfs=true/false decides whatever the size.
    share_rootfs_from = 32 * 1024 * 1024
    exec_ports = linux_exec.PORTS  # concurrent execs; more wait for a free port
    platform = "minimal"  # PVH boot of the uncompressed vmlinux, virtio-mmio
    # The init writes the application's exit status to port 0xf4 (guests/linux/README.md); a
    # guest kernel panic must not look like a clean reboot.
    exit_port = (0xF4, 4)
    panic_exits = True
    templates = True
    template_ready = b"urunc-template-ready"  # guests/linux/init.c, template mode

    def default_kernel(self) -> str | None:
        path = os.path.join(GUEST_DIR, "vmlinux")
        if not os.path.isfile(path):
            raise _errors.PlanError(f"no kernel for linux guests at {path}",
                                    hint="run make install, or give the image a com.urunc.unikernel.binary")
        return path

    def prepare(self, plan: Plan) -> Plan:
        if not plan.args:
            raise _errors.BundleError("linux guest needs process.args (nothing to run)")
        return plan

    def write_files(self, plan: Plan) -> Plan:
        """The initramfs a cold boot takes; or, from a template, the job: the same files and
        rootfs, minus the init and modules the template already runs (guests/linux_template.py)."""
        from urunc.guests import linux_initrd as initrd
        from urunc.unikernel import mounts

        init = os.path.join(GUEST_DIR, "urunc-init")
        modules = os.path.join(GUEST_DIR, "modules")
        if not os.path.isfile(init):
            raise _errors.PlanError(f"linux guest init {init} is missing", hint="run make install")
        wanted = self.modules_wanted(plan)
        root = None
        if plan.block:
            root = "ext4 /dev/vda rw"
        shared_root = mounts.has_root(plan.mounts)
        if shared_root:
            root = NINEP_ROOT
        rootfs, exclude = self._packed_rootfs(plan)
        job: dict[str, Any] = {"args": plan.args, "env": plan.env, "cwd": plan.cwd, "hostname": plan.hostname or None,
               "user": (plan.uid, plan.gid, list(plan.additional_gids)) if plan.uid or plan.gid else None,
               "terminal": plan.terminal, "root": root}
        extra = mount_entries(plan.mounts)
        if plan.exec_ports:
            extra.append(initrd.InitrdEntry.file("/.urunc/exec", f"{plan.exec_ports}\n".encode()))
        files = dict(plan.files)
        if files.get("snapshot"):  # from a template (urunc/templates.py): its job, not an initramfs
            from urunc.guests import linux_template

            # The template holds the packed rootfs already (template_rootfs keys it).
            entries = [e for e in initrd.urunc_init_entries(init=init, **job) if e.path != "/.urunc/init"]
            out = os.path.join(plan.state_dir, "job.in")
            linux_template.write_job(out, None, entries + extra, ())
            files["job"] = out
            return plan.replace(files=files)
        entries = initrd.urunc_init_entries(init=init, modules=modules if os.path.isdir(modules) else None,
                                            module_names=wanted, **job)
        out = os.path.join(plan.state_dir, INITRD)
        initrd.write_initrd(out, rootfs, entries + extra, exclude=tuple(exclude))
        files["initrd"] = out
        return plan.replace(files=files)

    @staticmethod
    def _packed_rootfs(plan: Plan) -> tuple[str | None, list[str]]:
        """The rootfs the initramfs holds (None: a shared or block root) and what is left out."""
        from urunc.unikernel import mounts

        exclude = [plan.kernel] if plan.kernel.startswith(plan.rootfs + "/") else []
        # Docker's init layer puts an empty regular file at /dev/console (a mount point for
        # runc): packed, it would replace the kernel's console device and the guest's output
        # would go into that file.
        exclude.append(os.path.join(plan.rootfs, "dev", "console"))
        return (None if plan.block or mounts.has_root(plan.mounts) else plan.rootfs), exclude

    def template_rootfs(self, plan: Plan) -> str:
        """A packed rootfs is in the template, unpacked by the kernel as in a cold boot (the
        restored guest then needs only its /.urunc files): the template is keyed by the tree,
        every entry's path, type, mode, owner, size, mtime and link target; "" when shared."""
        rootfs, exclude = self._packed_rootfs(plan)
        if rootfs is None:
            return ""
        from urunc.guests import linux_initrd as initrd

        return initrd.tree_digest(rootfs, exclude)

    @staticmethod
    def modules_wanted(plan: Plan) -> list[str]:
        """The kernel modules the container's devices need (guests/linux/collect-modules.py)."""
        wanted = ["virtio_mmio", "pvpanic_mmio"]
        if plan.netns != "none":
            wanted.append("virtio_net")
        if plan.block:
            wanted += ["virtio_blk", "ext4"]
        if any(m[0] in ("share", "root") for m in plan.mounts):
            wanted += ["9pnet_virtio", "9p"]
        if plan.exec_ports:
            wanted.append("virtio_console")
        return wanted

    def template_files(self, plan: Plan) -> list[str]:
        modules = os.path.join(GUEST_DIR, "modules")
        return [os.path.join(GUEST_DIR, "urunc-init"), *(os.path.join(modules, name) for name in
                                                         sorted(self._template_modules(plan)))]

    def _template_modules(self, plan: Plan) -> set[str]:
        from urunc.guests import linux_initrd as initrd

        modules = os.path.join(GUEST_DIR, "modules")
        wanted = self.modules_wanted(plan)
        return initrd.module_closure(modules, wanted) if os.path.isdir(modules) else set()

    def write_template_boot(self, plan: Plan) -> Plan:
        """An initramfs of the init, the modules and ``/.urunc/template``: the init loads the
        modules, says TEMPLATE_READY and waits for its job (guests/linux_template.py)."""
        from urunc.guests import linux_initrd as initrd

        modules = os.path.join(GUEST_DIR, "modules")
        entries = [initrd.InitrdEntry.copy("/.urunc/init", os.path.join(GUEST_DIR, "urunc-init"), 0o755),
                   *(initrd.module_entries(modules, self.modules_wanted(plan)) if os.path.isdir(modules) else []),
                   initrd.InitrdEntry.file("/.urunc/template", b"")]
        rootfs, exclude = self._packed_rootfs(plan)
        out = os.path.join(plan.state_dir, INITRD)
        initrd.write_initrd(out, rootfs, entries, exclude=tuple(exclude))
        return plan.replace(files={**plan.files, "initrd": out})

    def start_files(self, plan: Plan, net: NetInfo | None) -> None:
        """Append the network as a second archive: eth0 exists only at start."""
        if net is None:
            return
        from urunc.guests import linux_initrd as initrd

        settings: dict[str, str | list[str]] = {"ip": net.cidr, "mac": net.mac}
        if net.gateway:
            settings["gw"] = net.gateway
        if net.dns:
            settings["dns"] = [net.dns]
        initrd.append_entries(plan.files.get("job") or plan.files["initrd"], initrd.net_entries(settings))

    def before_exec(self, plan: Plan) -> None:
        if plan.files.get("job"):
            from urunc.guests import linux_template

            linux_template.finish_job(plan.files["job"])

    def cmdline(self, plan: Plan, net: NetInfo | None) -> str:
        words = ["console=ttyS0", "panic=-1", "tsc_early_khz=2000000", "tsc=reliable",
                 "cryptomgr.notests", "loglevel=3", "rdinit=/.urunc/init"]
        if plan.block:
            words.append("root=/dev/vda")
        return " ".join(words)


GUEST = Linux()
