"""The object store: one behaviour suite run on LocalStore and on S3Store against a real SeaweedFS.

No mocks for S3: a `weed` server on loopback (tests/s3server.py) is started
once for this module; S3 tests are marked `s3` and skipped when the binary is
absent. Every S3 test gets its own key prefix in one shared bucket.
"""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from pathlib import Path

import pytest

from farm.errors import ConfigError, MissingObjectError, StoreError
from farm.store import LocalStore, ObjectStore, S3Store, default_store_root, open_store, sha256_file
from tests.s3server import SeaweedS3

from tests.conftest import BUCKET
MiB = 1024 * 1024


# --------------------------------------------------------------------------- fixtures


def s3_store(prefix: str | None = None) -> S3Store:
    return S3Store(BUCKET, prefix or f"t/{uuid.uuid4().hex}")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """Each behaviour test runs on both backends."""
    if request.param == "local":
        return LocalStore(tmp_path / "store")
    request.getfixturevalue("s3_env")
    return s3_store()


def count_requests(store: S3Store, event: str = "before-send.s3") -> list[str]:
    """Record every HTTP attempt the store's client makes (a deterministic bound on retries)."""
    seen: list[str] = []
    store.client.meta.events.register(event, lambda **kw: seen.append(kw.get("event_name", "")))
    return seen


# --------------------------------------------------------------------------- behaviour, both backends


def test_is_an_object_store(store: ObjectStore) -> None:
    assert isinstance(store, ObjectStore)


def test_bytes_round_trip_and_overwrite(store: ObjectStore) -> None:
    store.put_bytes("jobs/j1/manifest.json", b'{"v": 1}')
    assert store.get_bytes("jobs/j1/manifest.json") == b'{"v": 1}'
    store.put_bytes("jobs/j1/manifest.json", b'{"v": 2}')
    assert store.get_bytes("jobs/j1/manifest.json") == b'{"v": 2}'


