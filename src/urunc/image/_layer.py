"""The image's single layer: COPY steps resolved against the context, as a tar.

Resolution reads the context (lstat, directory listings) into a sorted table
of entries; writing streams that table into a tar with fixed owners and
times, so identical inputs give identical bytes.
"""

from __future__ import annotations

import glob
import hashlib
import io
import os
import posixpath
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._containerfile import CopyStep
from ._errors import ImageBuildError

DIR, FILE, SYMLINK = "dir", "file", "symlink"
_IMPLICIT_DIR_MODE = 0o755
_MAX_SYMLINK_HOPS = 40  # Linux's MAXSYMLINKS


@dataclass(frozen=True, slots=True)
class LayerEntry:
    """One path in the layer (``path`` relative, no leading slash)."""

    path: str
    kind: str
    mode: int
    source: Path | None = None
    data: bytes | None = None
    linkname: str = ""


class LayerTable:
    """Paths of the layer being assembled; later COPYs replace earlier entries."""

    def __init__(self) -> None:
        self._entries: dict[str, LayerEntry] = {}

    def entries(self) -> list[LayerEntry]:
        return [self._entries[k] for k in sorted(self._entries)]

    def get(self, path: str) -> LayerEntry | None:
        return self._entries.get(path)

    def is_dir(self, path: str) -> bool:
        entry = self._entries.get(path)
        return path == "" or (entry is not None and entry.kind == DIR)

    def ensure_dir(self, path: str, mode: int = _IMPLICIT_DIR_MODE) -> None:
        """Create ``path`` and its parents as directories unless they exist."""
        if path == "":
            return
        self.ensure_dir(posixpath.dirname(path))
        entry = self._entries.get(path)
        if entry is None:
            self._entries[path] = LayerEntry(path=path, kind=DIR, mode=mode)
        elif entry.kind != DIR:
            raise ImageBuildError(
                f"cannot make directory /{path}: a {entry.kind} is already there"
            )

    def resolve_file(self, path: str) -> LayerEntry | None:
        """The regular file PATH names in the layer, or None.

        Symlinks are followed as the runtime follows them in the rootfs
        (openat2 ``RESOLVE_IN_ROOT``): an absolute target starts at the
        image's root and ``..`` stops there.
        """
        parts = [p for p in path.split("/") if p not in ("", ".")]
        done: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if done:
                    done.pop()
                continue
            entry = self._entries.get("/".join([*done, part]))
            if entry is None:
                return None
            if entry.kind == SYMLINK:
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    return None
                if entry.linkname.startswith("/"):
                    done = []
                parts = [p for p in entry.linkname.split("/") if p not in ("", ".")] + parts
                continue
            if entry.kind == FILE and parts:
                return None
            done.append(part)
        entry = self._entries.get("/".join(done)) if done else None
        return entry if entry is not None and entry.kind == FILE else None

    def put(self, entry: LayerEntry) -> None:
        self.ensure_dir(posixpath.dirname(entry.path))
        old = self._entries.get(entry.path)
        if old is not None and old.kind == DIR and entry.kind == DIR:
            entry = LayerEntry(path=entry.path, kind=DIR, mode=entry.mode)
        elif old is not None and old.kind == DIR:
            raise ImageBuildError(
                f"cannot replace directory /{entry.path} with a {entry.kind}"
            )
        self._entries[entry.path] = entry


def resolve_copies(
    steps: tuple[CopyStep, ...], context: Path, source: str = "Containerfile"
) -> LayerTable:
    """Read the context and lay out every COPY step in a :class:`LayerTable`."""
    root = Path(os.path.realpath(context))
    if not root.is_dir():
        raise ImageBuildError(f"build context is not a directory: {context}")
    table = LayerTable()
    for step in steps:
        where = f"{source}:{step.line}"
        paths = [p for src in step.sources for p in _expand(src, root, where)]
        dest = step.dest.strip("/")
        into_dir = step.dest.endswith("/") or step.dest == "/" or table.is_dir(dest)
        if len(paths) > 1 and not into_dir:
            raise ImageBuildError(
                f"{where}: COPY of several sources needs a destination ending in '/': {step.dest!r}"
            )
        for path in paths:
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                _copy_tree(table, path, dest, step.chmod, where)
            else:
                target = posixpath.join(dest, path.name) if into_dir else dest
                table.put(_leaf(path, target, st, step.chmod, where))
    return table


