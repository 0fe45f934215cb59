"""Where a job's source video comes from, and where the cluster finds it.

A local file given to a job whose store is remote (S3) is uploaded once,
content-addressed (``sources/<sha256>/<name>``), so a second job on the same
file uploads nothing and workers or a driver on the cluster can read it. A
source given as ``s3://bucket/key`` is read from there: it is fetched to a
scratch folder for decoding (PyAV wants a seekable file).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import shutil
import tempfile
from collections.abc import Sequence
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


def stage_photos(store: ObjectStore, base: Path, names: Sequence[str]) -> str | None:
    """Upload a photo sequence into a remote store, each photo once, content-addressed like a video, and
    a listing of them (``sources/<sha256>/photos.json``); returns the listing's URI (None for a local store)."""
    if isinstance(store, LocalStore):
        return None
    photos = []
    for name in names:
        key = f"sources/{sha256_file(base / name)}/{PurePosixPath(name).name}"
        if not store.exists(key):
            store.put_file(key, base / name)
        photos.append({"name": name, "uri": store.describe(key)})
    listing = json.dumps({"photos": photos}, indent=1).encode()
    key = f"sources/{hashlib.sha256(listing).hexdigest()}/{PHOTO_LISTING}"
    if not store.exists(key):
        store.put_bytes(key, listing)
    return store.describe(key)


#: the object that names a staged photo sequence's photos
PHOTO_LISTING = "photos.json"


def localize(source: str) -> Path:
    """A local, seekable file for ``source``: the path itself, or an S3 object fetched to scratch
    (a staged photo sequence: its photos, fetched into a scratch folder)."""
    from farm.video.images import is_sequence

    if not is_remote(source) and is_sequence(source):
        return Path(source).absolute()  # a folder or a glob: farm.video.images lists (and checks) it
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
        if local.name == PHOTO_LISTING:
            return _fetch_photos(store, json.loads(local.read_bytes()), scratch / "photos")
    except MissingObjectError:
        raise InputError(f"input not found: {source}") from None
    return local


def _fetch_photos(store: S3Store, listing: dict, folder: Path) -> Path:
    """Every photo a listing names, from the bucket ``store`` opens at its root, into ``folder``."""
    for photo in listing["photos"]:
        _, _, key = photo["uri"].removeprefix("s3://").partition("/")
        store.get_file(key, folder / photo["name"])
    return folder
