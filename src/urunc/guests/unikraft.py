"""Unikraft: kernel parameters, ``--``, then the application's arguments.

Two dialects, chosen by ``unikernelVersion``: from 0.16.1 on (and when no
version is given) ``netdev.ip=CIDR:GW:DNS`` and ``env.vars=[ ... ]``; before,
``netdev.ipv4_addr=`` / ``netdev.ipv4_gw_addr=`` / ``netdev.ipv4_subnet_mask=``
and ``vfs.rootfs=initrd``. Unikraft splits its command line on blanks but keeps
a double-quoted string (with ``\\"`` and ``\\\\`` escapes) as one argument.
"""

from __future__ import annotations

from urunc import _errors
from urunc.guests import Guest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.unikernel.net import NetInfo
    from urunc.unikernel.plan import Plan

NEW_DIALECT = (0, 16, 1)
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-+=.,:/@%^[]{}")


def quote(token: str) -> str:
    """One Unikraft command-line token, quoted when it holds anything but safe characters."""
    if token and set(token) <= _SAFE:
        return token
    return '"' + token.replace("\\", "\\\\").replace('"', '\\"') + '"'


def version_tuple(text: str) -> tuple[int, ...] | None:
    text = text.strip().lstrip("vV")
    if not text:
        return None
    parts = []
    for piece in text.split("."):
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def fstab_entry(tag: str, destination: str, readonly: bool) -> str:
    """One ``vfs.fstab`` entry for a 9p share (vfscore's automount, Unikraft >= 0.16.1):
    ``"TAG:MOUNTPOINT:9pfs:FLAGS:OPTS:UKOPTS"``, flag 0x1 read-only, ``mkmp`` to make the
    mount point first."""
    return f'"{tag}:{destination}:9pfs:{"0x1" if readonly else ""}::mkmp"'


class Unikraft(Guest):
    name = "unikraft"
    monitors = frozenset({"qemu", "firecracker"})
    storage = frozenset({"initrd", "sharedfs"})
    default_memory_mib = 64
    platform = "pc"  # Unikraft releases fail an assertion on a minimal machine's memory map
    cmdline_program_name = True  # multiboot loaders put the kernel's path first; Unikraft skips it

    def new_dialect(self, plan: Plan) -> bool:
        version = version_tuple(plan.version)
        return version is None or version >= NEW_DIALECT

    def prepare(self, plan: Plan) -> Plan:
        if not plan.mounts:
            return plan
        if not self.new_dialect(plan):
            raise _errors.PlanError(
                f"mount {plan.mounts[0][2]}: unikraft {plan.version} takes no volumes "
                f"(vfs.fstab needs {'.'.join(map(str, NEW_DIALECT))} or later)")
        if plan.initrd and any(m[0] == "root" for m in plan.mounts):
            raise _errors.PlanError("mountRootfs and initrd both name the guest's root: give one")
        for mount in plan.mounts:
            # vfs.fstab splits an entry at ':' and the command line at blanks and quotes.
            if set(mount[2]) & set(':"\\ \t\n\'') or len(mount[2]) > 255:
                raise _errors.PlanError(f"mount {mount[2]}: unikraft cannot mount at a path holding "
                                        "':', a quote, a backslash or a blank, or longer than 255 bytes")
        return plan

    def cmdline(self, plan: Plan, net: NetInfo | None) -> str:
        params: list[str] = []
        new = self.new_dialect(plan)
        if net is not None:
            if new:
                dns = f":{net.dns}" if net.dns else ""
                params.append(f"netdev.ip={net.cidr}:{net.gateway}{dns}")
            else:
                params += [f"netdev.ipv4_addr={net.ip}", f"netdev.ipv4_gw_addr={net.gateway}",
                           f"netdev.ipv4_subnet_mask={net.mask}"]
        fstab = []
        if plan.initrd:
            if new:
                fstab.append('"initrd0:/:extract:::"')
            else:
                params.append("vfs.rootfs=initrd")
        from urunc.unikernel import mounts

        volumes = [(tag, m) for tag, m in mounts.shares(plan.mounts) if m[0] == "share"]
        root = [m for m in plan.mounts if m[0] == "root"]
        if root:  # mountRootfs: the container's rootfs is the guest's root
            fstab.append(f'"{mounts.ROOT_TAG}:/:9pfs:{"0x1" if root[0][3] else ""}::"')
        elif volumes and not plan.initrd:
            fstab.append('"none:/:ramfs"')  # vfscore mounts nothing until / exists
        fstab += [fstab_entry(tag, mount[2], mount[3]) for tag, mount in volumes]
        if fstab:
            params.append("vfs.fstab=[ " + " ".join(fstab) + " ]")
        if plan.env and new:
            params.append("env.vars=[ " + " ".join(quote(e) for e in plan.env) + " ]")
        words = params + ["--"] + [quote(a) for a in plan.args] if plan.args else params
        return " ".join(words)


GUEST = Unikraft()
