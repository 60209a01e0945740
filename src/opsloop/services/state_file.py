"""Versioned JSON state files for learned models (template miner, detectors).

Written atomically with mode 0600; an unreadable or foreign-version file is moved aside to
``<name>.corrupt`` (never silently overwritten) and the caller starts fresh.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from opsloop.home import write_private

log = logging.getLogger("opsloop.state")


def load_state(path: Path | None, version: int) -> dict[str, Any] | None:
    """The state in ``path`` if it exists and has ``version``; ``None`` otherwise."""
    if path is None or not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        if not isinstance(state, dict) or state.get("version") != version:
            raise ValueError(f"unknown version {state.get('version')!r}")
    except (OSError, ValueError, AttributeError) as exc:
        set_aside(path, exc)
        return None
    return state


def set_aside(path: Path, error: Exception) -> None:
    """Move a state file that cannot be used to ``<name>.corrupt`` and say so in the log."""
    bad = path.with_suffix(".corrupt")
    path.replace(bad)
    log.warning(
        "state file unusable; relearning",
        extra={"fields": {"file": str(path), "error": str(error), "moved_to": str(bad)}},
    )


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically, readable by the owner only."""
    write_private(path, json.dumps(state, separators=(",", ":")))
