"""What the thin command modules share: the container ID, and handing a container to runc."""

from __future__ import annotations

import os

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import NoReturn

    from urunc.cli import Args, Context
    from urunc.oci.spec import Spec
    from urunc.oci.store import Container
    from urunc.unikernel.config import UnikernelConfig

_RUNC_CANDIDATES = ("/usr/sbin/runc", "/usr/bin/runc", "/usr/local/sbin/runc")
SHIM_BIN = "/usr/local/lib/urunc/shim-bin"


def container_id(args: Args, command: str) -> str:
    if len(args.positional) < 1:
        raise _errors.UsageError(f"{command} needs a container id")
    return args.positional[0]


def find_runc() -> str:
    """The real runc: $URUNC_RUNC, a standard path, or PATH minus urunc's own stand-in."""
    explicit = os.environ.get("URUNC_RUNC")
    if explicit:
        return explicit
    me = os.path.realpath(os.environ.get("URUNC_SELF", "/usr/local/bin/urunc"))
    candidates = list(_RUNC_CANDIDATES)
    for directory in os.environ.get("PATH", "").split(":"):
        if directory and directory.rstrip("/") != SHIM_BIN:
            candidates.append(os.path.join(directory, "runc"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK) and os.path.realpath(candidate) != me:
            return candidate
    raise _errors.HostError("runc not found: ordinary containers are handed to runc",
                            hint="install runc or set URUNC_RUNC")


def delegate(ctx: Context, before: Callable[[], None] | None = None) -> NoReturn:
    """Replace this process with runc, same argv: an ordinary container is runc's."""
    runc = find_runc()
    if before is not None:
        before()
    try:
        os.execv(runc, ["runc", *ctx.argv])
    except OSError as exc:
        raise _errors.HostError(f"cannot run {runc}: {exc.strerror}") from None


def unikernel_bundle(ctx: Context, args: Args, command: str) -> tuple[str, Spec, UnikernelConfig | None]:
    """For create and run: the ID, Spec and unikernel settings (None: an ordinary bundle)."""
    from urunc.oci import spec as _spec
    from urunc.oci.store import validate_id
    from urunc.unikernel import config as _ucfg

    cid = container_id(args, command)
    validate_id(cid)
    spec = _spec.load(args.value("bundle") or os.getcwd())
    return cid, spec, _ucfg.detect(spec.annotations, spec.rootfs)


def unikernel_bundle_or_delegate(ctx: Context, args: Args, command: str,
                                 before_delegate: Callable[[], None] | None = None,
                                 ) -> tuple[str, Spec, UnikernelConfig]:
    """``unikernel_bundle``, where an ordinary bundle goes to runc."""
    cid, spec, ucfg = unikernel_bundle(ctx, args, command)
    if ucfg is None:
        delegate(ctx, before_delegate)
    return cid, spec, ucfg


def ours_or_delegate(ctx: Context, args: Args, command: str) -> Container:
    """The urunc container named on the command line; runc's containers go to runc."""
    from urunc.oci.store import Container

    container = Container(ctx.root, container_id(args, command))
    kind = container.kind()
    if kind == "runc":
        delegate(ctx)
    if kind == "missing":
        raise _errors.NotFound(container.id)
    return container
