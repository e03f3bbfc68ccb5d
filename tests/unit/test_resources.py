"""Guest memory and vCPUs from the OCI resources, config.toml, or the guest's default.

Rounding: memory is floored to whole MiB (the cgroup limit is a ceiling the
guest must stay under), below 8 MiB is refused; vCPUs are the quota/period
ratio rounded up (a guest cannot have 1.5 CPUs, and rounding down would
starve a 1.5-CPU container to 1), else the cpuset's size, at least 1.
"""

from __future__ import annotations

import pytest
from _bundles import build

from urunc import _errors
from urunc.unikernel.plan import memory_mib, vcpus

MI = 1024 * 1024


@pytest.mark.parametrize("limit, expected", [
    (256 * MI, 256), (256 * MI + 1, 256), (256 * MI - 1, 255), (1536 * MI, 1536), (3 * 512 * MI, 1536),
    (8 * MI, 8), (None, 77),
])
def test_memory_floors_to_whole_mib(limit: int | None, expected: int) -> None:
    assert memory_mib(limit, 77) == expected


@pytest.mark.parametrize("limit", [8 * MI - 1, 1, 0])
def test_memory_below_8_mib_is_refused(limit: int) -> None:
    with pytest.raises(_errors.PlanError, match=f"memory limit {limit} bytes is below the 8 MiB"):
        memory_mib(limit, 64)


@pytest.mark.parametrize("quota, period, cpuset, expected", [
    (150000, 100000, "", 2), (100000, 100000, "", 1), (100001, 100000, "", 2), (50000, 100000, "", 1),
    (400000, 100000, "0", 4),           # the quota wins over the cpuset
    (None, None, "0-3,6", 5), (None, None, "2", 1), (-1, 100000, "0-1", 2), (None, None, "", 3),
])
def test_vcpus_from_quota_else_cpuset_else_default(quota: int | None, period: int | None, cpuset: str,
                                                   expected: int) -> None:
    assert vcpus(quota, period, cpuset, 3) == expected


def test_bad_cpuset_is_refused() -> None:
    with pytest.raises(_errors.PlanError, match="invalid cpuset '0-x'"):
        vcpus(None, None, "0-x", 1)


def test_defaults_come_from_config_toml(tmp_path: object) -> None:
    plan = build(str(tmp_path), {"unikernelType": "unikraft"},
                 monitors={"qemu": {"default_memory_mb": 200, "default_vcpus": 3}})
    assert (plan.memory_mib, plan.vcpus) == (200, 3)


def test_guest_default_memory_without_config(tmp_path: object) -> None:
    assert build(str(tmp_path), {"unikernelType": "osv"}).memory_mib == 256
    assert build(str(tmp_path), {"unikernelType": "unikraft"}).memory_mib == 64


def test_resources_override_the_defaults(tmp_path: object) -> None:
    plan = build(str(tmp_path), {"unikernelType": "unikraft"},
                 resources={"memory": {"limit": 256 * MI + 1}, "cpu": {"quota": 150000, "period": 100000}},
                 monitors={"qemu": {"default_memory_mb": 200, "default_vcpus": 3}})
    assert (plan.memory_mib, plan.vcpus) == (256, 2)


def test_cpuset_sizes_the_guest(tmp_path: object) -> None:
    plan = build(str(tmp_path), {"unikernelType": "unikraft"}, resources={"cpu": {"cpus": "0-3,6"}})
    assert plan.vcpus == 5


def test_invalid_config_default_is_refused(tmp_path: object) -> None:
    with pytest.raises(_errors.ConfigError, match="invalid default_memory_mb 4 in \\[monitors.qemu\\]"):
        build(str(tmp_path), {"unikernelType": "unikraft"}, monitors={"qemu": {"default_memory_mb": 4}})
