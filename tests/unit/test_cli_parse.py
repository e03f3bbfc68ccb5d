"""runc's command-line dialect, as containerd's shim and people type it."""

from __future__ import annotations

import pytest

from urunc import _errors, cli


@pytest.mark.parametrize(("argv", "command", "options", "positional"), [
    (["delete", "-f", "c1"], "delete", {"force": True}, ["c1"]),
    (["delete", "--force", "c1"], "delete", {"force": True}, ["c1"]),
    (["list", "-f", "json"], "list", {"format": "json"}, []),
    (["ps", "--format=json", "c1"], "ps", {"format": "json"}, ["c1"]),
    (["create", "-b", "/b", "--pid-file", "/p", "c1"], "create", {"bundle": "/b", "pid-file": "/p"}, ["c1"]),
    (["kill", "-a", "c1", "TERM"], "kill", {"all": True}, ["c1", "TERM"]),
    (["create", "--no-pivot", "--", "-odd-id"], "create", {"no-pivot": True}, ["-odd-id"]),
])
def test_command_options(argv: list[str], command: str, options: dict[str, object], positional: list[str]) -> None:
    ctx, args = cli.parse(["--root", "/r", "--log-format", "json", *argv])
    assert (ctx.root, ctx.log_format, ctx.command) == ("/r", "json", command)
    assert (args.options, args.positional) == (options, positional)


def test_bad_global_options_are_one_line_usage_errors() -> None:
    with pytest.raises(_errors.UsageError, match="^unknown global option --nope$"):
        cli.parse(["--nope", "state", "c1"])
    with pytest.raises(_errors.UsageError, match="^option --root needs a value$"):
        cli.parse(["--root"])
