"""argv → command, in the dialect containerd's runc shim speaks.

Only the module of the command that runs is imported, so `urunc state`
pays for nothing but itself.
"""

from __future__ import annotations

import os
import sys

from urunc import _errors, _log, _timestamps

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_ROOT = "/run/urunc"

# name: (module, options taking a value, boolean flags); short aliases map to long names.
_VALUE = {"bundle", "pid-file", "console-socket", "format", "process", "process-label", "apparmor",
          "cwd", "env", "user", "additional-gids", "cap", "preserve-fds", "image-path", "work-path",
          "parent-path", "page-server", "manage-cgroups-mode", "empty-ns", "lsm-profile",
          "lsm-mount-context", "interval", "r", "resources", "memory", "cpu-quota", "cpu-period",
          "cpuset-cpus", "cpuset-mems", "pids-limit", "cpu-shares", "memory-swap",
          "memory-reservation", "kernel-memory", "kernel-memory-tcp", "blkio-weight", "l3-cache-schema",
          "mem-bw-schema", "cpu-rt-period", "cpu-rt-runtime", "cpu-idle"}
_SHORT = {"b": "bundle", "d": "detach", "f": "format", "q": "quiet", "a": "all", "p": "process",
          "e": "env", "u": "user", "t": "tty", "r": "resources", "c": "cap"}
# runc's per-command meanings of a short option that differ from the table above.
_SHORT_BY_COMMAND = {("delete", "f"): "force"}
_REPEATABLE = {"env", "cap", "additional-gids"}

COMMANDS: dict[str, str] = {
    "create": "urunc.commands.create",
    "start": "urunc.commands.start",
    "state": "urunc.commands.state",
    "kill": "urunc.commands.kill",
    "delete": "urunc.commands.delete",
    "run": "urunc.commands.run",
    "list": "urunc.commands.list",
    "ps": "urunc.commands.ps",
    "features": "urunc.commands.features",
    "exec": "urunc.commands.exec",
    "pause": "urunc.commands.pause",
    "template": "urunc.commands.template",
    "resume": "urunc.commands.pause",
    "update": "urunc.commands.unsupported",
    "checkpoint": "urunc.commands.unsupported",
    "restore": "urunc.commands.unsupported",
    "events": "urunc.commands.unsupported",
    "spec": "urunc.commands.unsupported",
}

USAGE = """usage: urunc [global options] COMMAND [options] ID

global options: --root DIR (default /run/urunc) --log FILE --log-format text|json
                --debug --systemd-cgroup --version
commands: create start state kill delete run list ps features exec pause resume
          template (create|list|rm: Linux guest templates)
          update checkpoint restore events spec (runc containers only)
"""


class Context:
    """What every command gets: global options and the raw argv (for delegation to runc)."""

    __slots__ = ("root", "log", "log_format", "debug", "systemd_cgroup", "argv", "command")

    def __init__(self, argv: Sequence[str]) -> None:
        self.root = DEFAULT_ROOT
        self.log: str | None = None
        self.log_format = "text"
        self.debug = False
        self.systemd_cgroup = False
        self.argv = list(argv)
        self.command = ""


class Args:
    """A command's options (long names) and positional arguments."""

    __slots__ = ("options", "positional")

    def __init__(self) -> None:
        self.options: dict[str, str | bool | list[str]] = {}
        self.positional: list[str] = []

    def flag(self, name: str) -> bool:
        return bool(self.options.get(name, False))

    def value(self, name: str, default: str | None = None) -> str | None:
        v = self.options.get(name, default)
        if isinstance(v, list):
            return v[-1] if v else default
        if isinstance(v, bool):
            return default
        return v


def _split_option(arg: str, command: str = "") -> tuple[str, str | None]:
    name = arg.lstrip("-")
    value = None
    if "=" in name:
        name, value = name.split("=", 1)
    return _SHORT_BY_COMMAND.get((command, name)) or _SHORT.get(name, name), value


def parse(argv: Sequence[str]) -> tuple[Context, Args]:
    ctx = Context(argv)
    args = Args()
    i = 0
    n = len(argv)
    # global options, up to the command name
    while i < n and argv[i].startswith("-") and argv[i] != "-":
        name, value = _split_option(argv[i])
        i += 1
        if name in ("root", "log", "log-format", "criu", "rootless"):
            if value is None:
                if i >= n:
                    raise _errors.UsageError(f"option --{name} needs a value")
                value = argv[i]
                i += 1
            if name == "root":
                ctx.root = value
            elif name == "log":
                ctx.log = value
            elif name == "log-format":
                if value not in ("text", "json"):
                    raise _errors.UsageError(f"unknown log format {value}")
                ctx.log_format = value
        elif name == "debug":
            ctx.debug = True
        elif name == "systemd-cgroup":
            ctx.systemd_cgroup = True
        elif name in ("version", "v"):
            ctx.command = "--version"
            return ctx, args
        elif name in ("help", "h"):
            ctx.command = "--help"
            return ctx, args
        else:
            raise _errors.UsageError(f"unknown global option {argv[i - 1]}")
    if i >= n:
        ctx.command = "--help"
        return ctx, args
    ctx.command = argv[i]
    i += 1
    positional_only = False
    while i < n:
        arg = argv[i]
        i += 1
        if ctx.command in ("exec", "ps") and args.positional:
            positional_only = True  # `exec [options] ID COMMAND [ARG...]`, `ps [options] ID [PS-ARGS...]`
        if positional_only or not arg.startswith("-") or arg == "-":
            args.positional.append(arg)
            continue
        if arg == "--":
            positional_only = True
            continue
        name, value = _split_option(arg, ctx.command)
        if name in _VALUE:
            if value is None:
                if i >= n:
                    raise _errors.UsageError(f"option --{name} needs a value")
                value = argv[i]
                i += 1
            if name in _REPEATABLE:
                existing = args.options.setdefault(name, [])
                assert isinstance(existing, list)
                existing.append(value)
            else:
                args.options[name] = value
        else:
            args.options[name] = True if value is None else value.lower() not in ("false", "0")
    return ctx, args


def main(argv: Sequence[str] | None = None) -> int:
    _timestamps.mark("cli-start")
    if argv is None:
        argv = sys.argv[1:]
    try:
        ctx, args = parse(argv)
    except _errors.UruncError as exc:
        _log.error(str(exc))
        return exc.exit_code
    _log.configure(ctx.log, ctx.log_format, ctx.debug)
    if ctx.command == "--version":
        from urunc import OCI_VERSION, __version__

        sys.stdout.write(f"urunc version {__version__}\nspec: {OCI_VERSION}\n")
        return 0
    if ctx.command in ("--help", "help"):
        sys.stdout.write(USAGE)
        return 0
    module_name = COMMANDS.get(ctx.command)
    if module_name is None:
        _log.error(f"unknown command {ctx.command}")
        return _errors.EXIT_ERROR
    try:
        module = __import__(module_name, fromlist=["run"])
        _timestamps.mark("command-imported")
        result: int = module.run(ctx, args)
        _timestamps.mark("cli-exit")
        return result
    except _errors.UruncError as exc:
        _log.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - containerd must get one line, never a traceback
        _log.error(f"internal error: {type(exc).__name__}: {exc}")
        if ctx.debug:
            import traceback

            traceback.print_exc()
        return _errors.EXIT_ERROR


def entry() -> int:
    """The installed ``urunc``: main(), then exit without the interpreter's teardown.

    Tearing down modules and objects costs ~3.5 ms here, on each of the five or
    more calls containerd makes per container; nothing of ours needs it (files
    are written with os.write or closed, only the standard streams buffer).
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
