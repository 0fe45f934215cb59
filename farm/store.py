"""Where bulk bytes live: the ``ObjectStore`` protocol, a local directory, and S3.

Chunks, manifests and final videos travel through an object store, never
through Ray's object store (DESIGN.md, "The data path"). Two backends sit
behind one small protocol, the simple one as the default (httpx transports):

- :class:`LocalStore`: a directory; writes are atomic (temp file + ``os.replace``)
  so "the output object exists" can mean "the chunk is done".
- :class:`S3Store`: boto3, configured only through boto3's standard chain
  (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, profiles, ``AWS_MAX_ATTEMPTS``...).

Keys are relative, '/'-separated strings (``jobs/<id>/output/00003.mkv``).
A store is named by its ``uri``; Ray actors get the URI and call
:func:`open_store` again, because a boto3 client does not pickle.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from farm.errors import ConfigError, MissingObjectError, StoreError
from farm.files import atomic_path

if TYPE_CHECKING:
    from botocore.client import BaseClient

MiB = 1024 * 1024

# Temp files of atomic local writes carry this prefix; list() skips them and no key part may use it.
_TMP_PREFIX = ".farm-tmp-"

# Transfer tuning: above the threshold boto3 uploads in parts (retried one by one, in parallel).
MULTIPART_THRESHOLD = 16 * MiB
#: reads of one object's body before get_file gives up (as boto3's managed download retries them)
STREAM_ATTEMPTS = 3
MULTIPART_CHUNKSIZE = 16 * MiB
# Total attempts per S3 request unless AWS_MAX_ATTEMPTS / the profile's max_attempts says otherwise.
DEFAULT_MAX_ATTEMPTS = 10
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0

_BUCKET_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$")


@runtime_checkable
class ObjectStore(Protocol):
    """What the farm needs from a blob store; every backend passes the same test suite."""

    uri: str

    def put_file(self, key: str, path: Path) -> None:
        """Store the file at ``path`` under ``key``, replacing any object there, atomically."""
        ...

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, atomically."""
        ...

    def get_file(self, key: str, path: Path) -> None:
        """Copy the object to ``path`` (parents created); MissingObjectError if absent."""
        ...

    def get_bytes(self, key: str) -> bytes:
        """The object's bytes; MissingObjectError if absent."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when absent."""
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Sorted keys that start with ``prefix`` (a plain string prefix, as in S3)."""
        ...

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key that starts with ``prefix`` and its size in bytes, in one listing (S3: one LIST
        request per 1,000 keys), so a job's progress costs no request per chunk."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object whose key starts with ``prefix``; nothing there is fine."""
        ...

    def delete_keys(self, keys: list[str]) -> None:
        """Delete these objects (S3: 1,000 a request); a key already gone is fine."""
        ...

    def local_path(self, key: str) -> Path | None:
        """A readable file holding the object when the store is on this disk (saves a copy), else None."""
        ...

    def describe(self, key: str) -> str:
        """Where the object lives, for humans: a path or s3://bucket/key."""
        ...


# --------------------------------------------------------------------------- keys


def check_key(key: str) -> str:
    """Return ``key`` if it is a safe relative key, else raise ValueError.

    A bad key is a programming error, and letting '..' or a leading '/' through
    would let a job id escape the store root on disk.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"object key must be a non-empty string, got {key!r}")
    if key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"bad object key {key!r}: no leading '/', backslash or NUL")
    for part in key.split("/"):
        if part in ("", ".", "..") or part.startswith(_TMP_PREFIX):
            raise ValueError(f"bad object key {key!r}: empty, '.', '..' or reserved part {part!r}")
    return key


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is '' or a key, optionally ending in one '/'."""
    if prefix == "":
        return prefix
    check_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, streamed so a multi-GB chunk never sits in memory."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _require_source(path: Path) -> Path:
    """The upload source as a Path; a missing source is the caller's bug, not a store failure."""
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"no file to store at {src}")
    return src


# --------------------------------------------------------------------------- local


