"""Writing files so that nobody ever sees half of one: the one atomic-write helper of farm.

Every file farm writes where someone else may look (the user's videos, GIFs,
frames, sheets and styles; a local store's objects) goes through
:func:`atomic_path`: the bytes go to a temp file in the same directory, which
is renamed over the destination only once complete.
"""

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
def atomic_path(out: Path, *, durable: bool = False, prefix: str | None = None) -> Iterator[Path]:
    """A temp path next to ``out``, renamed onto it only if the block succeeds (never a half file).

    The temp name is unique (two deliveries to one path never share it) and
    ends in ``out``'s own suffix, so tools that pick a format by extension
    (PyAV, Pillow) see the real one. ``durable`` fsyncs the bytes before the
    rename, so "the file exists" survives a crash with its content (the
    store's resume rule relies on it). The result gets the permissions a plain
    ``open(out, "w")`` would give it (mkstemp's are private).
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=prefix or f".{out.stem}.", suffix=f".part{out.suffix}", dir=out.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if durable:
            _fsync(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
