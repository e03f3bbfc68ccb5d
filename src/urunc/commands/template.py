"""urunc template create|list|rm: the Linux guest templates containers start from.

    urunc template create [--bundle DIR]   make the templates DIR's container would use; prints their keys
    urunc template list [--format json]    KEY, memory, vCPUs, card, shares, size, last use
    urunc template rm KEY... | --all       remove; running guests keep their private copy

``create`` takes a bundle because a template is keyed by the container's shape
(memory and vCPUs from its limits, a network card when it joins a network
namespace, its 9p shares): the bundle says it exactly. Containers make the
template they need on first use anyway when ``[templates] enabled = true``
(urunc/templates.py).
"""

from __future__ import annotations

import os
import sys

from urunc import _errors

TYPE_CHECKING = False
if TYPE_CHECKING:
    from urunc.cli import Args, Context


def run(ctx: Context, args: Args) -> int:
    from urunc import config

    if not args.positional:
        raise _errors.UsageError("usage: urunc template create [--bundle DIR] | list [--format json] | "
                                 "rm KEY... | rm --all")
    action, rest = args.positional[0], args.positional[1:]
    _enabled, directory, limit = config.load(ctx.root).templates()
    if action == "list":
        return _list(directory, args.value("format") or "table")
    if action == "rm":
        from urunc import templates

        keys = [key for key, *_ in templates.entries(directory)] if args.flag("all") else rest
        if not keys and not args.flag("all"):
            raise _errors.UsageError("template rm needs a KEY or --all")
        for key in keys:
            templates.remove(directory, key)
        return 0
    if action == "create":
        return _create(ctx, args, directory, limit)
    raise _errors.UsageError(f"unknown template command {action!r} (create, list or rm)")


def _create(ctx: Context, args: Args, directory: str, limit: int) -> int:
    import tempfile

    from urunc import config, guests, templates
    from urunc.oci import spec as _spec
    from urunc.unikernel import config as _ucfg
    from urunc.unikernel import plan as _plan

    spec = _spec.load(args.value("bundle") or os.getcwd())
    ucfg = _ucfg.detect(spec.annotations, spec.rootfs)
    if ucfg is None:
        raise _errors.UsageError(f"bundle {spec.bundle} is not a unikernel container (no urunc annotations)")
    with tempfile.TemporaryDirectory(prefix="urunc-template-") as scratch:
        plan = _plan.build("template", spec, ucfg, config.load(ctx.root), scratch)
        guest = guests.get(plan.guest)
        if not guest.templates:
            raise _errors.NotSupported(f"guest type {guest.name} does not start from templates")
        if not plan.template:
            plan = plan.replace(template=directory, template_limit_mib=limit)
        why = templates.unusable(plan)
        if why:
            raise _errors.NotSupported(f"this container cannot start from a template: {why}")
        made = templates.ensure(plan, guest)
    sys.stdout.write("".join(os.path.basename(where) + "\n" for where in made.values()))
    return 0


def _list(directory: str, fmt: str) -> int:
    import time

    from urunc import _jsonlite, templates

    rows = []
    for key, meta, why, size, last in templates.entries(directory):
        facts = (meta or {}).get("facts", {})
        rows.append({"key": key, "memory_mib": facts.get("memory_mib"), "vcpus": facts.get("vcpus"),
                     "net": facts.get("net"), "shares": facts.get("shares"), "bytes": size,
                     "created": (meta or {}).get("created"),
                     "last_used": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(last)), "problem": why})
    if fmt == "json":
        sys.stdout.write(_jsonlite.dumps(rows) + "\n")
        return 0
    if fmt != "table":
        raise _errors.UsageError(f"unknown format {fmt!r} (table or json)")
    sys.stdout.write(f"{'KEY':<34}{'MEMORY':>8}{'VCPUS':>6}{'NET':>5}{'SHARES':>7}{'SIZE':>9}  LAST USED\n")
    for row in rows:
        megabytes = f"{row['bytes'] // (1024 * 1024)}M"
        note = f"  damaged: {row['problem']}" if row["problem"] else ""
        sys.stdout.write(f"{row['key']:<34}{row['memory_mib'] or '-':>8}{row['vcpus'] or '-':>6}"
                         f"{'yes' if row['net'] else 'no':>5}{row['shares'] if row['shares'] is not None else '-':>7}"
                         f"{megabytes:>9}  {row['last_used']}{note}\n")
    return 0
