"""``/urunc.json``: the urunc annotations carried inside the rootfs.

A JSON object whose keys are the full label names and whose values are base64
(standard alphabet, padded) of the UTF-8 value, as images built for the Go
urunc have it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Mapping

URUNC_PREFIX = "com.urunc.unikernel."
URUNC_JSON = "urunc.json"


def urunc_labels(labels: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The ``com.urunc.unikernel.*`` subset of the labels."""
    return {k: v for k, v in labels if k.startswith(URUNC_PREFIX)}


def encode_urunc_json(annotations: Mapping[str, str]) -> bytes:
    """Serialise annotations as urunc.json bytes (sorted keys, compact)."""
    encoded = {
        k: base64.b64encode(v.encode("utf-8")).decode("ascii")
        for k, v in annotations.items()
    }
    return canonical_json(encoded)


def decode_urunc_json(data: bytes) -> dict[str, str]:
    """Inverse of :func:`encode_urunc_json`."""
    raw = json.loads(data)
    return {
        k: base64.b64decode(v, validate=True).decode("utf-8") for k, v in raw.items()
    }


def canonical_json(value: object) -> bytes:
    """Deterministic JSON: sorted keys, compact separators, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("ascii")
