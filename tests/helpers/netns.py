"""Network namespaces built the way CNI leaves them, for runtime tests without containerd.

A container namespace whose ``eth0`` is one end of a veth pair with an address
and a default route, the other end in a peer namespace (the "bridge side").
Checks use iproute2's ``ip`` and ``tc``, independent of the runtime's netlink code.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time

GUEST_IP = "10.213.91.2"
PEER_IP = "10.213.91.1"
NS_PATH = "/var/run/netns"


def sh(*argv: str, check: bool = True) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=30).stdout


class Netns:
    def __init__(self, with_eth0: bool = True) -> None:
        tag = secrets.token_hex(3)
        self.name, self.peer = f"urunc-c-{tag}", f"urunc-p-{tag}"
        self.path = f"{NS_PATH}/{self.name}"
        sh("ip", "netns", "add", self.name)
        sh("ip", "netns", "add", self.peer)
        sh("ip", "-n", self.name, "link", "set", "lo", "up")
        if with_eth0:
            sh("ip", "link", "add", "eth0", "netns", self.name, "type", "veth", "peer", "name", "br0",
               "netns", self.peer)
            sh("ip", "-n", self.name, "addr", "add", f"{GUEST_IP}/24", "dev", "eth0")
            sh("ip", "-n", self.name, "link", "set", "eth0", "up")
            sh("ip", "-n", self.name, "route", "add", "default", "via", PEER_IP)
            sh("ip", "-n", self.peer, "addr", "add", f"{PEER_IP}/24", "dev", "br0")
            sh("ip", "-n", self.peer, "link", "set", "br0", "up")

    def delete(self) -> None:
        sh("ip", "netns", "delete", self.name, check=False)
        sh("ip", "netns", "delete", self.peer, check=False)

    def links(self) -> dict[str, int]:
        return {link["ifname"]: link["ifindex"]
                for link in json.loads(sh("ip", "-n", self.name, "-j", "link", "show"))}

    def qdiscs(self) -> list[str]:
        return [f"{q['dev']} {q['kind']}" for q in json.loads(sh("tc", "-n", self.name, "-j", "qdisc", "show"))]

    def filters(self) -> list[str]:
        out = []
        for dev in self.links():
            out += [f"{dev}: {line}" for line in
                    sh("tc", "-n", self.name, "filter", "show", "dev", dev, "ingress").splitlines()]
        return out

    def snapshot(self) -> tuple[dict[str, int], list[str], list[str]]:
        return self.links(), self.qdiscs(), self.filters()

    def ping(self, timeout: float = 30) -> bool:
        """Ping the guest from the peer side until it answers or TIMEOUT passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = subprocess.run(["ip", "netns", "exec", self.peer, "/bin/busybox", "ping", "-c", "1",
                                     "-W", "1", GUEST_IP], capture_output=True, timeout=10, check=False)
            if result.returncode == 0:
                return True
        return False


