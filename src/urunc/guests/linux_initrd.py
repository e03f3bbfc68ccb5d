"""Write an initramfs (newc cpio) from a container rootfs plus extra entries.

A Linux guest boots with the container's rootfs as its initramfs, overlaid
with urunc's init and its inputs under ``/.urunc/`` (see
``guests/linux/README.md`` for that protocol and ``urunc_init_entries``
below for its encoder).

The archive is deterministic: entries sorted by path, mtime 0, inode numbers
counted from 1. The rootfs is walked without following symlinks; symlinks are
archived as symlinks, hard links as independent copies, device nodes and
sockets are left out (the guest's devtmpfs provides devices). Owners and
permission bits of rootfs entries are kept. Extra entries replace rootfs
entries of the same path, and missing parent directories of extra entries
are added (mode 0755, root-owned).

Compression is off by default: the kernel unpacks an uncompressed archive
fastest, and under TCG the CPU, not the read, is the bottleneck.
"""

from __future__ import annotations

import os
import stat
import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence

from urunc._errors import HostError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import TypeAlias

    Path: TypeAlias = str | os.PathLike[str]  # paths as str or pathlib's (not imported: ~7 ms)

_NEWC_MAGIC = b"070701"
_TRAILER = "TRAILER!!!"
_MAX_FILE = 0xFFFFFFFF
# Files smaller than this are read into the output buffer; larger ones are
# copied by the kernel (sendfile) straight from file to file.
_INLINE_LIMIT = 256 * 1024
_FLUSH_AT = 1024 * 1024


class InitrdEntry:
    """One path in the archive, absolute inside the guest (``/.urunc/init``).

    Exactly one of ``data`` (file contents), ``source`` (a host file to copy)
    or ``symlink_target`` may be set; none of them makes a directory. ``mode``
    holds permission bits only (the type follows from the fields). Immutable.
    (A plain class: ``dataclasses`` costs ~4.5 ms to import on create's path.)
    """

    __slots__ = ("path", "mode", "data", "source", "symlink_target", "uid", "gid")
    path: str
    mode: int
    data: bytes | None
    source: Path | None
    symlink_target: str | None
    uid: int
    gid: int

    def __init__(self, path: str, mode: int = 0o755, data: bytes | None = None, source: Path | None = None,
                 symlink_target: str | None = None, uid: int = 0, gid: int = 0) -> None:
        for name, value in (("path", path), ("mode", mode), ("data", data), ("source", source),
                            ("symlink_target", symlink_target), ("uid", uid), ("gid", gid)):
            object.__setattr__(self, name, value)
        self.__post_init__()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"InitrdEntry is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, InitrdEntry) and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __hash__(self) -> int:
        return hash(tuple(getattr(self, n) for n in self.__slots__))

    def __repr__(self) -> str:
        return f"InitrdEntry({', '.join(f'{n}={getattr(self, n)!r}' for n in self.__slots__)})"

    def __post_init__(self) -> None:
        given = sum(
            x is not None for x in (self.data, self.source, self.symlink_target)
        )
        if given > 1:
            raise ValueError(
                f"initrd entry {self.path}: data, source and symlink_target are exclusive"
            )
        if not self.path.startswith("/") or self.path == "/":
            raise ValueError(
                f"initrd entry path must be absolute and not /: {self.path!r}"
            )

    @classmethod
    def file(cls, path: str, data: bytes, mode: int = 0o644) -> InitrdEntry:
        return cls(path, mode, data=data)

    @classmethod
    def copy(cls, path: str, source: Path, mode: int | None = None) -> InitrdEntry:
        if mode is None:
            mode = stat.S_IMODE(os.stat(source).st_mode)
        return cls(path, mode, source=source)

    @classmethod
    def directory(cls, path: str, mode: int = 0o755) -> InitrdEntry:
        return cls(path, mode)

    @classmethod
    def symlink(cls, path: str, target: str) -> InitrdEntry:
        return cls(path, 0o777, symlink_target=target)


# One archive member before it is written: name (bytes, relative), st_mode
# with type bits, uid, gid, and its contents as bytes or a host path.
class _Member:
    __slots__ = ("name", "mode", "uid", "gid", "data", "source", "size")

    def __init__(self, name: bytes, mode: int, uid: int, gid: int, data: bytes = b"",
                 source: bytes | None = None, size: int = 0) -> None:
        self.name, self.mode, self.uid, self.gid = name, mode, uid, gid
        self.data, self.source, self.size = data, source, size


