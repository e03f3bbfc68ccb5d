"""Which unikernel a bundle holds: ``com.urunc.unikernel.*`` from the spec or /urunc.json.

Spec annotations are plain text (containerd copies pod and container
annotations there); ``/urunc.json`` in the rootfs holds base64 values, the
format images built for the Go urunc carry. Spec annotations win.
"""

from __future__ import annotations

from urunc import _errors, _jsonlite
from urunc._files import read_regular
from urunc.unikernel import rootfs as _rootfs

PREFIX = "com.urunc.unikernel."
KEYS = ("unikernelType", "hypervisor", "binary", "cmdline", "initrd", "block", "blkMntPoint",
        "unikernelVersion", "useDMBlock", "mountRootfs", "memory", "vcpus", "netDevice",
        "blockDevice")
URUNC_JSON = "/urunc.json"
# Set by containerd's CRI and by CRI-O on a pod's sandbox container.
_SANDBOX_MARKERS = ("io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType")
_MAX_VALUE = 64 * 1024
_MAX_FILE = 1024 * 1024


class UnikernelConfig:
    """The recognised settings (unknown keys are ignored) and where each came from."""

    __slots__ = ("values", "sources")

    def __init__(self, values: dict[str, str], sources: dict[str, str]) -> None:
        self.values = values
        self.sources = sources

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def flag(self, key: str) -> bool:
        return self.values.get(key, "").strip().lower() in ("true", "1", "yes")


def _check_value(key: str, value: str, where: str) -> str:
    if len(value) > _MAX_VALUE:
        raise _errors.BundleError(f"{PREFIX}{key} from {where} is longer than {_MAX_VALUE} bytes")
    if "\0" in value:
        raise _errors.BundleError(f"{PREFIX}{key} from {where} contains a NUL byte")
    return value


def from_urunc_json(rootfs: str) -> dict[str, str] | None:
    host_path = _rootfs.resolve(rootfs, URUNC_JSON, "urunc.json")
    try:
        # resolve() followed every symlink inside the rootfs: one put in place since is refused
        data = read_regular(host_path, _MAX_FILE, nofollow=True)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _errors.BundleError(f"cannot read urunc.json: {exc.strerror}") from None
    raw = _jsonlite.loads_object(data, "urunc.json", _errors.BundleError)
    import binascii

    values: dict[str, str] = {}
    for full_key, encoded in raw.items():
        if not full_key.startswith(PREFIX):
            continue
        key = full_key[len(PREFIX):]
        if key not in KEYS:
            continue
        if not isinstance(encoded, str):
            raise _errors.BundleError(f"malformed urunc.json: {full_key} is not a string")
        try:
            decoded = binascii.a2b_base64(encoded.encode("ascii"), strict_mode=True)
            values[key] = _check_value(key, decoded.decode("utf-8"), "urunc.json")
        except (binascii.Error, UnicodeError, ValueError):
            raise _errors.BundleError(
                f"malformed urunc.json: {full_key} is not base64 of utf-8 text: {encoded[:60]!r}") from None
    return values


def detect(annotations: dict[str, str], rootfs: str) -> UnikernelConfig | None:
    """The unikernel settings, or None for an ordinary container (handed to runc)."""
    # CRI copies a pod's annotations into its sandbox (pause) container too; that one is
    # never a unikernel, whatever com.urunc.unikernel.* the pod carries.
    if any(annotations.get(key) == "sandbox" for key in _SANDBOX_MARKERS):
        return None
    values: dict[str, str] = {}
    sources: dict[str, str] = {}
    from_file = from_urunc_json(rootfs)
    if from_file:
        for key, value in from_file.items():
            values[key] = value
            sources[key] = "urunc.json"
    for full_key, value in annotations.items():
        if full_key.startswith(PREFIX) and full_key[len(PREFIX):] in KEYS:
            key = full_key[len(PREFIX):]
            values[key] = _check_value(key, value, "annotations")
            sources[key] = "annotations"
    if not values:
        return None
    if not values.get("unikernelType"):
        raise _errors.BundleError(f"missing {PREFIX}unikernelType (have {', '.join(sorted(values))})")
    return UnikernelConfig(values, sources)
