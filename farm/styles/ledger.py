"""The machine's record of the network work it did without a compiled package, per network: what the
compile policy (:func:`farm.schedule.compile_mode`) weighs against the one-off cost of building one.

A package serves every later job of the network at any frame size (farm/styles/aot.py), so whether a
build pays is a question about the machine's use, not one job's: the ledger adds up each eager job's
network pixels per worker (frames x working size / workers, the part of a job's wall time the package
would shorten) until they pass the build's break-even, and the job that passes it builds. Torch-free:
the driver keeps it. It is the driver's machine's record; on a cluster, that stands for its nodes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from filelock import FileLock

from farm.config import StyleChoice


def ledger_path() -> Path:
    """``$FARM_COMPILE_LEDGER``, else beside the packages in the user's cache (an emptied cache forgets both)."""
    from platformdirs import user_cache_path

    env = os.environ.get("FARM_COMPILE_LEDGER", "").strip()
    return Path(env) if env else user_cache_path("farm") / "torch-compile" / "aot" / "eager-pixels.json"


def network_key(style: StyleChoice, precision: str) -> str:
    """One entry per network, weights file and precision: what decides which package a worker needs."""
    return f"{style.network}:{style.model_sha256 or 'built-in'}:{precision}"


def eager_pixels(key: str, path: Path | None = None) -> int:
    """Network pixels per worker this machine painted eagerly for ``key`` so far."""
    return int(read(path or ledger_path()).get(key, 0))


def add_eager_pixels(key: str, pixels: int, path: Path | None = None) -> None:
    """Count one more eager job (read, add, replace whole under a lock: concurrent jobs both count)."""
    path = path or ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        entries = read(path)
        entries[key] = int(entries.get(key, 0)) + int(pixels)
        partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(entries, indent=1, sort_keys=True))
        os.replace(partial, path)


def read(path: Path) -> dict[str, int]:
    """The entries; a missing or unreadable file is an empty ledger (it only delays a build)."""
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
