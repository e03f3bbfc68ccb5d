"""Templates: a guest booted once and frozen where it waits for its job (warm start).

A cold Linux guest spends about 2 s (TCG) in its kernel's boot. A template is
that boot done once, by a guest that can take its job after booting (a Linux
guest: ``guests/linux_template.py``) on a monitor that can snapshot a running
VM and restore it (QEMU: ``Monitor.snapshot``; the guest's RAM stays in the
template's memory file, the snapshot holds only the devices' state). A
container started from a template restores it with the memory file mapped
*private*: every guest restored from it shares the template's pages until it
writes one.

A template depends on the guest kernel, its init and modules, the monitor
binary, and the VM's shape (memory, vCPUs, accelerator, machine, kernel command
line, and its devices: a network card or not, the number of 9p shares, the exec
ports). The key is a hash of all of it; ``meta.json`` holds the same facts and
is checked against the container's before a template is used, with the owner
and modes of its files, the memory file's size and identity, and the device
state's SHA-256: a damaged or foreign template is refused in one line (in the
log) and the container boots cold.

Layout (``[templates] dir``, default /var/lib/urunc/templates, mode 0700, files 0600)::

    KEY/meta.json  KEY/ram  KEY/state   one template, renamed into place whole
    .new-KEY-PID/                       one being made (removed on failure)
    .lock                               held while one is made or removed

The directory's size is bounded (``[templates] max_size_mb``): the least
recently used templates go first; one that cannot fit is not made.
"""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from urunc.guests import Guest
    from urunc.unikernel.plan import Plan

FORMAT = 1
MAX_META = 64 * 1024
MIB = 1024 * 1024
TEMPLATE_MAC = "02:75:72:75:6e:63"  # the template's card; the job gives the container its own


class TemplateError(_errors.HostError):
    """A template that cannot be used or made; the container boots cold."""


