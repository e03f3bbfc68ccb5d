"""`urunc kill` on a real QEMU: what each signal does to a running unikernel.

The sample guest with `hello wait` stays up (halted, interrupts off) until
QEMU is stopped from outside. Its `pc` machine has an ACPI power button but
the guest never enables it (PM1_EN), so SIGTERM is passed on at once rather
than pressing a button nobody hears and waiting out the grace period. Two
small test guests do enable it: one powers off when it is pressed, one does
not, and for that one the fallback SIGTERM after the grace period is what
stops it. QEMU reports each signal it terminates on, on the container's stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import container_state, hello_bundle, urunc, wait_status
from tests.helpers.procs import processes_naming, state_letter

GRACE = 2

# A guest that does handle the power button: it enables the PIIX4 power-button
# event (PM1_EN), polls PM1_STS, and on a press enters S5 through PM1_CNT, which
# makes QEMU exit 0. It busy-waits (one host core while it runs): for this test only.
# With DEAF set it enables the button, says "waiting" and halts: it never acts on a press.
ACPI_GUEST = r"""
.text
.globl _start
.align 4
    .long 0x1BADB002, 0, -0x1BADB002
_start:
    mov $0x80000B40, %eax
    mov $0xCF8, %dx
    out %eax, %dx
    mov $0xCFC, %dx
    in %dx, %eax
    and $0xFFC0, %eax
    mov %eax, %ebx
    lea 2(%ebx), %edx
    mov $0x100, %ax
    out %ax, %dx
    mov $ready, %esi
    call puts
#ifdef DEAF
5:  cli
    hlt
    jmp 5b
#endif
1:  pause
    mov %ebx, %edx
    in %dx, %ax
    test $0x100, %ax
    jz 1b
    mov $off, %esi
    call puts
    lea 4(%ebx), %edx
    mov $0x2000, %ax
    out %ax, %dx
2:  cli
    hlt
    jmp 2b
puts:
    lodsb
    test %al, %al
    jz 4f
    mov %al, %ah
    mov $0x3FD, %dx
3:  in %dx, %al
    test $0x20, %al
    jz 3b
    mov $0x3F8, %dx
    mov %ah, %al
    out %al, %dx
    jmp puts
4:  ret
ready: .asciz "waiting\n"
off: .asciz "power button: powering off\n"
"""


def _build_guest(work: Path, *defines: str) -> Path:
    (work / "guest.S").write_text(ACPI_GUEST)
    try:
        subprocess.run(["gcc", "-m32", *(f"-D{d}" for d in defines), "-c", "-o", str(work / "guest.o"),
                        str(work / "guest.S")], check=True, capture_output=True)
        subprocess.run(["ld", "-m", "elf_i386", "-Ttext", "0x100000", "-e", "_start", "-o",
                        str(work / "guest.elf"), str(work / "guest.o")], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot build the ACPI test guest: {exc}")
    return work / "guest.elf"


@pytest.fixture(scope="module")
def acpi_guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_guest(tmp_path_factory.mktemp("acpi-guest"))


@pytest.fixture(scope="module")
def deaf_acpi_guest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_guest(tmp_path_factory.mktemp("deaf-acpi-guest"), "DEAF")


def _status(root: Path, cid: str) -> str:
    return str(container_state(root, cid)["status"])


def _wait_status(root: Path, cid: str, wanted: str, timeout: float) -> float:
    """Seconds until the container's status is WANTED (at most TIMEOUT)."""
    start = time.monotonic()
    wait_status(root, cid, wanted, timeout)
    return time.monotonic() - start