class LocalStore:
    """A directory as an object store: key ``a/b`` is the file ``root/a/b``.

    Writes go to a temp file in the destination directory, are fsynced, then
    ``os.replace``d: a reader (or a resumed job) sees the old object or the
    whole new one, never half a chunk. The root is created on first write, so
    opening the default store touches nothing.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self.uri = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStore) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __reduce__(self) -> tuple[Callable[..., ObjectStore], tuple[str]]:
        """Pickle as the URI, the same way stores travel to Ray actors."""
        return (open_store, (self.uri,))

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def ensure_root(self) -> None:
        """Create the root now: a directory that cannot be made is the user's error (a bad --store),
        said before a job starts rather than as a failed write halfway through it."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            if not os.access(self.root, os.W_OK | os.X_OK):
                raise PermissionError(13, "permission denied")
        except OSError as exc:
            raise ConfigError(f"store {self.root}: cannot create or write the directory "
                              f"({exc.strerror or exc})") from None

    def put_file(self, key: str, path: Path) -> None:
        src = _require_source(path)
        dest = self._path(key)
        with _os_errors("store", dest):
            _atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp))

    def put_bytes(self, key: str, data: bytes) -> None:
        dest = self._path(key)
        with _os_errors("store", dest):
            _atomic_write(dest, lambda tmp: tmp.write_bytes(data))

    def get_file(self, key: str, path: Path) -> None:
        src, dest = self._path(key), Path(path)
        with _os_errors("read", src):
            if not src.is_file():
                raise MissingObjectError(f"no object at {src}")
            if dest.exists() and dest.samefile(src):
                return  # the caller already holds local_path(key)
            _atomic_write(dest, lambda tmp: shutil.copyfile(src, tmp), durable=False)

    def get_bytes(self, key: str) -> bytes:
        src = self._path(key)
        with _os_errors("read", src):
            if not src.is_file():
                raise MissingObjectError(f"no object at {src}")
            return src.read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        with _os_errors("stat", path):
            return path.stat().st_size if path.is_file() else None

    def list(self, prefix: str = "") -> list[str]:
        check_prefix(prefix)
        base_key, _, partial = prefix.rpartition("/")
        base = self.root.joinpath(*base_key.split("/")) if base_key else self.root
        with _os_errors("list", base):
            keys = [k for k in _walk_keys(base, base_key, partial) if k.startswith(prefix)]
        return sorted(keys)

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        sizes = {}
        for key in self.list(prefix):
            with contextlib.suppress(FileNotFoundError):  # deleted since it was listed
                sizes[key] = self._path(key).stat().st_size
        return sizes

    def delete_prefix(self, prefix: str) -> None:
        check_prefix(prefix)
        for key in self.list(prefix):
            path = self._path(key)
            with _os_errors("delete", path), contextlib.suppress(FileNotFoundError):
                path.unlink()
            _prune_empty_dirs(path.parent, self.root)

    def delete_keys(self, keys: list[str]) -> None:
        for key in keys:
            path = self._path(key)
            with _os_errors("delete", path), contextlib.suppress(FileNotFoundError):
                path.unlink()
            _prune_empty_dirs(path.parent, self.root)

    def local_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def describe(self, key: str) -> str:
        return str(self._path(key))


def _atomic_write(dest: Path, fill: Callable[[Path], Any], *, durable: bool = True) -> None:
    """Write ``dest`` through farm.files.atomic_path; a local copy for reading skips the fsync.

    The temp file carries _TMP_PREFIX, so list() never reports a half-written object.
    """
    with atomic_path(dest, durable=durable, prefix=_TMP_PREFIX) as tmp:
        fill(tmp)


def _walk_keys(base: Path, base_key: str, partial: str) -> Iterator[str]:
    """Keys of the files under ``base`` whose first name starts with ``partial``; temp files skipped."""
    head = f"{base_key}/" if base_key else ""
    try:
        with os.scandir(base) as it:
            entries = [e for e in it if e.name.startswith(partial) and not e.name.startswith(_TMP_PREFIX)]
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there, or deleted while we walked: no keys, as S3 would say
    for entry in entries:
        if entry.is_file():
            yield head + entry.name
        elif entry.is_dir():
            yield from _walk_keys(Path(entry.path), head + entry.name, "")


def _prune_empty_dirs(directory: Path, root: Path) -> None:
    """Remove now-empty directories up to (not including) the root, so deleted jobs leave no husks."""
    while directory != root and root in directory.parents:
        try:
            directory.rmdir()
        except OSError:
            return  # not empty (or already gone): stop climbing
        directory = directory.parent