def write_initrd(
    out: Path,
    rootfs: Path | None,
    extra: Sequence[InitrdEntry] = (),
    *,
    compress: bool = False,
    exclude: Sequence[Path] = (),
    prefix: bytes = b"",
) -> None:
    """Write the newc archive of ``rootfs`` overlaid with ``extra`` to ``out``.

    With ``compress`` the archive is gzip-compressed (level 1), which the
    kernel also accepts. ``out`` is replaced atomically. ``prefix`` is written
    before the archive (a template job's header: 4-byte aligned, not compressed).
    """
    members: dict[bytes, _Member] = {}
    if rootfs is not None:
        if not os.path.isdir(rootfs):
            raise HostError(f"initrd rootfs {rootfs} is not a directory")
        skipped = {os.fsencode(p) for p in exclude}
        for m in _walk(os.fsencode(rootfs), b""):
            if m.source is None or m.source not in skipped:
                members[m.name] = m
    for m in _extra_members(extra):
        members[m.name] = m

    out = os.fspath(out)
    tmp = out + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        if prefix:
            os.write(fd, prefix)
        sink: _Sink = _GzipSink(fd) if compress else _Sink(fd)
        for ino, name in enumerate(sorted(members), start=1):
            _write_member(sink, ino, members[name])
        sink.put(_header(0, 0, 0, 0, 1, 0, _TRAILER.encode()))
        sink.close()  # no fsync: the initrd lives as long as its container, in the state dir
    except OSError as e:
        os.close(fd)
        os.unlink(tmp)
        raise HostError(
            f"cannot write initrd {out}: {e.strerror}", hint=str(e.filename or "")
        ) from e
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, out)


def urunc_init_entries(
    *,
    init: Path,
    args: Sequence[str | bytes],
    env: Sequence[str | bytes] = (),
    cwd: str | bytes = "/",
    net: Mapping[str, str | Sequence[str]] | None = None,
    hostname: str | None = None,
    user: tuple[int, int, Sequence[int]] | None = None,
    terminal: bool = False,
    modules: Path | None = None,
    module_names: Sequence[str] | None = None,
    root: str | None = None,
) -> list[InitrdEntry]:
    """The ``/.urunc/`` entries that drive ``guests/linux/init.c``.

    ``net`` maps keys of ``/.urunc/net`` (``ip``, ``gw``, ``mac``, ``mtu``,
    ``dns``, ``search``, ``if``) to a value or, for repeatable keys, a list.
    ``modules`` is a directory of ``.ko`` files with an ``order`` file (and
    optionally ``deps``, as ``guests/linux/collect-modules.py`` writes);
    ``module_names`` narrows it to those modules and their dependencies, in
    ``order``'s order.
    ``root`` is the ``/.urunc/root`` line (``FSTYPE SOURCE [OPTIONS]``) when
    the rootfs is mounted instead of being the initramfs itself.
    """
    if not args:
        raise ValueError("urunc init needs at least argv[0]")
    entries = [
        InitrdEntry.copy("/.urunc/init", init, 0o755),
        InitrdEntry.file("/.urunc/args", _nul_join(args)),
        InitrdEntry.file("/.urunc/env", _nul_join(env)),
        InitrdEntry.file("/.urunc/cwd", os.fsencode(cwd)),
    ]
    if net:
        entries.extend(net_entries(net))
    if hostname:
        entries.append(InitrdEntry.file("/.urunc/hostname", hostname.encode()))
    if user is not None:
        uid, gid, groups = user
        entries.append(
            InitrdEntry.file(
                "/.urunc/user", " ".join(map(str, (uid, gid, *groups))).encode()
            )
        )
    if terminal:
        entries.append(InitrdEntry.file("/.urunc/tty", b""))
    if root is not None:
        entries.append(InitrdEntry.file("/.urunc/root", root.encode() + b"\n"))
    if modules is not None:
        entries.extend(module_entries(modules, module_names))
    return entries


