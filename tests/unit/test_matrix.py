"""The support matrix is derived from the guests' declarations; every other pair fails at create."""

from __future__ import annotations

import os

import pytest
from _bundles import build

from urunc import _errors, guests, monitors

MINE = ("unikraft", "solo5", "mirage", "rumprun", "osv", "mewz")
SUPPORTED = {
    ("unikraft", "qemu"), ("unikraft", "firecracker"),
    ("solo5", "hvt"), ("solo5", "spt"), ("mirage", "hvt"), ("mirage", "spt"),
    ("rumprun", "hvt"), ("rumprun", "spt"),
    ("osv", "qemu"), ("osv", "firecracker"),
    ("mewz", "qemu"),
}


def test_matrix_lists_the_declared_pairs() -> None:
    pairs = guests.matrix()
    assert {p for p in pairs if p[0] in MINE} == SUPPORTED
    assert pairs == sorted(set(pairs))
    for guest, monitor in pairs:
        assert monitor in guests.get(guest).monitors and monitor in monitors.names()


def test_mirage_is_a_guest_type_of_its_own_on_solo5() -> None:
    mirage, solo5 = guests.get("mirage"), guests.get("solo5")
    assert mirage is not solo5 and mirage.name == "mirage" and isinstance(mirage, type(solo5))
    assert "mirage" in guests.names() and "solo5" in guests.names()


@pytest.mark.parametrize("alias, monitor", [("solo5-hvt", "hvt"), ("solo5-spt", "spt"), ("hvt", "hvt"),
                                            ("spt", "spt")])
def test_the_design_and_go_spellings_name_the_same_tender(tmp_path: object, alias: str, monitor: str) -> None:
    assert monitors.get(alias) is monitors.get(monitor)
    p = build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": alias, "netDevice": "service0"})
    assert p.monitor == monitor          # the Plan, config.toml's [monitors.NAME] and the init see one name


def test_unknown_monitor_fails_in_one_line_naming_it(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="unknown monitor 'solo5-xyz'") as info:
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "solo5-xyz"})
    assert "\n" not in str(info.value)


REJECTED = [(g, m) for g in MINE for m in monitors.names() if (g, m) not in SUPPORTED]


@pytest.mark.parametrize("guest, monitor", REJECTED, ids=[f"{g}-{m}" for g, m in REJECTED])
def test_unsupported_pair_fails_at_create_naming_both(tmp_path: object, guest: str, monitor: str) -> None:
    with pytest.raises(_errors.PlanError) as info:
        build(str(tmp_path), {"unikernelType": guest, "hypervisor": monitor})
    message = str(info.value)
    assert "\n" not in message
    assert f"guest type {guest} " in message and f"monitor {monitor}" in message


def test_missing_monitor_binary_fails_at_create(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(_errors.PlanError, match="solo5-spt for spt not found on PATH"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt"},
              monitors={"spt": {"path": None}})


def test_configured_monitor_path_must_be_executable(tmp_path: object) -> None:
    missing = os.path.join(str(tmp_path), "nope")
    with pytest.raises(_errors.PlanError, match=f"monitor binary {missing} for qemu is not executable"):
        build(str(tmp_path), {"unikernelType": "unikraft"}, monitors={"qemu": {"path": missing}})


@pytest.mark.parametrize("guest, monitor, key", [
    ("solo5", "spt", "initrd"), ("rumprun", "spt", "initrd"), ("osv", "qemu", "initrd"), ("mewz", "qemu", "initrd"),
    ("unikraft", "qemu", "block"), ("mewz", "qemu", "block"),
])
def test_storage_a_guest_does_not_take_is_refused(tmp_path: object, guest: str, monitor: str, key: str) -> None:
    with pytest.raises(_errors.PlanError, match=f"guest type {guest}.* takes no"):
        build(str(tmp_path), {"unikernelType": guest, "hypervisor": monitor, key: "/data.img"},
              files={"data.img": b"x"})


def test_default_monitor_of_each_guest_is_supported() -> None:
    for name in MINE:
        guest = guests.get(name)
        assert guest.default_monitor in guest.monitors
