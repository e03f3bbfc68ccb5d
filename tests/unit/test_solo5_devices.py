"""Solo5 devices at create: annotation names are checked, and every declared device must be attachable.

The tender refuses to start unless each device its unikernel's manifest
declares is attached; a container has one network and one block annotation,
so what cannot be attached is refused at create, in one line naming it.
"""

from __future__ import annotations

import pytest
from _bundles import build
from _plans import elf_with_note, manifest_desc

from urunc import _errors

NET, BLOCK = 2, 1
TWO_NETS = elf_with_note(manifest_desc([(b"service0", NET), (b"service1", NET)]))
NET_AND_BLOCK = elf_with_note(manifest_desc([(b"service0", NET), (b"storage", BLOCK)]))


@pytest.mark.parametrize("key, value", [
    ("netDevice", "service-0"), ("netDevice", "a=b"), ("netDevice", "x" * 68), ("netDevice", "naïve"),
    ("blockDevice", "disk,1"), ("blockDevice", "../d"), ("blockDevice", "d d"),
])
def test_a_device_name_solo5_would_not_accept_is_refused_naming_it(tmp_path: object, key: str, value: str) -> None:
    with pytest.raises(_errors.BundleError) as info:
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt", key: value, "block": "/d.img"},
              kernel=NET_AND_BLOCK, files={"d.img": b"d"})
    message = str(info.value)
    assert f"invalid {key} {value!r}" in message and "\n" not in message


def test_the_longest_solo5_name_is_accepted(tmp_path: object) -> None:
    name = "N" * 67
    plan = build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt", "netDevice": name},
                 kernel=b"\x7fELF without a manifest")
    assert plan.devices == {"net": name}


@pytest.mark.parametrize("guest", ["solo5", "mirage"])
def test_a_second_network_device_is_refused_at_create_naming_it(tmp_path: object, guest: str) -> None:
    with pytest.raises(_errors.PlanError) as info:
        build(str(tmp_path), {"unikernelType": guest, "hypervisor": "hvt"}, kernel=TWO_NETS)
    message = str(info.value)
    assert "second NET_BASIC device 'service1'" in message and "(service0)" in message and "\n" not in message


def test_choosing_the_second_leaves_the_first_unattached(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="second NET_BASIC device 'service0'.*\\(service1\\)"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "hvt", "netDevice": "service1"},
              kernel=TWO_NETS)


def test_a_net_device_the_manifest_lacks_is_refused(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="netDevice 'other' is not a NET_BASIC device of .* "
                                                "\\(it declares service0\\)"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt", "netDevice": "other",
                              "block": "/d.img"}, kernel=NET_AND_BLOCK, files={"d.img": b"d"})


def test_a_declared_block_device_needs_the_block_annotation(tmp_path: object) -> None:
    with pytest.raises(_errors.PlanError, match="declares the block device 'storage', which needs "
                                                "com.urunc.unikernel.block"):
        build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt"}, kernel=NET_AND_BLOCK)
    plan = build(str(tmp_path), {"unikernelType": "solo5", "hypervisor": "spt", "block": "/d.img"},
                 kernel=NET_AND_BLOCK, files={"d.img": b"d"})
    assert plan.devices == {"net": "service0", "block": "storage"}