class Running:
    """A started `hello wait` container; its stdout/stderr go to files we can read."""

    def __init__(self, root: Path, cid: str, bundle: Path, env: dict[str, str]) -> None:
        self.root, self.id, self.bundle = root, cid, bundle
        self.out = bundle / "out"
        self.err = bundle / "err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            result = urunc(root, "create", "--bundle", str(bundle), cid, stdin=subprocess.DEVNULL,
                           stdout=out, stderr=err, capture_output=False, env=env)
        assert result.returncode == 0, self.err.read_text()
        self.pid = int(self.state()["pid"])

    def state(self) -> dict[str, object]:
        import json

        result = urunc(self.root, "state", self.id)
        assert result.returncode == 0, result.stderr
        return dict(json.loads(result.stdout))

    def start(self) -> None:
        result = urunc(self.root, "start", self.id)
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 20
        while b"waiting\n" not in self.out.read_bytes():
            assert time.monotonic() < deadline, self.out.read_text() + self.err.read_text()
            time.sleep(0.02)

    def kill(self, signal: str, *, all_processes: bool = False) -> subprocess.CompletedProcess[str]:
        return urunc(self.root, "kill", *(["--all"] if all_processes else []), self.id, signal)


@pytest.fixture
def make_container(tmp_path: Path, state_root: Path) -> Iterator[object]:
    made: list[Running] = []

    def make(*, grace: int | None = GRACE, start: bool = True, kernel: Path | None = None,
             user: int = 0) -> Running:
        bundle = tmp_path / f"b{len(made)}"
        hello_bundle(bundle, args=("hello", "wait"))
        if user:
            spec = json.loads((bundle / "config.json").read_text())
            spec["process"]["user"] = {"uid": user, "gid": user}
            (bundle / "config.json").write_text(json.dumps(spec))
        if kernel is not None:
            (bundle / "rootfs" / "unikernel" / "hello.elf").write_bytes(kernel.read_bytes())
        env = dict(os.environ)
        if grace is not None:
            path = tmp_path / f"config-{grace}.toml"
            path.write_text(f"[monitors.qemu]\nshutdown_grace_seconds = {grace}\n")
            env["URUNC_CONFIG"] = str(path)
        container = Running(state_root, f"sig{len(made)}", bundle, env)
        made.append(container)
        if start:
            container.start()
        return container

    yield make
    for container in made:
        urunc(state_root, "delete", "--force", container.id)
        assert state_letter(container.pid) in ("gone", "Z")  # a zombie until its reaper gets to it


def test_sigterm_to_a_guest_that_never_enabled_its_power_button_is_the_signal_at_once(
        make_container: object) -> None:
    c = make_container(grace=30)  # type: ignore[operator]
    assert (c.root / c.id / "qmp.sock").exists()
    began = time.monotonic()
    assert c.kill("TERM").returncode == 0
    took = _wait_status(c.root, c.id, "stopped", 10)
    assert took < 3, f"stopped after {time.monotonic() - began:.1f}s: the grace period was waited out"
    assert b"terminating on signal 15" in c.err.read_bytes()
    assert not processes_naming(str(c.root))  # no watchdog was left waiting for nothing


def test_sigterm_asks_for_power_down_then_falls_back_to_the_signal(make_container: object,
                                                                   deaf_acpi_guest: Path) -> None:
    c = make_container(kernel=deaf_acpi_guest)  # type: ignore[operator]
    assert (c.root / c.id / "qmp.sock").exists()
    began = time.monotonic()
    result = c.kill("TERM")
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert took < 1.5, f"kill blocked for {took:.2f}s"
    # The guest ignores the power button: it is still up during the grace period...
    time.sleep(GRACE - 0.7)
    assert _status(c.root, c.id) == "running"
    assert b"terminating on signal" not in c.err.read_bytes()
    # ...and the watchdog's SIGTERM stops it once the grace period is over.
    _wait_status(c.root, c.id, "stopped", 5)
    assert time.monotonic() - began >= GRACE - 0.2
    assert b"terminating on signal 15" in c.err.read_bytes()


def test_sigterm_powers_off_a_guest_that_handles_the_power_button(make_container: object,
                                                                  acpi_guest: Path) -> None:
    c = make_container(grace=30, kernel=acpi_guest)  # type: ignore[operator]
    began = time.monotonic()
    assert c.kill("TERM").returncode == 0
    took = _wait_status(c.root, c.id, "stopped", 10)
    assert took < 5, "stopped by the fallback, not by the guest"
    assert c.out.read_bytes().endswith(b"waiting\npower button: powering off\n")
    assert b"terminating on signal" not in c.err.read_bytes()
    # The fallback watchdog leaves as soon as the monitor is gone, not after 30 s.
    deadline = began + 5
    while processes_naming(str(c.root)):
        assert time.monotonic() < deadline, processes_naming(str(c.root))
        time.sleep(0.05)


