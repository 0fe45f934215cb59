"""Where a job's source video comes from, and where the cluster finds it.

A local file given to a job whose store is remote (S3) is uploaded once,
content-addressed (``sources/<sha256>/<name>``), so a second job on the same
file uploads nothing and workers or a driver on the cluster can read it. A
source given as ``s3://bucket/key`` is read from there: it is fetched to a
scratch folder for decoding (PyAV wants a seekable file).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from farm.errors import InputError, MissingObjectError
from farm.store import LocalStore, ObjectStore, S3Store, open_store, sha256_file


def is_remote(source: str) -> bool:
    return source.startswith("s3://")


def source_name(source: str) -> str:
    """The file name of a source path or URI (for default output names)."""
    return PurePosixPath(source).name if is_remote(source) else Path(source).name


def stage(store: ObjectStore, path: Path) -> str | None:
    """Upload a local source into a remote store once; returns its URI there (None for a local store)."""
    if isinstance(store, LocalStore):
        return None  # the driver reads it in place: copying a film within one disk buys nothing
    key = f"sources/{sha256_file(path)}/{path.name}"
    if not store.exists(key):
        store.put_file(key, path)
    return store.describe(key)


def localize(source: str) -> Path:
    """A local, seekable file for ``source``: the path itself, or an S3 object fetched to scratch."""
    if not is_remote(source):
        path = Path(source)
        if not path.exists():
            raise InputError(f"input not found: {source}")
        return path.resolve()
    bucket, _, key = source.removeprefix("s3://").partition("/")
    if not key:
        raise InputError(f"not an S3 object URI: {source}")
    scratch = Path(tempfile.mkdtemp(prefix="farm-source-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    local = scratch / PurePosixPath(key).name
    store: S3Store = open_store(f"s3://{bucket}")  # type: ignore[assignment]
    try:
        store.get_file(key, local)
    except MissingObjectError:
        raise InputError(f"input not found: {source}") from None
    return local
