"""farm/local.py: a job with no cluster runs its style workers as processes of this machine, not on Ray.

The scheduler's fault rules are checked again on real worker processes (stand-in calls, no network):
a dying process is replaced, a chunk that keeps failing stops the job by name, and every process is
gone afterwards. End to end, `farm submit` with no cluster renders every frame with its own processes
and Ctrl-C leaves none behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from farm import local
from farm.config import ClusterOptions
from farm.errors import ChunkFailedError, InternalError
from farm.plan import Chunk, Receipt
from farm.schedule import Feeder, PoolShape, Scheduler
from tests.clips import make_clip
from tests.test_cli import video_facts
from tests.raycluster import process_tree
from tests.test_cluster import store_receipts
from tests.waiting import wait_until


def test_workers_run_here_only_when_there_is_no_cluster_to_run_on(monkeypatch):
    import ray

    from farm import rayprobe

    monkeypatch.setattr(local, "has_gpu", lambda: False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(rayprobe, "bootstrap_address", lambda: None)
    assert local.runs_here(ClusterOptions())
    assert not local.runs_here(ClusterOptions(address="local"))  # Ray's word for "start an embedded Ray"
    assert not local.runs_here(ClusterOptions(address="10.0.0.5:6379"))
    monkeypatch.setattr(local, "has_gpu", lambda: True)  # a Ray pool places one worker per GPU
    assert not local.runs_here(ClusterOptions())
    monkeypatch.setattr(local, "has_gpu", lambda: False)
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # the caller's own Ray connection
    assert not local.runs_here(ClusterOptions())
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(rayprobe, "bootstrap_address", lambda: "127.0.0.1:6379")
    assert not local.runs_here(ClusterOptions())  # `ray start` left a cluster here: join it (warm workers)


# -- the scheduler on local worker processes, with stand-in calls -----------------------------------


def stand_in(chunk: Chunk, how: str | None, log: str) -> Receipt:
    """Runs in a worker process: renders chunk N into a receipt, unless told to fail or die."""
    with open(log, "a") as fh:
        fh.write(f"{chunk.index} {os.getpid()}\n")
    if how == "raise" or (how == "raise-once" and not os.path.exists(f"{log}.failed")):
        Path(f"{log}.failed").touch()
        raise ValueError(f"cannot decode frame {chunk.start}")
    if how == "die" or (how == "die-once" and not os.path.exists(f"{log}.died")):
        Path(f"{log}.died").touch()
        os._exit(1)
    return Receipt(chunk=chunk.index, key=f"output/{chunk.index:06d}.mp4", frames=chunk.frames, size=1,
                   sha256="0" * 64, node="test", pid=os.getpid(), seconds={})


def broken_start() -> int:
    raise RuntimeError("CUDA out of memory while loading the network")


class StandIns(local.LocalWorkers):
    def __init__(self, log: str, poison: dict[int, str], broken: bool = False):
        super().__init__(PoolShape(2, 0.0, 1.0))
        self.log, self.poison, self.broken, self.started = log, poison, broken, []

    def start(self):
        self.started.append(super().start())
        return self.started[-1]

    def prepare(self, worker, job):
        return worker.submit(broken_start if self.broken else os.getpid)

    def render(self, worker, job, chunk):
        return worker.submit(stand_in, chunk, self.poison.get(chunk.index), self.log)


def stand_ins(tmp_path: Path, poison=None, broken: bool = False) -> StandIns:
    return StandIns(str(tmp_path / "calls.log"), poison or {}, broken)


def run(tmp_path: Path, poison=None, broken: bool = False, n: int = 6, pool=None) -> tuple[dict, list, StandIns]:
    pool = pool or stand_ins(tmp_path, poison, broken)
    chunks = [Chunk(index=i, start=10 * i, end=10 * i + 10) for i in range(n)]
    scheduler = Scheduler(pool, None, workers=2, max_attempts=3)
    try:
        receipts = {r.chunk: r for r in scheduler.run(Feeder(iter(chunks), depth=3))}
    finally:
        scheduler.close()
    lines = (tmp_path / "calls.log").read_text().split("\n") if (tmp_path / "calls.log").exists() else []
    return receipts, [tuple(map(int, line.split())) for line in lines if line], pool


def all_stopped(log: Path) -> bool:
    """Whether every worker process that took a call (pids in the calls log) is gone: not even a zombie.
    (An executor forgets its processes on shutdown, so they are named by the pids they logged.)"""
    for pid in {int(line.split()[1]) for line in log.read_text().split("\n") if line}:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_every_chunk_once_on_two_worker_processes(tmp_path):
    receipts, calls, pool = run(tmp_path)
    assert sorted(receipts) == sorted(c for c, _ in calls) == list(range(6))
    assert len({pid for _, pid in calls}) == 2 and os.getpid() not in {pid for _, pid in calls}
    assert all_stopped(tmp_path / "calls.log")


def test_a_worker_process_that_dies_is_replaced_and_its_chunk_retried(tmp_path):
    receipts, calls, pool = run(tmp_path, poison={2: "die-once"})
    assert sorted(receipts) == list(range(6))
    assert [c for c, _ in calls].count(2) == 2 and len(pool.started) == 3  # one replacement
    assert receipts[2].pid != next(pid for c, pid in calls if c == 2)
    assert all_stopped(tmp_path / "calls.log")


def test_a_failed_chunk_is_retried_on_the_other_worker(tmp_path):
    receipts, calls, pool = run(tmp_path, poison={0: "raise-once"}, n=4)
    assert sorted(receipts) == list(range(4)) and len(pool.started) == 2  # no worker died
    failed_on, retried_on = (pid for c, pid in calls if c == 0)
    assert retried_on != failed_on and receipts[0].pid == retried_on
    assert all_stopped(tmp_path / "calls.log")


def test_a_chunk_that_keeps_failing_stops_the_job_by_name_and_every_process(tmp_path):
    pool = stand_ins(tmp_path, poison={3: "raise"})
    with pytest.raises(ChunkFailedError) as failed:
        run(tmp_path, pool=pool)
    assert all_stopped(tmp_path / "calls.log")
    assert failed.value.chunk == 3 and failed.value.attempts == 3
    assert str(failed.value).startswith("chunk 3 failed 3 times: ValueError: cannot decode frame 30")
    assert [int(line.split()[0]) for line in open(tmp_path / "calls.log")].count(3) == 3


def test_a_chunk_that_kills_every_worker_is_bounded_too(tmp_path):
    with pytest.raises(ChunkFailedError, match="chunk 1 failed 3 times: worker died: the worker process exited"):
        run(tmp_path, poison={1: "die"})


def test_workers_that_cannot_start_are_reported_with_their_error(tmp_path):
    with pytest.raises(InternalError, match="no style worker could start: RuntimeError: CUDA out of memory"):
        run(tmp_path, broken=True)


# -- end to end: `farm submit` with no cluster ----------------------------------------------------


def submit(clip: Path, cwd: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "farm.cli", "submit", str(clip), "--job-id", "here", "--chunk-frames", "8",
           "--no-gif", "--json", *extra]
    # a background job of a non-interactive shell (CI) starts with SIGINT ignored: give the driver Ctrl-C back
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def test_a_job_without_a_cluster_renders_on_its_own_worker_processes(tmp_path, private_store, private_ledger):
    clip = make_clip(tmp_path / "here.mp4", frames=24, width=96, height=64, audio=True)
    driver = submit(clip, tmp_path)
    out, err = driver.communicate(timeout=600)
    assert driver.returncode == 0, err
    report = json.loads(out)
    src, dst = video_facts(clip), video_facts(Path(report["output"]))
    assert dst["frames"] == src["frames"] and dst["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)
    receipts = store_receipts(str(private_store), "here")
    assert sorted(receipts) == [0, 1, 2]
    # painted by worker processes of this machine (a Ray actor's receipt names its Ray node instead)
    assert {r.node for r in receipts.values()} == {socket.gethostname()}
    assert driver.pid not in {r.pid for r in receipts.values()}
    assert private_ledger.exists()  # a short job on a new machine ran eagerly and counted in the compile ledger


def test_ctrl_c_stops_the_job_and_leaves_no_worker_process(tmp_path, private_store):
    clip = make_clip(tmp_path / "long.mp4", frames=240, width=160, height=120)
    driver = submit(clip, tmp_path, "--workers", "1", "--chunk-frames", "4")
    first = wait_until(lambda: store_receipts(str(private_store), "here"), "a first chunk", process=driver)
    worker = next(iter(first.values())).pid
    driver.send_signal(signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert "Traceback" not in err
    with pytest.raises(ProcessLookupError):
        os.kill(worker, 0)


def alive(pids: list[int]) -> list[int]:
    """Those of ``pids`` still running (a zombie is not: it holds no memory and runs nothing)."""
    return [pid for pid in pids if pid in process_tree(pid)]


def test_worker_processes_end_within_seconds_of_their_driver_being_killed(tmp_path, private_store):
    # SIGKILL, as the OOM killer or a closed terminal ends a driver: it gets no chance to stop its workers
    clip = make_clip(tmp_path / "long.mp4", frames=240, width=160, height=120)
    driver = submit(clip, tmp_path, "--workers", "2", "--chunk-frames", "4")
    workers: list[int] = []
    try:
        wait_until(lambda: store_receipts(str(private_store), "here"), "a first chunk", process=driver)
        workers = [pid for pid in process_tree(driver.pid) if pid != driver.pid]  # its workers (and helpers)
        assert len(workers) >= 2
        driver.kill()
        driver.wait()
        killed = time.monotonic()
        # the bound is a hang guard: the kernel ends them at once (PR_SET_PDEATHSIG), a poll within 1 s
        wait_until(lambda: not alive(workers), "the orphaned workers to exit", timeout=30, interval=0.05)
        print(f"orphaned workers gone {time.monotonic() - killed:.2f} s after their driver was killed")
    finally:
        for pid in alive(workers):  # only what this test started
            os.kill(pid, signal.SIGKILL)
        if driver.poll() is None:
            driver.kill()