def test_file_round_trip_creates_parents(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "chunk.mkv"
    src.write_bytes(os.urandom(100_000))
    store.put_file("jobs/j1/input/00000.mkv", src)
    dest = tmp_path / "deep" / "er" / "copy.mkv"
    store.get_file("jobs/j1/input/00000.mkv", dest)
    assert dest.read_bytes() == src.read_bytes()


def test_exists_and_size(store: ObjectStore) -> None:
    assert not store.exists("a/b")
    assert store.size("a/b") is None
    store.put_bytes("a/b", b"12345")
    store.put_bytes("a/empty", b"")
    assert store.exists("a/b") and store.size("a/b") == 5
    assert store.exists("a/empty") and store.size("a/empty") == 0
    assert not store.exists("a")  # a "directory" is not an object


def test_list_is_sorted_string_prefix(store: ObjectStore) -> None:
    for key in ["b", "a/2", "ab/x", "a/10", "a/sub/z"]:
        store.put_bytes(key, key.encode())
    assert store.list() == ["a/10", "a/2", "a/sub/z", "ab/x", "b"]
    assert store.list("a/") == ["a/10", "a/2", "a/sub/z"]
    assert store.list("a") == ["a/10", "a/2", "a/sub/z", "ab/x"]
    assert store.list("a/1") == ["a/10"]
    assert store.list("nothing/") == []


def test_list_sizes_gives_every_key_with_its_size(store: ObjectStore) -> None:
    for key, size in [("a/1", 3), ("a/sub/2", 0), ("ab/3", 7), ("b", 1)]:
        store.put_bytes(key, b"x" * size)
    assert store.list_sizes("a/") == {"a/1": 3, "a/sub/2": 0}
    assert store.list_sizes() == {"a/1": 3, "a/sub/2": 0, "ab/3": 7, "b": 1}
    assert store.list_sizes("nothing/") == {}


def test_delete_keys_deletes_those_and_no_others(store: ObjectStore) -> None:
    for key in ["j/output/1.json", "j/output/1.mp4", "j/output/2.mp4", "j/manifest.json"]:
        store.put_bytes(key, b"x")
    store.delete_keys(["j/output/1.mp4", "j/output/2.mp4", "j/output/3.mp4"])  # one never was: fine
    assert store.list() == ["j/manifest.json", "j/output/1.json"]
    store.delete_keys([])


def test_delete_prefix(store: ObjectStore) -> None:
    for key in ["jobs/j1/input/0", "jobs/j1/output/0", "jobs/j10/input/0", "jobs/j2/input/0"]:
        store.put_bytes(key, b"x")
    store.delete_prefix("jobs/j1/")
    assert store.list() == ["jobs/j10/input/0", "jobs/j2/input/0"]
    store.delete_prefix("jobs/j2/input/0")  # a whole key is a prefix too (the driver drops one receipt so)
    assert store.list() == ["jobs/j10/input/0"]
    store.delete_prefix("nothing/")  # deleting nothing is fine


def test_missing_key_raises_missing_object(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(MissingObjectError, match="nope"):
        store.get_bytes("jobs/nope")
    dest = tmp_path / "out.bin"
    with pytest.raises(MissingObjectError):
        store.get_file("jobs/nope", dest)
    assert not dest.exists()


BAD_KEYS = ["", "/abs", "a/../b", "..", "a//b", "a/", "a\\b", "./a", "a/./b", ".farm-tmp-x", "a/\x00"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_refused(store: ObjectStore, key: str, tmp_path: Path) -> None:
    src = tmp_path / "f"
    src.write_bytes(b"x")
    calls = [lambda: store.put_bytes(key, b"x"), lambda: store.put_file(key, src),
             lambda: store.get_bytes(key), lambda: store.get_file(key, tmp_path / "g"),
             lambda: store.exists(key), lambda: store.size(key), lambda: store.local_path(key),
             lambda: store.describe(key)]
    for call in calls:
        with pytest.raises(ValueError, match="key"):
            call()


@pytest.mark.parametrize("prefix", ["/a", "../", "a//", "a/../", "\\"])
def test_bad_prefixes_refused(store: ObjectStore, prefix: str) -> None:
    with pytest.raises(ValueError):
        store.list(prefix)
    with pytest.raises(ValueError):
        store.delete_prefix(prefix)


def test_uri_reopens_an_equivalent_store(store: ObjectStore) -> None:
    store.put_bytes("k", b"v")
    again = open_store(store.uri)
    assert type(again) is type(store) and again.uri == store.uri
    assert again.get_bytes("k") == b"v"
    assert pickle.loads(pickle.dumps(store)).get_bytes("k") == b"v"  # stores pickle as their URI


def test_multipart_sized_file_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * MiB))
    parts = count_requests(store, "before-call.s3.UploadPart") if isinstance(store, S3Store) else None
    store.put_file("jobs/big/final/video.mp4", src)
    assert store.size("jobs/big/final/video.mp4") == 20 * MiB
    dest = tmp_path / "back.bin"
    store.get_file("jobs/big/final/video.mp4", dest)
    assert sha256_file(dest) == sha256_file(src)
    if parts is not None:
        assert len(parts) == 2  # 16 MiB threshold and part size: 16 + 4 MiB


# --------------------------------------------------------------------------- LocalStore specifics


def test_local_path_and_describe(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    assert store.local_path("a/b") is None
    store.put_bytes("a/b", b"x")
    assert store.local_path("a/b") == tmp_path / "s" / "a" / "b"
    assert store.local_path("a/b").read_bytes() == b"x"
    assert store.describe("a/b") == str(tmp_path / "s" / "a" / "b")
    store.get_file("a/b", store.local_path("a/b"))  # reading onto itself is a no-op, not an error
    assert store.get_bytes("a/b") == b"x"


def test_local_root_created_lazily(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "later")
    assert store.list() == [] and not store.exists("x")
    assert not (tmp_path / "later").exists()


def test_local_write_goes_through_a_hidden_temp_in_the_same_dir(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path / "s")
    replaced: list[tuple[Path, Path, list[str]]] = []
    real_replace = os.replace

    def spy(src, dst):
        replaced.append((Path(src), Path(dst), store.list()))  # what a reader sees just before the rename
        real_replace(src, dst)

    monkeypatch.setattr("farm.store.os.replace", spy)
    store.put_bytes("jobs/j/output/0.mkv", b"frames")
    (tmp, final, visible), = replaced
    assert tmp.parent == final.parent and tmp.name.startswith(".")
    assert visible == []  # neither the temp nor a half object is listed
    assert os.listdir(final.parent) == ["0.mkv"]


def test_local_failed_write_leaves_old_object_and_no_temp(tmp_path: Path, monkeypatch) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("a/obj", b"old")
    src = tmp_path / "new.bin"
    src.write_bytes(b"new" * 1000)

    def crash(from_path, to_path):
        Path(to_path).write_bytes(b"ne")  # half written, then the process "dies"
        raise KeyboardInterrupt

    monkeypatch.setattr("farm.store.shutil.copyfile", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put_file("a/obj", src)
    assert store.get_bytes("a/obj") == b"old"
    assert os.listdir(tmp_path / "s" / "a") == ["obj"]


def test_local_leftover_temps_are_invisible(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("a/real", b"x")
    (tmp_path / "s" / "a" / ".farm-tmp-deadbeef").write_bytes(b"half")  # from a killed writer
    assert store.list() == ["a/real"] and store.list("a/") == ["a/real"]


def test_local_disk_failure_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    store = LocalStore(tmp_path / "file")  # the root is a file: nothing can be written under it
    with pytest.raises(StoreError, match="cannot store"):
        store.put_bytes("a/b", b"x")


def test_delete_prefix_prunes_empty_dirs(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "s")
    store.put_bytes("jobs/j1/output/0", b"x")
    store.put_bytes("jobs/j2/output/0", b"x")
    store.delete_prefix("jobs/j1/")
    assert sorted(os.listdir(tmp_path / "s" / "jobs")) == ["j2"]


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


# --------------------------------------------------------------------------- open_store


def test_open_store_plain_path(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s"))
    assert isinstance(store, LocalStore) and store.root == (tmp_path / "s").resolve()
    assert store.uri == (tmp_path / "s").resolve().as_uri()


def test_open_store_file_uri(tmp_path: Path) -> None:
    root = tmp_path / "with space"
    store = open_store(root.as_uri())
    assert isinstance(store, LocalStore) and store.root == root.resolve()
    assert open_store(f"file://localhost{root}").root == root.resolve()


def test_open_store_s3_uri(aws_isolated: None) -> None:
    store = open_store("s3://my-bucket/some/prefix/")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.uri) == ("my-bucket", "some/prefix", "s3://my-bucket/some/prefix")
    assert store.describe("a/b") == "s3://my-bucket/some/prefix/a/b"
    assert store.local_path("a/b") is None
    bare = open_store("s3://my-bucket")
    assert (bare.prefix, bare.uri, bare.describe("k")) == ("", "s3://my-bucket", "s3://my-bucket/k")


@pytest.mark.parametrize("uri", ["ftp://host/x", "gs://bucket/p", "http://127.0.0.1/x", "s3://", "s3:///p",
                                 "s3://bucket/a/../b", "s3://bucket/p?versionId=1", "file://otherhost/x", ""])
def test_open_store_bad_uri(uri: str, aws_isolated: None) -> None:
    with pytest.raises(ConfigError) as info:
        open_store(uri)
    assert repr(uri) in str(info.value)


def test_open_store_default_uses_farm_store(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("FARM_STORE", str(tmp_path / "env-store"))
    assert open_store(None) == LocalStore(tmp_path / "env-store")


def test_open_store_default_is_user_cache(monkeypatch) -> None:
    monkeypatch.delenv("FARM_STORE", raising=False)
    store = open_store(None)
    assert isinstance(store, LocalStore) and store.root == default_store_root().resolve()
    assert default_store_root().parts[-2:] == ("farm", "store")


# --------------------------------------------------------------------------- S3 specifics


pytest_s3 = pytest.mark.s3


@pytest_s3
def test_s3_missing_bucket_is_a_clear_store_error(s3_env: SeaweedS3, tmp_path: Path) -> None:
    store = S3Store("farm-no-such-bucket", "p")
    src = tmp_path / "f"
    src.write_bytes(b"x")
    calls = [lambda: store.put_bytes("k", b"x"), lambda: store.put_file("k", src),
             lambda: store.get_bytes("k"), lambda: store.get_file("k", tmp_path / "g"),
             lambda: store.exists("k"), lambda: store.size("k"), lambda: store.list(),
             lambda: store.delete_prefix("")]
    for call in calls:
        with pytest.raises(StoreError) as info:
            call()
        assert type(info.value) is StoreError  # not MissingObjectError: the bucket, not the key, is missing
        message = str(info.value)
        assert "bucket 'farm-no-such-bucket' does not exist" in message and "\n" not in message


@pytest_s3
def test_s3_ensure_bucket_creates_once(s3_env: SeaweedS3) -> None:
    store = S3Store("farm-made-by-ensure")
    store.ensure_bucket()
    store.ensure_bucket()
    store.put_bytes("k", b"v")
    assert store.get_bytes("k") == b"v"


@pytest_s3
def test_s3_wrong_secret_is_denied_without_leaking(s3_env: SeaweedS3, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-0123456789")
    with pytest.raises(StoreError) as info:
        s3_store().put_bytes("k", b"v")
    message = str(info.value)
    assert "access denied" in message and "\n" not in message
    assert "not-the-secret" not in message and s3_env.secret_key not in message


@pytest_s3
def test_s3_survives_a_restart_between_operations(s3_env: SeaweedS3) -> None:
    store = s3_store()
    store.put_bytes("before", b"1")
    s3_env.restart()  # pooled keep-alive connections are now dead
    assert store.get_bytes("before") == b"1"
    store.put_bytes("after", b"2")
    assert store.list() == ["after", "before"]


@pytest_s3
def test_s3_retries_until_the_server_is_back(s3_env: SeaweedS3, monkeypatch) -> None:
    # 12 attempts of jittered backoff add up to far more than a ~2.5 s restart (expected ~30 s of budget).
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "12")
    store = s3_store()
    store.put_bytes("k", b"kept")
    first_sent, failures = threading.Event(), []
    attempts = count_requests(store)
    store.client.meta.events.register("before-send.s3", lambda **kw: first_sent.set())

    def bring_back() -> None:
        first_sent.wait()
        try:
            s3_env.start()
        except Exception as exc:  # reported below; the get then fails on its own
            failures.append(exc)

    s3_env.stop()
    thread = threading.Thread(target=bring_back, daemon=True)
    attempts.clear()
    thread.start()
    try:
        data = store.get_bytes("k")
    finally:
        first_sent.set()
        thread.join()
    assert not failures
    assert data == b"kept"
    assert len(attempts) >= 2  # the first attempt went out while the server was down


@pytest_s3
def test_s3_down_fails_with_one_line_after_bounded_attempts(s3_env: SeaweedS3, monkeypatch) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    store = s3_store()
    attempts = count_requests(store)
    s3_env.stop()
    try:
        for call in (lambda: store.put_bytes("k", b"v"), lambda: store.get_bytes("k"),
                     lambda: store.exists("k"), lambda: store.list()):
            attempts.clear()
            with pytest.raises(StoreError) as info:
                call()
            assert len(attempts) == 2  # the retry budget bounds the time, not a clock
            message = str(info.value)
            assert "\n" not in message and "cannot reach S3" in message and "after 2 attempts" in message
            assert s3_env.endpoint_url in message and s3_env.secret_key not in message
    finally:
        s3_env.start()


@pytest_s3
def test_s3_retry_budget_defaults_to_ten(s3_env: SeaweedS3) -> None:
    assert s3_store().client.meta.config.retries == {"total_max_attempts": 10, "mode": "standard"}