def _identity(path: str) -> list[Any]:
    st = os.stat(path)
    return [os.path.realpath(path), st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def facts_of(plan: Plan, guest: Guest) -> dict[str, Any]:
    """Everything a template without a network card depends on (its key hashes this); the
    one with a card differs only in ``net`` (``ensure``)."""
    from urunc.unikernel import mounts

    try:
        identities = [_identity(path) for path in [plan.kernel, *guest.template_files(plan), plan.monitor_path]]
    except OSError as exc:
        raise TemplateError(f"template: cannot read {exc.filename}: {exc.strerror}") from None
    return {
        "format": FORMAT, "files": identities, "guest": guest.name, "monitor": plan.monitor,
        "memory_mib": plan.memory_mib, "vcpus": plan.vcpus, "accel": plan.accel, "platform": guest.platform,
        "cmdline": guest.cmdline(plan, None), "net": False, "shares": len(mounts.shares(plan.mounts)),
        "exec_ports": plan.exec_ports, "rootfs": guest.template_rootfs(plan),
    }


def key_of(facts: dict[str, Any]) -> str:
    from urunc import _jsonlite

    return _sha256(_jsonlite.dumps(facts).encode())[:32]


def _sha256(data: bytes) -> str:
    import _sha256  # type: ignore[import-not-found]  # hashlib costs ~2.5 ms to import (OpenSSL)

    return str(_sha256.sha256(data).hexdigest())


def unusable(plan: Plan) -> str:
    """Why this container cannot start from a template ("" when it can)."""
    if plan.block:
        return "its root is a block device"
    if not plan.exec_ports:
        return "its monitor has no channel to send the guest its job"
    if plan.uid != 0 or plan.gid != 0:
        return f"its monitor runs as {plan.uid}:{plan.gid} and cannot map a template only root may write"
    return ""


def ensure(plan: Plan, guest: Guest) -> dict[str, str]:
    """The templates PLAN's container can start from, made now where there are none yet:
    ``snapshot``, without a network card, and for a container in a network namespace also
    ``snapshot_card``: eth0 may be there at start (CNI runs between create and start), and
    start takes the one that matches (``for_network``)."""
    facts = facts_of(plan, guest)
    found = {"snapshot": find_or_make(plan, guest, facts)}
    if plan.netns != "none":
        found["snapshot_card"] = find_or_make(plan, guest, {**facts, "net": True})
    return found


def choose(plan: Plan, guest: Guest) -> Plan:
    """At create: PLAN naming its templates (``ensure``); or PLAN unchanged, to boot cold,
    with the reason in the log."""
    from urunc import _log

    why = unusable(plan)
    if not why:
        try:
            return plan.replace(files={**plan.files, **ensure(plan, guest)})
        except _errors.HostError as exc:  # TemplateError, or the monitor's own while making one
            why = str(exc)
    _log.warning(f"container {plan.container_id}: no template: {why}; booting cold")
    return plan


def for_network(plan: Plan, has_network: bool) -> Plan:
    """At start, once the network is known: the template whose devices match it."""
    files = dict(plan.files)
    card = files.pop("snapshot_card", "")
    if has_network and card and files.get("snapshot"):
        files["snapshot"] = card
    return plan.replace(files=files)


# ---- the store ---------------------------------------------------------------------------


def _check_owned(path: str, what: str, kind: int) -> os.stat_result:
    import stat

    try:
        st = os.lstat(path)
    except OSError as exc:
        raise TemplateError(f"{what} {path}: {exc.strerror}") from None
    if stat.S_IFMT(st.st_mode) != kind:
        raise TemplateError(f"{what} {path} is not a {'directory' if kind == stat.S_IFDIR else 'regular file'}")
    if st.st_uid != 0 or st.st_mode & 0o022:
        raise TemplateError(f"{what} {path} is not owned by root or is writable by others")
    return st


def ensure_dir(directory: str) -> None:
    import stat

    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise TemplateError(f"templates directory {directory}: {exc.strerror}") from None
    _check_owned(directory, "templates directory", stat.S_IFDIR)


def load(directory: str, key: str, facts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The template KEY's meta, once every check passed; TemplateError says which failed."""
    import stat

    from urunc import _jsonlite
    from urunc._files import read_regular

    where = os.path.join(directory, key)
    _check_owned(where, "template", stat.S_IFDIR)
    try:
        data = read_regular(os.path.join(where, "meta.json"), MAX_META, nofollow=True)
    except FileNotFoundError:
        raise TemplateError(f"template {key} has no meta.json") from None
    except OSError as exc:
        raise TemplateError(f"template {key}: cannot read meta.json: {exc.strerror}") from None
    meta = _jsonlite.loads_object(data, f"meta.json of template {key}", TemplateError)
    if meta.get("key") != key or meta.get("format") != FORMAT:
        raise TemplateError(f"template {key}: meta.json is for another key or format")
    recorded = meta.get("facts")
    if facts is not None and recorded != facts:
        differ = sorted(k for k in facts if recorded.get(k) != facts[k]) if isinstance(recorded, dict) else []
        raise TemplateError(f"template {key} was made for other {', '.join(differ) or 'facts'} than this container's")
    ram = _check_owned(os.path.join(where, "ram"), "template memory", stat.S_IFREG)
    if [ram.st_size, ram.st_mtime_ns, ram.st_ino] != meta.get("ram"):
        raise TemplateError(f"template {key}: its memory file changed after it was made")
    path = os.path.join(where, "state")
    st = _check_owned(path, "template state", stat.S_IFREG)
    if not isinstance(meta.get("state_bytes"), int) or st.st_size != meta["state_bytes"]:
        raise TemplateError(f"template {key}: its device state is {st.st_size} bytes, "
                            f"{meta.get('state_bytes')} were written")
    try:
        digest = _sha256(read_regular(path, st.st_size, nofollow=True))
    except OSError as exc:
        raise TemplateError(f"template {key}: cannot read its device state: {exc.strerror}") from None
    if digest != meta.get("state_sha256"):
        raise TemplateError(f"template {key}: its device state does not match its checksum")
    return meta


def _lock(directory: str) -> int:
    import fcntl

    fd = os.open(os.path.join(directory, ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def entries(directory: str) -> list[tuple[str, dict[str, Any] | None, str, int, float]]:
    """(key, meta or None, why it is unusable or "", bytes on disk, last use) per template."""
    out = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    for name in names:
        if name.startswith("."):
            continue
        where = os.path.join(directory, name)
        try:
            meta: dict[str, Any] | None = load(directory, name)
            why = ""
        except TemplateError as exc:
            meta, why = None, str(exc)
        out.append((name, meta, why, _disk_bytes(where), _last_use(where)))
    return out


def _disk_bytes(path: str) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _last_use(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def remove(directory: str, key: str) -> None:
    """Remove template KEY; guests restored from it keep their private mapping of its memory."""
    import shutil

    if not key or "/" in key or key.startswith(".") or len(key) > 64:
        raise _errors.UsageError(f"invalid template key {key[:64]!r}")
    where = os.path.join(directory, key)
    if not os.path.isdir(where) or os.path.islink(where):
        raise _errors.NotFound(f"template {key} does not exist")
    lock = _lock(directory)
    try:
        aside = os.path.join(directory, f".old-{key}-{os.getpid()}")
        os.rename(where, aside)  # a container being created sees it whole or not at all
        shutil.rmtree(aside, ignore_errors=True)
    finally:
        os.close(lock)


def _make_room(directory: str, wanted: int, limit: int) -> None:
    """Remove the least recently used templates until WANTED more bytes fit in LIMIT."""
    import shutil

    from urunc import _log

    found = entries(directory)
    used = sum(size for _key, _meta, _why, size, _last in found)
    for key, _meta, _why, size, _last in sorted(found, key=lambda e: e[4]):
        if used + wanted <= limit:
            break
        _log.warning(f"template {key}: removed to make room (templates limit {limit // MIB} MiB)")
        shutil.rmtree(os.path.join(directory, key), ignore_errors=True)
        used -= size
    if used + wanted > limit:
        raise TemplateError(f"a template of {wanted // MIB} MiB does not fit in the templates limit of "
                            f"{limit // MIB} MiB")


def find_or_make(plan: Plan, guest: Guest, facts: dict[str, Any]) -> str:
    """The directory of the template for FACTS (PLAN's shape), made now when there is none yet."""
    key = key_of(facts)
    directory = plan.template
    ensure_dir(directory)
    where = os.path.join(directory, key)
    if not os.path.lexists(where):
        lock = _lock(directory)
        try:
            if not os.path.lexists(where):  # another create may have made it meanwhile
                make(plan, guest, key, facts)
        finally:
            os.close(lock)
    load(directory, key, facts)  # damaged or foreign: refused, never replaced under its users
    try:
        os.utime(where)  # last use, for the size limit
    except OSError:
        pass
    return where


def make(plan: Plan, guest: Guest, key: str, facts: dict[str, Any]) -> None:
    """Boot the template VM, let the monitor snapshot it into KEY/ (renamed into place whole)."""
    import shutil

    from urunc import _log

    directory = plan.template
    _make_room(directory, plan.memory_mib * MIB + MIB, plan.template_limit_mib * MIB)
    work = os.path.join(directory, f".new-{key}-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    try:
        os.mkdir(work, 0o700)
        _make_in(plan, guest, work, key, facts)
        os.rename(work, os.path.join(directory, key))
        _fsync(directory)
    except OSError as exc:
        shutil.rmtree(work, ignore_errors=True)
        raise TemplateError(f"cannot make template {key}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    _log.warning(f"template {key}: made ({plan.memory_mib} MiB, {plan.vcpus} vCPU)")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _make_in(plan: Plan, guest: Guest, work: str, key: str, facts: dict[str, Any]) -> None:
    import shutil

    from urunc import _jsonlite, monitors
    from urunc._files import read_regular, write_atomic
    from urunc.oci import store
    from urunc.unikernel.net import NetInfo

    ram, state = os.path.join(work, "ram"), os.path.join(work, "state")
    fd = os.open(ram, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, plan.memory_mib * MIB)  # a full disk fails here, not as a SIGBUS in QEMU
    finally:
        os.close(fd)
    # The container's shape with nothing of the container: shares of an empty directory, a
    # card connected to nothing; the boot files and the monitor's sockets in a short private
    # directory of their own (a socket path holds at most 107 bytes).
    import tempfile

    scratch = tempfile.mkdtemp(prefix="urunc-template-", dir="/run" if os.path.isdir("/run") else None)
    try:
        empty = os.path.join(scratch, "empty")
        os.mkdir(empty, 0o700)
        mounts = tuple((kind, empty, *rest) for kind, _source, *rest in plan.mounts if kind in ("share", "root"))
        shape = plan.replace(container_id=f"template-{key[:12]}", state_dir=scratch, mounts=mounts, seccomp=False,
                             files={"snapshot_make": work})
        net = NetInfo(ip="", prefix=0, gateway="", mac=TEMPLATE_MAC, dns="", tap="", hostname="") \
            if facts["net"] else None
        shape = guest.write_template_boot(shape)
        monitors.get(plan.monitor).snapshot(shape, guest, net, state)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _fsync(ram)  # the guest's pages are the file's now: on disk before the rename
    _fsync(state)
    st = os.stat(ram)
    data = read_regular(state, 1 << 30, nofollow=True)
    meta = {"format": FORMAT, "key": key, "facts": facts, "ram": [st.st_size, st.st_mtime_ns, st.st_ino],
            "state_bytes": len(data), "state_sha256": _sha256(data),
            "created": store.rfc3339_now()}
    write_atomic(os.path.join(work, "meta.json"), _jsonlite.dumps(meta).encode() + b"\n")
    _fsync(os.path.join(work, "meta.json"))
