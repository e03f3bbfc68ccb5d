"""urunc-build's Containerfile subset and its COPY paths, through build_image up to the archive.

The context (made once per run) holds files, a directory, symlinks inside it and symlinks out of
it, and a FIFO; beside it lies a directory the build must never read. Input: the Containerfile.
Correct result: a layer whose paths are relative and normal, whose files are read from inside the
context only (the file guard sees every open), and whose /urunc.json decodes back to the labels.
Error: ImageBuildError, one line.
"""

from __future__ import annotations

import io
import os
import posixpath
from pathlib import Path

from _fuzzlib import fresh, guard, one_line, workdir, write

from urunc.image import _layer, decode_urunc_json, parse_containerfile
from urunc.image._build import build_image
from urunc.image._errors import ImageBuildError
from urunc.image._urunc_json import URUNC_JSON, encode_urunc_json, urunc_labels

_NO_OUTPUT = "output directory does not exist"


def _context() -> Path:
    ctx = Path(workdir()) / "context"
    if ctx.is_dir():
        return ctx
    outside = Path(workdir()) / "outside"
    outside.mkdir()
    write(str(outside / "secret"), b"secret\n")
    ctx.mkdir()
    write(str(ctx / "kernel"), b"\x7fELF kernel")
    write(str(ctx / "initrd"), b"initrd")
    (ctx / "dir" / "sub").mkdir(parents=True)
    write(str(ctx / "dir" / "a"), b"a")
    write(str(ctx / "dir" / "sub" / "b"), b"b")
    write(str(ctx / ".hidden"), b"h")
    os.symlink("kernel", ctx / "link-in")
    os.symlink("../outside/secret", ctx / "link-out")
    os.symlink("../outside", ctx / "dir-out")
    os.symlink("/etc", ctx / "abs-out")
    os.symlink("sub", ctx / "dir" / "sublink")
    os.mkfifo(ctx / "fifo")
    return ctx


def _normal(path: str) -> bool:
    return not path.startswith("/") and all(p not in ("", ".", "..") for p in path.split("/"))


def one(data: bytes) -> None:
    ctx = _context()
    root = os.path.realpath(ctx)
    with fresh("cf") as tmp:
        cf = Path(tmp) / "Containerfile"
        write(str(cf), data)
        with guard():
            try:
                build_image(cf, ctx, "fuzz:1", output=Path(tmp) / "missing" / "out.tar", epoch=0)
            except ImageBuildError as exc:
                message = one_line(exc)
            else:
                raise AssertionError("built into a directory that does not exist")
            if _NO_OUTPUT not in message:
                return
            # Everything before the archive passed: lay the layer out again and check it.
            recipe = parse_containerfile(data.decode("utf-8"))
            table = _layer.resolve_copies(recipe.copies, ctx)
            for w in recipe.workdirs:
                table.ensure_dir(w.strip("/"))
            labels = urunc_labels(recipe.labels)
            _layer.write_layer(table.entries(), io.BytesIO(), 0)
    assert recipe.workdir.startswith("/") and posixpath.normpath(recipe.workdir) == recipe.workdir
    for step in recipe.copies:
        assert step.dest.startswith("/") and ".." not in step.dest.split("/"), step.dest
    for entry in table.entries():
        assert _normal(entry.path), entry.path
        if entry.source is not None:
            real = os.path.realpath(entry.source.parent) if entry.kind == _layer.SYMLINK else \
                os.path.realpath(entry.source)
            assert real == root or real.startswith(root + "/"), f"{entry.path} from {entry.source} outside"
    if labels:
        assert decode_urunc_json(encode_urunc_json(labels)) == labels
    assert table.get(URUNC_JSON) is None or not labels
