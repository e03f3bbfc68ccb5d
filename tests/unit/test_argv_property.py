"""No value from an image reaches a monitor except as one argv element, and guests parse it back.

Each guest's command line is decoded with the guest's own grammar (ported
here from its source) and must give back the original args and env.
"""

from __future__ import annotations

import json

from _plans import NET, plan
from hypothesis import given, settings
from hypothesis import strategies as st

from urunc import guests, monitors

NASTY = st.text(alphabet=st.sampled_from(list(" \t\n\"'\\,=-[]:;&abc/")) | st.characters(
    blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=12)
ARGS = st.lists(NASTY, min_size=1, max_size=5)
ENV = st.lists(st.tuples(st.from_regex(r"[A-Z][A-Z0-9_]{0,5}", fullmatch=True), NASTY).map("=".join), max_size=4)


def hello_tokens(line: str) -> list[str]:
    """guests/hello/README.md's tokenizer (Unikraft's grammar): blanks split, quotes group."""
    tokens: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return tokens
        token = ""
        while i < n and line[i] not in " \t":
            ch = line[i]
            if ch == '"':
                i += 1
                while i < n and line[i] != '"':
                    if line[i] == "\\" and i + 1 < n and line[i + 1] in '"\\':
                        i += 1
                    token += line[i]
                    i += 1
                i += 1
            elif ch == "'":
                end = line.find("'", i + 1)
                end = n if end < 0 else end
                token += line[i + 1:end]
                i = end + 1
            else:
                token += ch
                i += 1
        tokens.append(token)


def rumprun_parseargs(p: str) -> list[str]:
    """rumprun's lib/librumprun_base/parseargs.c, line for line."""
    out: list[str] = []
    cur: list[str] | None = None
    quote: str | int = -1
    i = 0
    p += "\0"
    while True:
        ac = p[i]
        i += 1
        rc = ac
        if ac == "\\":
            rc = p[i]
            i += 1
        if rc == "\0" or ac in " \n\t":
            if rc == "\0" or quote == 0:
                if cur is not None:
                    out.append("".join(cur))
                    cur = None
                quote = -1
            if rc == "\0":
                return out
            if quote == -1:
                continue
        if quote == -1:
            cur = []
            quote = 0
        if quote not in (-1, 0) and ac == quote:
            quote = 0
            continue
        if ac in "'\"":
            quote = ac
            continue
        assert cur is not None
        cur.append(rc)


def qemu_opts(value: str) -> list[str]:
    """QEMU's option splitting: ',' separates, ',,' is a literal comma."""
    parts, cur, i = [], "", 0
    while i < len(value):
        if value[i] == ",":
            if value[i + 1:i + 2] == ",":
                cur += ","
                i += 2
                continue
            parts.append(cur)
            cur = ""
        else:
            cur += value[i]
        i += 1
    return parts + [cur]


@settings(max_examples=200, deadline=None)
@given(args=ARGS, env=ENV, with_net=st.booleans())
def test_unikraft_on_qemu_append_is_one_element_and_parses_back(args: list[str], env: list[str],
                                                                with_net: bool) -> None:
    p = plan(args=tuple(args), env=tuple(env))
    argv = monitors.get("qemu").argv(p, guests.get("unikraft"), NET if with_net else None)
    line = argv[argv.index("-append") + 1]
    assert argv[argv.index("-append") + 2] != line   # the next element is a flag of ours, not a piece
    tokens = hello_tokens(line)
    cut = tokens.index("--")
    assert tokens[cut + 1:] == args
    params = tokens[:cut]
    if env:
        start = params.index("env.vars=[")
        assert params[start + 1:start + 1 + len(env)] == env and params[start + 1 + len(env)] == "]"


@settings(max_examples=200, deadline=None)
@given(args=ARGS, env=ENV)
def test_osv_cmdline_parses_back(args: list[str], env: list[str]) -> None:
    p = plan(guest="osv", args=tuple(args), env=tuple(env))
    argv = monitors.get("qemu").argv(p, guests.get("osv"), NET)
    tokens = hello_tokens(argv[argv.index("-append") + 1])
    assert tokens[3:] == [f"--env={e}" for e in env] + args


@settings(max_examples=200, deadline=None)
@given(args=ARGS, monitor=st.sampled_from(["hvt", "spt"]), guest=st.sampled_from(["solo5", "mirage"]))
def test_solo5_args_are_their_own_argv_elements(args: list[str], monitor: str, guest: str) -> None:
    p = plan(guest=guest, monitor=monitor, monitor_path="/t", args=tuple(args), devices={"net": "service"})
    argv = monitors.get(monitor).argv(p, guests.get(guest), NET)
    kernel = argv.index("--") + 1
    assert argv[kernel] == p.kernel
    # Solo5 passes the container's arguments exactly; only MirageOS reads network flags before them.
    flags = ["--ipv4=10.213.0.5/24", "--ipv4-gateway=10.213.0.1"] if guest == "mirage" else []
    assert argv[kernel + 1:] == flags + args


@settings(max_examples=200, deadline=None)
@given(args=ARGS, env=ENV, mountpoint=NASTY.map(lambda s: "/" + s))
def test_rumprun_config_is_one_element_and_parses_back(args: list[str], env: list[str], mountpoint: str) -> None:
    p = plan(guest="rumprun", monitor="spt", monitor_path="/t", args=tuple(args), env=tuple(env),
             block="/d.img", block_mountpoint=mountpoint, devices={"net": "tap", "block": "rootfs"})
    argv = monitors.get("spt").argv(p, guests.get("rumprun"), NET)
    assert argv[-2] == p.kernel
    pairs = json.loads(argv[-1], object_pairs_hook=list)
    assert rumprun_parseargs(dict(pairs)["cmdline"]) == args
    assert [v for k, v in pairs if k == "env"] == env
    assert dict(dict(pairs)["blk"])["mountpoint"] == mountpoint


@settings(max_examples=200, deadline=None)
@given(path=NASTY.map(lambda s: "/b/rootfs/" + s))
def test_qemu_disk_path_is_escaped_in_its_option(path: str) -> None:
    p = plan(guest="osv", block=path)
    argv = monitors.get("qemu").argv(p, guests.get("osv"), None)
    opts = qemu_opts(argv[argv.index("-drive") + 1])
    assert opts[0] == "file=" + path and opts[1:] == ["if=none", "id=d0", "format=raw"]


@settings(max_examples=100, deadline=None)
@given(args=ARGS, env=ENV)
def test_firecracker_boot_args_parse_back(tmp_path_factory: object, args: list[str], env: list[str]) -> None:
    state = str(tmp_path_factory.mktemp("fc"))  # type: ignore[attr-defined]
    p = plan(monitor="firecracker", monitor_path="/fc", state_dir=state, args=tuple(args), env=tuple(env))
    monitors.get("firecracker").argv(p, guests.get("unikraft"), NET)
    with open(f"{state}/firecracker.json") as f:
        tokens = hello_tokens(json.load(f)["boot-source"]["boot_args"])
    assert tokens[0] == "unikernel" and tokens[tokens.index("--") + 1:] == args
