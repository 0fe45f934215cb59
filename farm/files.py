"""Writing user-facing files so that nobody ever sees half of one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """A temp path next to ``out``, renamed onto it only if the block succeeds (never a half file).

    The result gets the permissions a plain ``open(out, "w")`` would give it
    (mkstemp's are private), since videos, sheets and styles are meant to be shared.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix + ".part", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