@contextlib.contextmanager
def _os_errors(action: str, path: Path) -> Iterator[None]:
    """Turn a disk failure (full, permissions) into a one-line StoreError naming the path."""
    try:
        yield
    except OSError as exc:
        raise StoreError(f"cannot {action} {path}: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------- S3


def make_s3_client() -> BaseClient:
    """A boto3 S3 client from the standard chain, with retries and timeouts that suit a farm.

    Endpoint, region and credentials come only from boto3's chain (env,
    profiles, instance roles). Retries use the "standard" mode (exponential
    backoff with jitter on connection errors, 5xx and throttling) unless
    AWS_RETRY_MODE says otherwise; the attempt count defaults to
    DEFAULT_MAX_ATTEMPTS but AWS_MAX_ATTEMPTS / a profile's max_attempts wins,
    which is how tests and operators shorten or lengthen the retry budget.
    """
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.get_session()
    retries: dict[str, Any] = {}
    if core.get_config_variable("max_attempts") is None:
        retries["total_max_attempts"] = DEFAULT_MAX_ATTEMPTS
    config = Config(retries=retries, connect_timeout=CONNECT_TIMEOUT_S, read_timeout=READ_TIMEOUT_S)
    return boto3.session.Session(botocore_session=core).client("s3", config=config)


def _transfer_config() -> Any:
    """Multipart above 16 MiB through boto3's managed transfer; classic client for the same code everywhere."""
    from boto3.s3.transfer import TransferConfig

    return TransferConfig(multipart_threshold=MULTIPART_THRESHOLD, multipart_chunksize=MULTIPART_CHUNKSIZE,
                          max_concurrency=4, preferred_transfer_client="classic")


class S3Store:
    """Objects under ``s3://bucket/prefix/``, through boto3.

    S3 PUTs are atomic per object, so no temp-key dance is needed. Failures
    come out as one-line StoreErrors (bucket, key, error code), a missing key
    on a get as MissingObjectError. The bucket is never created implicitly:
    a typo in a bucket name must fail loudly, not scatter chunks into a new
    bucket (``ensure_bucket`` exists for tests and development).
    """

    def __init__(self, bucket: str, prefix: str = "", *, client: BaseClient | None = None) -> None:
        if not _BUCKET_RE.match(bucket):
            raise ValueError(f"bad S3 bucket name {bucket!r}")
        self.bucket = bucket
        self.prefix = _normalize_prefix(prefix)
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = client
        self._client_lock = threading.Lock()
        self._bucket_seen = False

    def __repr__(self) -> str:
        return f"S3Store({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, S3Store) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __reduce__(self) -> tuple[Callable[..., ObjectStore], tuple[str]]:
        """Pickle as the URI: the receiving process builds its own client from its own environment."""
        return (open_store, (self.uri,))

    @property
    def client(self) -> BaseClient:
        """The boto3 client, made on first use: naming a store (``open_store(uri).uri``) must not
        walk the credential chain, which may probe the network for an instance role."""
        if self._client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = make_s3_client()
        return self._client

    def _full(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        check_prefix(prefix)
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def put_file(self, key: str, path: Path) -> None:
        src, full = _require_source(path), self._full(key)
        with self._errors("upload", full):
            self.client.upload_file(str(src), self.bucket, full, Config=_transfer_config())

    def put_bytes(self, key: str, data: bytes) -> None:
        full = self._full(key)
        with self._errors("upload", full):
            self.client.put_object(Bucket=self.bucket, Key=full, Body=data)

    def get_file(self, key: str, path: Path) -> None:
        """One GET streamed to a temp name, renamed onto ``path`` (no half file there); an object above the
        multipart threshold goes through boto3's managed download instead (ranged GETs in parallel).
        One request for a chunk instead of a HEAD and a GET, and no transfer thread pool per call."""
        from botocore.exceptions import ReadTimeoutError, ResponseStreamingError

        full, dest = self._full(key), Path(path)
        with self._errors("download", full):
            for attempt in range(1, STREAM_ATTEMPTS + 1):
                try:
                    return self._get_file(full, dest)
                except (ReadTimeoutError, ResponseStreamingError):  # the body broke off: botocore retries
                    if attempt == STREAM_ATTEMPTS:                  # requests, not reads of a body
                        raise

    def _get_file(self, full: str, dest: Path) -> None:
        response = self.client.get_object(Bucket=self.bucket, Key=full)
        with contextlib.closing(response["Body"]) as body:
            if response["ContentLength"] > MULTIPART_THRESHOLD:
                dest.parent.mkdir(parents=True, exist_ok=True)
                self.client.download_file(self.bucket, full, str(dest), Config=_transfer_config())
                return
            with atomic_path(dest) as part, open(part, "wb") as out:
                for block in body.iter_chunks(MiB):
                    out.write(block)

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        with self._errors("download", full):
            return self.client.get_object(Bucket=self.bucket, Key=full)["Body"].read()

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def size(self, key: str) -> int | None:
        full = self._full(key)
        try:
            with self._errors("stat", full):
                return int(self.client.head_object(Bucket=self.bucket, Key=full)["ContentLength"])
        except MissingObjectError:
            return None

    def list(self, prefix: str = "") -> list[str]:
        return sorted(self._relative(k) for k in self._list_full(self._full_prefix(prefix)))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        full_prefix = self._full_prefix(prefix)
        with self._errors("list", full_prefix):
            return {self._relative(obj["Key"]): int(obj["Size"]) for obj in self._objects(full_prefix)}

    def delete_prefix(self, prefix: str) -> None:
        full_prefix = self._full_prefix(prefix)
        keys = self._list_full(full_prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            self._delete_batch(keys[start:start + 1000], full_prefix)

    def delete_keys(self, keys: list[str]) -> None:
        full = [self._full(k) for k in keys]
        for start in range(0, len(full), 1000):
            self._delete_batch(full[start:start + 1000], full[start])

    def local_path(self, key: str) -> Path | None:
        self._full(key)
        return None

    def describe(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def ensure_bucket(self) -> None:
        """Create the bucket if it is missing: for tests and development only, never on a job's path."""
        with self._errors("create bucket", ""):
            if self._bucket_exists():
                return
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            region = self.client.meta.region_name
            if region and region != "us-east-1":  # AWS rejects the default region as a constraint
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
            with contextlib.suppress(self.client.exceptions.BucketAlreadyOwnedByYou):
                self.client.create_bucket(**kwargs)
        self._bucket_seen = True

    # -- helpers

    def _relative(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    def _list_full(self, full_prefix: str) -> list[str]:
        """Every full key under the prefix, across pages."""
        with self._errors("list", full_prefix):
            return [obj["Key"] for obj in self._objects(full_prefix)]

    def _objects(self, full_prefix: str) -> Iterator[dict[str, Any]]:
        """ListObjectsV2's entries (key, size...) under the prefix, page after page (1,000 a page)."""
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=full_prefix)
        for page in pages:
            yield from page.get("Contents", [])

    def _delete_batch(self, keys: list[str], full_prefix: str) -> None:
        with self._errors("delete", full_prefix):
            reply = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        if errors := reply.get("Errors"):
            first = errors[0]
            raise StoreError(f"delete s3://{self.bucket}/{first.get('Key')} failed: {first.get('Code')} "
                             f"({len(errors)} of {len(keys)} keys not deleted)")

    def _bucket_exists(self) -> bool:
        """HEAD the bucket; a 404 means it is not there (anything else propagates)."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if _error_code(exc) in ("404", "NoSuchBucket", "NotFound"):
                return False
            raise
        return True

    def _missing(self, full: str) -> StoreError:
        """A 404 on a key: say so, unless the bucket itself is missing (HEAD answers 404 for both)."""
        missing = MissingObjectError(f"no object at s3://{self.bucket}/{full}")
        if self._bucket_seen:
            return missing
        try:
            bucket_there = self._bucket_exists()
        except Exception:  # cannot tell right now: the 404 we just got is the best evidence
            return missing
        if not bucket_there:
            return StoreError(self._no_bucket_message())
        self._bucket_seen = True
        return missing

    def _no_bucket_message(self) -> str:
        return (f"S3 bucket '{self.bucket}' does not exist at {self._endpoint()} "
                f"(farm never creates buckets; create it or fix the store URI)")

    def _endpoint(self) -> str:
        return str(self.client.meta.endpoint_url)

    def _attempts(self) -> int | None:
        return (self.client.meta.config.retries or {}).get("total_max_attempts")

    @contextlib.contextmanager
    def _errors(self, action: str, full: str) -> Iterator[None]:
        """Translate boto3/botocore failures into one-line StoreErrors; the traceback stays hidden."""
        import boto3.exceptions
        import botocore.exceptions

        try:
            yield
        except StoreError:
            raise
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError,
                boto3.exceptions.Boto3Error) as exc:
            raise self._translate(exc, action, full) from None
        except OSError as exc:  # the local side of a transfer: disk full, unreadable file
            raise StoreError(f"{action} s3://{self.bucket}/{full}: local file error: {exc.strerror or exc}") from None

    def _translate(self, exc: Exception, action: str, full: str) -> StoreError:
        """The StoreError for a boto failure: missing key, missing bucket, denied, unreachable, other."""
        from botocore.exceptions import (BotoCoreError, ClientError, ConnectionError, HTTPClientError,
                                         NoCredentialsError, PartialCredentialsError)

        cause = _root_cause(exc)
        where = f"s3://{self.bucket}/{full}"
        if isinstance(cause, ClientError):
            code = _error_code(cause)
            if code in ("NoSuchBucket",):
                self._bucket_seen = False
                return StoreError(self._no_bucket_message())
            if code in ("NoSuchKey", "404", "NotFound"):
                return self._missing(full)
            if code in _DENIED_CODES:
                return StoreError(f"{action} {where}: access denied ({code}); check the AWS credentials "
                                  f"for {self._endpoint()}")
            message = _one_line(cause.response.get("Error", {}).get("Message", ""))
            return StoreError(f"{action} {where} failed: {code} {message}".rstrip())
        if isinstance(cause, (NoCredentialsError, PartialCredentialsError)):
            return StoreError(f"{action} {where}: no usable S3 credentials (set AWS_ACCESS_KEY_ID and "
                              f"AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)")
        if isinstance(cause, (ConnectionError, HTTPClientError)):
            return StoreError(f"{action} {where}: cannot reach S3 at {self._endpoint()} after "
                              f"{self._attempts() or 'several'} attempts ({type(cause).__name__})")
        if isinstance(cause, BotoCoreError):
            return StoreError(f"{action} {where} failed: {_one_line(str(cause))}")
        return StoreError(f"{action} {where} failed: {type(exc).__name__}: {_one_line(str(exc))}")


_DENIED_CODES = frozenset({"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                           "ExpiredToken", "InvalidToken", "AllAccessDisabled"})


def _error_code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


def _root_cause(exc: Exception) -> BaseException:
    """The botocore error under boto3's transfer wrappers (S3UploadFailedError, RetriesExceededError)."""
    from botocore.exceptions import BotoCoreError, ClientError

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (ClientError, BotoCoreError)):
            return seen
        seen = getattr(seen, "last_exception", None) or seen.__cause__ or seen.__context__
    return exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _normalize_prefix(prefix: str) -> str:
    """The store's key prefix without surrounding slashes ('' for the bucket root)."""
    stripped = prefix.strip("/")
    return check_key(stripped) if stripped else ""


# --------------------------------------------------------------------------- open_store


def default_store_root() -> Path:
    """The per-user cache directory that holds the default local store."""
    from platformdirs import user_cache_path

    return user_cache_path("farm") / "store"


def open_store(uri: str | None) -> ObjectStore:
    """The store a URI names: None → $FARM_STORE or the user cache; a path or file:// → local; s3:// → S3.

    ``open_store(store.uri)`` rebuilds an equivalent store, which is how stores
    reach Ray actors. $FARM_STORE may hold any URI this function accepts.
    """
    if uri is None:
        env = os.environ.get("FARM_STORE", "").strip()
        return open_store(env) if env else LocalStore(default_store_root())
    if not isinstance(uri, str) or not uri.strip():
        raise ConfigError(f"empty object store URI {uri!r}")
    if "://" not in uri:
        return LocalStore(Path(uri))
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ConfigError(f"object store URI {uri!r} must not carry a query or fragment")
    if scheme == "file":
        return _open_file_uri(uri, parts.netloc, parts.path)
    if scheme == "s3":
        return _open_s3_uri(uri, parts.netloc, parts.path)
    raise ConfigError(f"unsupported object store URI {uri!r}: use a path, file://PATH or s3://BUCKET/PREFIX")


def _open_file_uri(uri: str, host: str, path: str) -> LocalStore:
    if host not in ("", "localhost") or not path:
        raise ConfigError(f"bad file URI {uri!r}: expected file:///absolute/path")
    return LocalStore(Path(unquote(path)))


def _open_s3_uri(uri: str, bucket: str, path: str) -> S3Store:
    if not _BUCKET_RE.match(bucket):
        raise ConfigError(f"bad S3 URI {uri!r}: expected s3://BUCKET/PREFIX with a valid bucket name")
    try:
        return S3Store(bucket, unquote(path))
    except ValueError as exc:
        raise ConfigError(f"bad S3 URI {uri!r}: {exc}") from None