def _expand(src: str, root: Path, where: str) -> list[Path]:
    """Context paths named by ``src`` (globs allowed), refusing any escape."""
    rel = posixpath.normpath(src.lstrip("/") or ".")
    if rel == ".." or rel.startswith("../"):
        raise ImageBuildError(
            f"{where}: COPY source escapes the build context: {src!r}"
        )
    if glob.has_magic(rel):
        found = sorted(glob.glob(rel, root_dir=root, include_hidden=True))
        if not found:
            raise ImageBuildError(
                f"{where}: COPY source matches nothing in the build context: {src!r}"
            )
        candidates = [root / f for f in found]
    else:
        candidates = [root / rel if rel != "." else root]
    for path in candidates:
        # The last component may be a symlink (copied as such); its parents must
        # resolve inside the context, or the path reaches outside through a link.
        parent = Path(os.path.realpath(path.parent)) if path != root else root
        if parent != root and root not in parent.parents:
            raise ImageBuildError(
                f"{where}: COPY source escapes the build context: {src!r}"
            )
        if not os.path.lexists(path):
            raise ImageBuildError(
                f"{where}: COPY source not found in the build context: {src!r}"
            )
    return candidates


def _copy_tree(
    table: LayerTable, directory: Path, dest: str, chmod: int | None, where: str
) -> None:
    """Copy the *contents* of ``directory`` into ``dest`` (docker semantics)."""
    mode = chmod if chmod is not None else stat.S_IMODE(directory.stat().st_mode)
    if dest:
        table.put(LayerEntry(path=dest, kind=DIR, mode=mode))
    with os.scandir(directory) as it:
        children = sorted(it, key=lambda e: e.name)
    for child in children:
        path = Path(child.path)
        target = posixpath.join(dest, child.name)
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            _copy_tree(table, path, target, chmod, where)
        else:
            table.put(_leaf(path, target, st, chmod, where))


def _leaf(
    path: Path, target: str, st: os.stat_result, chmod: int | None, where: str
) -> LayerEntry:
    if not target:
        raise ImageBuildError(f"{where}: cannot copy {path.name!r} onto /")
    if stat.S_ISLNK(st.st_mode):
        return LayerEntry(
            path=target, kind=SYMLINK, mode=0o777, linkname=os.readlink(path)
        )
    if stat.S_ISREG(st.st_mode):
        mode = chmod if chmod is not None else stat.S_IMODE(st.st_mode)
        return LayerEntry(path=target, kind=FILE, mode=mode, source=path)
    raise ImageBuildError(
        f"{where}: unsupported file type in COPY (not a file, directory or symlink): {path}"
    )


class HashingWriter:
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, sink: BinaryIO) -> None:
        self._sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._sink.write(data)
        self.sha256.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self._sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha256.hexdigest()


def tar_info(
    name: str, kind: str, mode: int, size: int, mtime: int, linkname: str = ""
) -> tarfile.TarInfo:
    """A TarInfo with the reproducible fields fixed: root owner, no names, given time."""
    info = tarfile.TarInfo(name)
    info.type = {DIR: tarfile.DIRTYPE, FILE: tarfile.REGTYPE, SYMLINK: tarfile.SYMTYPE}[
        kind
    ]
    info.mode = mode
    info.size = size if kind == FILE else 0
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.linkname = linkname
    return info


def write_layer(
    entries: list[LayerEntry], sink: BinaryIO, mtime: int
) -> tuple[str, int]:
    """Write the layer tar to ``sink``; return its digest (the diff_id) and size."""
    out = HashingWriter(sink)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
        for entry in entries:
            if entry.kind != FILE:
                tar.addfile(
                    tar_info(
                        entry.path, entry.kind, entry.mode, 0, mtime, entry.linkname
                    )
                )
            elif entry.data is not None:
                info = tar_info(entry.path, FILE, entry.mode, len(entry.data), mtime)
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                assert entry.source is not None
                with open_regular(entry.source, "COPY source") as f:
                    size = os.fstat(f.fileno()).st_size
                    try:
                        tar.addfile(tar_info(entry.path, FILE, entry.mode, size, mtime), f)
                    except OSError as exc:  # shrank while read: tarfile's "unexpected end of data"
                        raise ImageBuildError(
                            f"cannot read COPY source {str(entry.source)!r}: {str(exc).lower()}"
                        ) from None
    return out.digest, out.size


class RegularFile:
    """A regular file open for reading by fd: ``read(n)`` returns n bytes unless at the end."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def read(self, size: int) -> bytes:
        chunks = []
        while size > 0:
            chunk = os.read(self.fd, min(size, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            size -= len(chunk)
        return b"".join(chunks)

    def __enter__(self) -> RegularFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def open_regular(path: Path, what: str, *, follow: bool = False) -> RegularFile:
    """PATH opened for reading, if it is a regular file; never blocks on a FIFO or device.

    The context was checked with lstat when the COPY steps were resolved, but
    it may change before the layer is written: the open does not follow a
    final symlink (unless FOLLOW) and does not wait for a FIFO's writer, and
    fstat decides.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise ImageBuildError(
            f"cannot read {what} {str(path)!r}: {(exc.strerror or str(exc)).lower()}"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageBuildError(f"{what} {str(path)!r} is not a regular file")
    return RegularFile(fd)
