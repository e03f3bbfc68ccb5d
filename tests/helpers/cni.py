"""Make `ctr run --cni` work for tests, and undo exactly that afterwards.

`ctr run --cni` (containerd 1.6) loads the *first* network config, by file
name, in /etc/cni/net.d and runs plugins from /opt/cni/bin only; Debian
installs the plugins in /usr/lib/cni. ctr adds the loopback network itself,
so our conflist holds the bridge plugin alone.

Our config is installed only when no other config sorts before it: ctr would
otherwise silently use that one and the tests would check someone else's
network. In that case `CniSetupUnavailable` says which file is in the way and
nothing is touched.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFLIST = REPO / "packaging" / "cni" / "10-urunc-test.conflist"
CONF_DIR = Path("/etc/cni/net.d")
BIN_DIR = Path("/opt/cni/bin")
SYSTEM_PLUGIN_DIR = Path("/usr/lib/cni")
IPAM_DIR = Path("/var/lib/cni/networks")
RESULTS_DIR = Path("/var/lib/cni/results")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
CONF_SUFFIXES = (".conf", ".conflist", ".json")


class CniSetupUnavailable(RuntimeError):
    """The host cannot be set up for our CNI network without touching others'."""


@dataclass
class CniNetwork:
    """What the tests' CNI network is, and what installing it added."""

    name: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    conf_path: Path
    added_files: list[Path] = field(default_factory=list)
    added_dirs: list[Path] = field(default_factory=list)
    bridge_existed: bool = False
    ipam_existed: bool = False
    results_before: frozenset[str] = frozenset()
    ip_forward_before: str | None = None


def _plugin_config() -> dict[str, object]:
    conf = json.loads(CONFLIST.read_text())
    return conf["plugins"][0]  # type: ignore[no-any-return]


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", "dev", name], capture_output=True).returncode == 0


def _mkdirs(path: Path, added: list[Path]) -> None:
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    # Recorded deepest first so teardown can rmdir them in order.
    added.extend(missing)


def _results() -> frozenset[str]:
    try:
        return frozenset(os.listdir(RESULTS_DIR))
    except FileNotFoundError:
        return frozenset()


def install_cni() -> CniNetwork:
    """Install our conflist and any missing plugin links; see module doc."""
    conf = json.loads(CONFLIST.read_text())
    plugin = _plugin_config()
    ipam_range = plugin["ipam"]["ranges"][0][0]  # type: ignore[index]
    net = CniNetwork(
        name=conf["name"],
        bridge=plugin["bridge"],  # type: ignore[arg-type]
        subnet=ipaddress.IPv4Network(ipam_range["subnet"]),
        gateway=ipaddress.IPv4Address(ipam_range["gateway"]),
        conf_path=CONF_DIR / CONFLIST.name,
    )
    if not SYSTEM_PLUGIN_DIR.is_dir() and not BIN_DIR.is_dir():
        raise CniSetupUnavailable(
            f"no CNI plugins in {SYSTEM_PLUGIN_DIR} or {BIN_DIR} (install containernetworking-plugins)")
    if CONF_DIR.is_dir():
        before = sorted(
            f for f in os.listdir(CONF_DIR) if f.endswith(CONF_SUFFIXES) and f < CONFLIST.name
        )
        if before:
            raise CniSetupUnavailable(
                f"{CONF_DIR / before[0]} sorts before {CONFLIST.name}; ctr run --cni would use it instead"
            )
    if net.conf_path.exists() and net.conf_path.read_bytes() != CONFLIST.read_bytes():
        raise CniSetupUnavailable(f"{net.conf_path} exists with other content; not overwriting it")

    net.bridge_existed = _link_exists(net.bridge)
    net.ipam_existed = (IPAM_DIR / net.name).exists()
    net.results_before = _results()
    net.ip_forward_before = IP_FORWARD.read_text().strip()
    try:
        _mkdirs(CONF_DIR, net.added_dirs)
        if not net.conf_path.exists():
            shutil.copyfile(CONFLIST, net.conf_path)
            net.added_files.append(net.conf_path)
        _mkdirs(BIN_DIR, net.added_dirs)
        if SYSTEM_PLUGIN_DIR.is_dir():
            for plugin_bin in sorted(SYSTEM_PLUGIN_DIR.iterdir()):
                link = BIN_DIR / plugin_bin.name
                if not link.exists() and not link.is_symlink():
                    link.symlink_to(plugin_bin)
                    net.added_files.append(link)
        # Only so teardown can remove the IPAM dirs it created.
        for d in (IPAM_DIR, RESULTS_DIR):
            if not d.exists():
                net.added_dirs.extend(p for p in (d, d.parent) if not p.exists())
    except BaseException:
        remove_cni(net)
        raise
    return net


def remove_cni(net: CniNetwork) -> None:
    """Undo `install_cni` and what our network's plugins left on the host."""
    for f in reversed(net.added_files):
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
    if not net.bridge_existed and _link_exists(net.bridge):
        subprocess.run(["ip", "link", "delete", "dev", net.bridge], capture_output=True)
        # The bridge plugin (isGateway) turned on IPv4 forwarding for it.
        if net.ip_forward_before is not None and IP_FORWARD.read_text().strip() != net.ip_forward_before:
            IP_FORWARD.write_text(net.ip_forward_before + "\n")
    if not net.ipam_existed:
        shutil.rmtree(IPAM_DIR / net.name, ignore_errors=True)
    # libcni caches one result per attachment: <network>-<container>-<ifname>.
    for entry in _results() - net.results_before:
        if entry.startswith(net.name + "-"):
            with contextlib.suppress(FileNotFoundError):
                (RESULTS_DIR / entry).unlink()
    for d in sorted(set(net.added_dirs), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def cni_network() -> Iterator[CniNetwork]:
    net = install_cni()
    try:
        yield net
    finally:
        remove_cni(net)