def module_entries(modules: Path, module_names: Sequence[str] | None = None) -> list[InitrdEntry]:
    """``/.urunc/modules/``: the ``.ko`` files of MODULES (``module_names`` and what they need,
    or all) and their ``order``."""
    order = _read_text(os.path.join(modules, "order")).split()
    if module_names is not None:
        wanted = module_closure(modules, module_names)
        order = [n for n in order if n in wanted]
    return [InitrdEntry.file("/.urunc/modules/order", "".join(n + "\n" for n in order).encode()),
            *(InitrdEntry.copy(f"/.urunc/modules/{n}", os.path.join(modules, n), 0o644) for n in order)]


def net_entries(net: Mapping[str, str | Sequence[str]]) -> list[InitrdEntry]:
    """``/.urunc/net``: ``key=value`` lines, repeatable keys given as lists."""
    lines = []
    for key, value in net.items():
        for v in [value] if isinstance(value, str) else value:
            if "\n" in v or "\n" in key or "=" in key:
                raise ValueError(f"bad guest network setting {key}={v!r}")
            lines.append(f"{key}={v}\n")
    return [InitrdEntry.file("/.urunc/net", "".join(lines).encode())]


def append_entries(initrd: Path, extra: Sequence[InitrdEntry]) -> None:
    """Append a second archive holding EXTRA to INITRD.

    The kernel unpacks concatenated newc archives in order (later entries win),
    each starting on a 4-byte boundary after zero padding: what ``start`` adds
    once the network is known costs a few hundred bytes, not a rewrite.
    """
    initrd = os.fspath(initrd)
    small = initrd + ".append"
    write_initrd(small, None, extra)
    try:
        with open(small, "rb") as f:
            data = f.read()
    finally:
        os.unlink(small)
    fd = os.open(initrd, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        os.write(fd, b"\0" * (-size % 4) + data)
    finally:
        os.close(fd)


def module_closure(modules: Path, names: Sequence[str]) -> set[str]:
    """``names`` (``.ko`` optional) plus what ``modules/deps`` says they need."""
    wanted = {n if n.endswith(".ko") else n + ".ko" for n in names}
    deps_file = os.path.join(modules, "deps")
    if os.path.exists(deps_file):
        for line in _read_text(deps_file).splitlines():
            name, _, needs = line.partition(":")
            if name in wanted:
                wanted.update(needs.split())
    return wanted


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def _nul_join(items: Iterable[str | bytes]) -> bytes:
    out = bytearray()
    for item in items:
        b = os.fsencode(item) if isinstance(item, str) else item
        if b"\0" in b:
            raise ValueError(f"NUL byte in guest argument or variable {item!r}")
        out += b + b"\0"
    return bytes(out)


def _walk(top: bytes, prefix: bytes) -> Iterator[_Member]:
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        name = prefix + e.name
        st = e.stat(follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            yield _Member(name, mode, st.st_uid, st.st_gid)
            yield from _walk(e.path, name + b"/")
        elif stat.S_ISREG(mode):
            if st.st_size > _MAX_FILE:
                raise HostError(f"file too large for an initrd: {os.fsdecode(e.path)}")
            yield _Member(
                name, mode, st.st_uid, st.st_gid, source=e.path, size=st.st_size
            )
        elif stat.S_ISLNK(mode):
            yield _Member(name, mode, st.st_uid, st.st_gid, data=os.readlink(e.path))
        elif stat.S_ISFIFO(mode):
            yield _Member(name, mode, st.st_uid, st.st_gid)
        # Device nodes and sockets are skipped.


def tree_digest(rootfs: str, exclude: Sequence[str] = ()) -> str:
    """SHA-256 of what ``write_initrd`` would pack from ROOTFS: every entry's path, type and
    permission bits, owner, size, mtime (ns) and symlink target, in the archive's order.
    An image's files do not change under the same sizes and times (containerd unpacks each
    layer once); a file rewritten in place with its size and mtime forged back is not seen."""
    import _sha256  # type: ignore[import-not-found]  # hashlib's OpenSSL costs ~2.5 ms to import

    skipped = {os.fsencode(p) for p in exclude}
    digest = _sha256.sha256()
    for m in _walk(os.fsencode(rootfs), b""):
        if m.source is not None and m.source in skipped:
            continue
        st = os.lstat(m.source) if m.source is not None else None
        digest.update(b"%s\0%o\0%d\0%d\0%d\0%d\0%s\0" % (m.name, m.mode, m.uid, m.gid, m.size,
                                                         st.st_mtime_ns if st else 0, m.data))
    return str(digest.hexdigest())


def _extra_members(extra: Sequence[InitrdEntry]) -> Iterator[_Member]:
    given = {e.path.strip("/") for e in extra}
    parents: set[str] = set()
    for e in extra:
        parts = e.path.strip("/").split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parents.add("/".join(parts[:i]))
    for p in sorted(parents - given):
        yield _Member(os.fsencode(p), stat.S_IFDIR | 0o755, 0, 0)
    for e in extra:
        name = os.fsencode(e.path.strip("/"))
        perm = e.mode & 0o7777
        if e.symlink_target is not None:
            yield _Member(
                name,
                stat.S_IFLNK | 0o777,
                e.uid,
                e.gid,
                data=os.fsencode(e.symlink_target),
            )
        elif e.data is not None:
            yield _Member(name, stat.S_IFREG | perm, e.uid, e.gid, data=e.data)
        elif e.source is not None:
            src = os.fsencode(e.source)
            yield _Member(
                name,
                stat.S_IFREG | perm,
                e.uid,
                e.gid,
                source=src,
                size=os.stat(src).st_size,
            )
        else:
            yield _Member(name, stat.S_IFDIR | perm, e.uid, e.gid)


def _header(
    ino: int, mode: int, uid: int, gid: int, nlink: int, size: int, name: bytes
) -> bytes:
    namesize = len(name) + 1
    fields = (ino, mode, uid, gid, nlink, 0, size, 0, 0, 0, 0, namesize, 0)
    head = _NEWC_MAGIC + b"".join(b"%08X" % f for f in fields) + name + b"\0"
    return head + b"\0" * (-len(head) % 4)


def _write_member(sink: _Sink, ino: int, m: _Member) -> None:
    if m.source is None:
        nlink = 2 if stat.S_ISDIR(m.mode) else 1
        sink.put(_header(ino, m.mode, m.uid, m.gid, nlink, len(m.data), m.name))
        sink.put(m.data + b"\0" * (-len(m.data) % 4))
        return
    with open(m.source, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size > _MAX_FILE:
            raise HostError(f"file too large for an initrd: {os.fsdecode(m.source)}")
        sink.put(_header(ino, m.mode, m.uid, m.gid, 1, size, m.name))
        sink.put_file(f.fileno(), size)
        sink.put(b"\0" * (-size % 4))


class _Sink:
    """Buffered writer to a raw fd; big files go by sendfile."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = bytearray()

    def put(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= _FLUSH_AT:
            self.flush()

    def put_file(self, src: int, size: int) -> None:
        if size < _INLINE_LIMIT:
            data = _read_exact(src, size)
            self.put(data)
            return
        self.flush()
        offset = 0
        while offset < size:
            n = os.sendfile(self.fd, src, offset, size - offset)
            if n == 0:
                raise OSError(0, "file shrank while archiving")
            offset += n

    def flush(self) -> None:
        view = memoryview(self.buf)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        view.release()
        self.buf.clear()

    def close(self) -> None:
        # The kernel reads the archive in 512-byte blocks; pad like cpio does.
        self.put(b"\0" * (-self.written_size() % 512))
        self.flush()

    def written_size(self) -> int:
        return os.lseek(self.fd, 0, os.SEEK_CUR) + len(self.buf)


class _GzipSink(_Sink):
    def __init__(self, fd: int) -> None:
        super().__init__(fd)
        self.z = zlib.compressobj(1, zlib.DEFLATED, 31)
        self.raw_size = 0

    def put(self, data: bytes) -> None:
        self.raw_size += len(data)
        self.buf += self.z.compress(data)
        if len(self.buf) >= _FLUSH_AT:
            self.flush()

    def put_file(self, src: int, size: int) -> None:
        remaining = size
        while remaining:
            chunk = _read_exact(src, min(remaining, _FLUSH_AT))
            self.put(chunk)
            remaining -= len(chunk)

    def close(self) -> None:
        self.put(b"\0" * (-self.raw_size % 512))
        self.buf += self.z.flush()
        self.flush()


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = os.read(fd, remaining)
        if not chunk:
            raise OSError(0, "file shrank while archiving")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
