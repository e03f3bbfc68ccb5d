"""The record of what one container created on the host: ``<state dir>/resources.json``.

Every host module (cgroups, network) writes its entry here *before* making
the thing it names, so ``delete`` and every failure path can release exactly
what this container created, newest first, and nothing found by a pattern.
Writes are atomic against our own death (``write_atomic``).
"""

from __future__ import annotations

import os

from urunc import _errors, _jsonlite
from urunc._files import read_regular, write_atomic

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

RESOURCES_FILE = "resources.json"
MAX_BYTES = 1024 * 1024


def load(state_dir: str, *, strict: bool = True) -> list[Any]:
    """The recorded entries, oldest first; a corrupt record raises unless not STRICT."""
    try:
        resources = _jsonlite.loads(read_regular(os.path.join(state_dir, RESOURCES_FILE), MAX_BYTES, nofollow=True))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        if strict:
            why = exc.strerror if isinstance(exc, OSError) else "not json"
            raise _errors.HostError(f"corrupt {RESOURCES_FILE} in {state_dir}: {why}") from None
        return []
    return resources if isinstance(resources, list) else []


def save(state_dir: str, resources: list[Any]) -> None:
    write_atomic(os.path.join(state_dir, RESOURCES_FILE), _jsonlite.dumps(resources).encode())


def record(state_dir: str, entry: dict[str, Any], index: int | None = None) -> int:
    """Append ENTRY (INDEX None) or rewrite the entry at INDEX; return its index."""
    resources = load(state_dir)
    if index is None:
        resources.append(entry)
        index = len(resources) - 1
    else:
        resources[index] = entry
    save(state_dir, resources)
    return index
