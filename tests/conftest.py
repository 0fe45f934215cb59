"""Shared fixtures: a private object store per test, one local Ray for the session, the CLI in-process."""

from __future__ import annotations

import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def private_store(tmp_path_factory, monkeypatch) -> Path:
    """Never touch the user's default store (~/.cache/farm) from a test."""
    root = tmp_path_factory.mktemp("store")
    monkeypatch.setenv("FARM_STORE", str(root))
    return root


@pytest.fixture(scope="session")
def ray_local():
    """One embedded Ray for the whole session (starting Ray costs seconds)."""
    import ray

    from farm.cluster import connect

    connect(None)
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
def cli(ray_local, monkeypatch, tmp_path):
    """`cli("submit", ...)` → CliResult, run in a scratch working directory."""
    monkeypatch.chdir(tmp_path)
    return run_cli
