"""Containerfile subset: parse text into instructions, then fold them into a recipe.

Supported: ``FROM scratch``, ``COPY [--chmod=MODE] SRC... DST``, ``LABEL``,
``ENV``, ``CMD``, ``ENTRYPOINT``, ``WORKDIR``; ``#`` comments and ``\\``
continuations. Both steps are pure: nothing here touches the build context.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from dataclasses import dataclass

from ._errors import ImageBuildError

# Docker instructions we recognise but do not implement, so the error says so.
_UNSUPPORTED = frozenset(
    {
        "RUN",
        "ADD",
        "ARG",
        "EXPOSE",
        "VOLUME",
        "USER",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
        "MAINTAINER",
    }
)
_CHMOD_RE = re.compile(r"^[0-7]{3,4}$")


@dataclass(frozen=True, slots=True)
class Instruction:
    """One logical line: keyword (upper case), its argument text, first line number."""

    keyword: str
    args: str
    line: int


@dataclass(frozen=True, slots=True)
class CopyStep:
    """``COPY``: sources relative to the context, destination absolute in the image."""

    sources: tuple[str, ...]
    dest: str
    chmod: int | None
    line: int


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything the Containerfile asks for, in image terms."""

    copies: tuple[CopyStep, ...]
    labels: tuple[tuple[str, str], ...]
    env: tuple[tuple[str, str], ...]
    cmd: tuple[str, ...] | None
    entrypoint: tuple[str, ...] | None
    workdir: str
    workdirs: tuple[str, ...]


def split_lines(text: str) -> list[Instruction]:
    """Join continuations, drop comments and blanks, split off the keyword."""
    out: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # also inside a continuation, as docker does
        if not parts:
            start = number
        if stripped.endswith("\\"):
            parts.append(stripped[:-1].strip())
            continue
        parts.append(stripped)
        out.append(_instruction(" ".join(p for p in parts if p), start))
        parts = []
    if parts:
        out.append(_instruction(" ".join(p for p in parts if p), start))
    return out


def _instruction(logical: str, line: int) -> Instruction:
    keyword, _, args = logical.partition(" ")
    return Instruction(keyword=keyword.upper(), args=args.strip(), line=line)


def parse_containerfile(text: str, source: str = "Containerfile") -> Recipe:
    """Parse a Containerfile into a :class:`Recipe`; errors name ``source:line``."""
    instructions = split_lines(text)
    if not instructions:
        raise ImageBuildError(f"{source}: no instructions (expected FROM scratch)")
    copies: list[CopyStep] = []
    labels: dict[str, str] = {}
    env: dict[str, str] = {}
    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    workdir = "/"
    workdirs: list[str] = []
    seen_from = False
    for ins in instructions:
        where = f"{source}:{ins.line}"
        kw = ins.keyword
        if kw == "FROM":
            if seen_from:
                raise ImageBuildError(
                    f"{where}: only one FROM is supported (no multi-stage builds)"
                )
            _check_from(ins.args, where)
            seen_from = True
            continue
        if kw not in _HANDLED:
            if kw in _UNSUPPORTED:
                raise ImageBuildError(f"{where}: unsupported instruction {kw!r}")
            raise ImageBuildError(f"{where}: unknown instruction {kw!r}")
        if not seen_from:
            raise ImageBuildError(
                f"{where}: {kw} before FROM (the first instruction must be FROM scratch)"
            )
        if not ins.args:
            raise ImageBuildError(f"{where}: {kw} needs arguments")
        if kw == "COPY":
            copies.append(_parse_copy(ins.args, workdir, ins.line, where))
        elif kw == "LABEL":
            labels.update(_parse_pairs(ins.args, where))
        elif kw == "ENV":
            env.update(_parse_pairs(ins.args, where))
        elif kw == "CMD":
            cmd = _parse_command(ins.args, kw, where)
        elif kw == "ENTRYPOINT":
            entrypoint = _parse_command(ins.args, kw, where)
        elif kw == "WORKDIR":
            workdir = posixpath.normpath(posixpath.join(workdir, ins.args))
            workdir = "/" + workdir.lstrip("/")
            workdirs.append(workdir)
    if not seen_from:
        raise ImageBuildError(f"{source}: no FROM instruction (expected FROM scratch)")
    return Recipe(
        copies=tuple(copies),
        labels=tuple(labels.items()),
        env=tuple(env.items()),
        cmd=cmd,
        entrypoint=entrypoint,
        workdir=workdir,
        workdirs=tuple(workdirs),
    )


