"""Shared utilities for urunc's tests."""

from .rootfs import busybox_rootfs

__all__ = ["busybox_rootfs"]