def test_sigterm_is_graceful_for_a_monitor_that_is_not_root(make_container: object, acpi_guest: Path) -> None:
    c = make_container(grace=30, kernel=acpi_guest, user=65534)  # type: ignore[operator]
    uid_line = next(line for line in Path(f"/proc/{c.pid}/status").read_text().splitlines()
                    if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["65534"] * 4
    assert c.kill("TERM").returncode == 0
    assert _wait_status(c.root, c.id, "stopped", 10) < 5, "stopped by the fallback, not by the guest"
    assert c.out.read_bytes().endswith(b"waiting\npower button: powering off\n")


def test_sigterm_without_grace_is_the_plain_signal(make_container: object) -> None:
    c = make_container(grace=0)  # type: ignore[operator]
    assert c.kill("SIGTERM").returncode == 0
    assert _wait_status(c.root, c.id, "stopped", 3) < 1.5
    assert b"terminating on signal 15" in c.err.read_bytes()


def test_sigkill_kills_at_once(make_container: object) -> None:
    c = make_container()  # type: ignore[operator]
    assert c.kill("9").returncode == 0
    assert _wait_status(c.root, c.id, "stopped", 3) < 1.0
    assert b"terminating on signal" not in c.err.read_bytes()  # no handler ran: it was SIGKILL


def test_other_signals_are_forwarded(make_container: object) -> None:
    c = make_container()  # type: ignore[operator]
    assert c.kill("STOP").returncode == 0
    deadline = time.monotonic() + 3
    while state_letter(c.pid) != "T":
        assert time.monotonic() < deadline, state_letter(c.pid)
        time.sleep(0.02)
    assert c.kill("SIGCONT").returncode == 0
    while state_letter(c.pid) == "T":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert _status(c.root, c.id) == "running"
    # SIGHUP is not turned into anything else: QEMU names the signal it got.
    assert c.kill("HUP").returncode == 0
    _wait_status(c.root, c.id, "stopped", 3)
    assert b"terminating on signal 1\n" in c.err.read_bytes() or b"terminating on signal 1 " in c.err.read_bytes()


@pytest.mark.parametrize("started", [False, True], ids=["created", "running"])
def test_terminal_resize_never_kills(make_container: object, started: bool) -> None:
    c = make_container(start=started)  # type: ignore[operator]
    for _ in range(3):
        assert c.kill("WINCH").returncode == 0
        assert c.kill("28").returncode == 0
    time.sleep(0.5)
    assert _status(c.root, c.id) == ("running" if started else "created")
    assert state_letter(c.pid) in ("S", "R")


def test_kill_all_and_kill_of_a_stopped_container(make_container: object) -> None:
    c = make_container()  # type: ignore[operator]
    assert c.kill("KILL", all_processes=True).returncode == 0
    _wait_status(c.root, c.id, "stopped", 3)
    assert c.kill("KILL", all_processes=True).returncode == 0  # as runc: nothing left to signal is fine
    again = c.kill("KILL")
    assert again.returncode != 0 and "is not running" in again.stderr


def test_sigterm_to_a_created_container_stops_its_init(make_container: object) -> None:
    c = make_container(start=False)  # type: ignore[operator]
    assert _status(c.root, c.id) == "created"
    assert c.kill("TERM").returncode == 0
    assert _wait_status(c.root, c.id, "stopped", 3) < 1.5
    assert urunc(c.root, "delete", c.id).returncode == 0
    assert not (c.root / c.id).exists()


def test_kill_rejects_an_unknown_signal(make_container: object) -> None:
    c = make_container(start=False)  # type: ignore[operator]
    result = c.kill("NOPE")
    assert result.returncode != 0 and "invalid signal NOPE" in result.stderr
    assert _status(c.root, c.id) == "created"