_HANDLED = frozenset({"COPY", "LABEL", "ENV", "CMD", "ENTRYPOINT", "WORKDIR"})


def _check_from(args: str, where: str) -> None:
    words = args.split()
    ok = (len(words) == 1 or (len(words) == 3 and words[1].upper() == "AS")) and words[
        0
    ].lower() == "scratch"
    if not ok:
        raise ImageBuildError(
            f"{where}: only 'FROM scratch' is supported, got {('FROM ' + args).strip()!r}"
        )


def _parse_copy(args: str, workdir: str, line: int, where: str) -> CopyStep:
    words = _json_array(args, "COPY", where)
    if words is None:
        words = args.split()
    chmod: int | None = None
    while words and words[0].startswith("--"):
        flag = words.pop(0)
        name, _, value = flag.partition("=")
        if name != "--chmod":
            raise ImageBuildError(
                f"{where}: unsupported COPY flag {flag!r} (only --chmod)"
            )
        if not _CHMOD_RE.match(value):
            raise ImageBuildError(
                f"{where}: invalid --chmod value {value!r} (octal, e.g. 0755)"
            )
        chmod = int(value, 8)
    if len(words) < 2:
        raise ImageBuildError(
            f"{where}: COPY needs at least one source and a destination: {args!r}"
        )
    *sources, dest = words
    for word in words:
        if "\0" in word:  # no path holds one (the JSON form can spell it \u0000)
            raise ImageBuildError(f"{where}: COPY path contains a NUL byte: {word!r}")
    trailing = dest.endswith(("/", "/.")) or dest in (".", "..")
    resolved = posixpath.normpath(posixpath.join(workdir, dest))
    resolved = "/" + resolved.lstrip("/")
    if trailing and resolved != "/":
        resolved += "/"
    return CopyStep(sources=tuple(sources), dest=resolved, chmod=chmod, line=line)


def _json_array(args: str, keyword: str, where: str) -> list[str] | None:
    """The exec (JSON) form's words, or None for the shell form.

    Arguments that start with ``[`` are meant as the JSON form: docker quietly
    runs a broken one (``CMD ["hello"``) as a shell command, which a unikernel
    image has no shell for, so here it is an error naming the text.
    """
    if not args.startswith("["):
        return None
    try:
        value = json.loads(args)
    except (json.JSONDecodeError, RecursionError):
        value = None
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    shown = args if len(args) <= 80 else args[:77] + "..."
    raise ImageBuildError(
        f"{where}: {keyword} starts with '[' but is not a JSON array of strings: {shown!r}"
    )


def _parse_command(args: str, keyword: str, where: str) -> tuple[str, ...]:
    exec_form = _json_array(args, keyword, where)
    if exec_form is not None:
        return tuple(exec_form)
    return ("/bin/sh", "-c", args)


def _parse_pairs(args: str, where: str) -> list[tuple[str, str]]:
    """``k=v k2="v 2"``; or the legacy ``k value with spaces`` form."""
    first = args.split(None, 1)
    if "=" not in first[0]:
        if len(first) < 2:
            raise ImageBuildError(f"{where}: missing value for {first[0]!r}")
        return [(first[0], first[1].strip())]
    try:
        tokens = shlex.split(args)
    except ValueError as exc:
        raise ImageBuildError(
            f"{where}: cannot parse {args!r}: {str(exc).lower()}"
        ) from None
    pairs: list[tuple[str, str]] = []
    for token in tokens:
        key, eq, value = token.partition("=")
        if not eq or not key:
            raise ImageBuildError(f"{where}: expected key=value, got {token!r}")
        pairs.append((key, value))
    return pairs
