"""The Scheduler's fault rules on a real local Ray, with small stand-in actors (no network, no video).

StyleWorker's own behaviour is covered end to end elsewhere; here the point is
what the driver does when workers misbehave: a chunk that keeps failing stops
the job after a bounded number of attempts and names the chunk and the error;
a worker process that dies is replaced and its chunk retried; actors that
cannot start are reported, and the ones that can carry the job.
"""

from __future__ import annotations

import os
import threading
import time

import pytest
import ray

from farm.cluster import RayWorkers
from farm.schedule import Feeder, Scheduler
from farm.errors import ChunkFailedError, InternalError
from farm.plan import Chunk, Receipt


@ray.remote(num_cpus=0, max_restarts=0)
class StandIn:
    """Renders chunk N into a receipt, except where told to fail or die; counts its calls in a file."""

    def __init__(self, log: str, broken: bool = False):
        if broken:
            raise RuntimeError("CUDA out of memory while loading the network")
        self.log = log

    def ping(self) -> int:
        return os.getpid()

    def render(self, chunk: Chunk, poison: dict[int, str]) -> Receipt:
        with open(self.log, "a") as fh:
            fh.write(f"{chunk.index}\n")
        how = poison.get(chunk.index)
        if how == "raise":
            raise ValueError(f"cannot decode frame {chunk.start}")
        if how == "die":
            os._exit(1)
        return Receipt(chunk=chunk.index, key=f"output/{chunk.index:06d}.mp4", frames=chunk.frames, size=1,
                       sha256="0" * 64, node="test", pid=os.getpid(), seconds={})


class StandIns(RayWorkers):
    """Ray actors answering the Workers protocol with the stand-in's calls."""

    def __init__(self, start, poison: dict[int, str] | None = None):
        super().__init__(start)
        self.poison = poison or {}

    def prepare(self, actor, job):
        return actor.ping.remote()

    def render(self, actor, job, chunk):
        return actor.render.remote(chunk, self.poison)


def chunks(n: int) -> list[Chunk]:
    return [Chunk(index=i, start=10 * i, end=10 * i + 10) for i in range(n)]


def run(tmp_path, *, workers: int = 2, poison=None, broken=lambda i: False, n: int = 6, actors=None):
    log, started = str(tmp_path / "calls.log"), iter(range(1000))
    actors = [] if actors is None else actors

    def new_actor():
        actors.append(StandIn.remote(log, broken(next(started))))
        return actors[-1]

    scheduler = Scheduler(StandIns(new_actor, poison), None, workers=workers, max_attempts=3)
    try:
        receipts = {r.chunk: r for r in scheduler.run(Feeder(iter(chunks(n)), depth=workers + 1))}
    finally:
        scheduler.close()
    calls = [int(line) for line in open(log)] if os.path.exists(log) else []
    return receipts, calls


def stops(actor, within: float = 30.0) -> bool:
    """Whether the actor is gone within ``within`` seconds (ray.kill is asynchronous: a ping sent
    right after it may still be answered by the process about to die)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ray.get(actor.ping.remote(), timeout=within)
        except ray.exceptions.RayActorError:
            return True
        time.sleep(0.2)
    return False


def test_every_chunk_once_when_all_is_well(ray_local, tmp_path):
    receipts, calls = run(tmp_path)
    assert sorted(receipts) == sorted(calls) == list(range(6))


def test_poisoned_chunk_stops_the_job_after_bounded_attempts_naming_it(ray_local, tmp_path):
    actors: list = []
    with pytest.raises(ChunkFailedError) as failed:
        run(tmp_path, poison={3: "raise"}, actors=actors)
    for actor in actors:  # every actor is stopped, the one that failed last too (it would hold its CPUs)
        assert stops(actor)
    assert failed.value.chunk == 3 and failed.value.attempts == 3
    assert str(failed.value).startswith("chunk 3 failed 3 times: ValueError: cannot decode frame 30")
    calls = [int(line) for line in open(tmp_path / "calls.log")]
    assert calls.count(3) == 3  # bounded: three attempts, not forever


def test_worker_process_dying_is_replaced_and_a_deadly_chunk_is_bounded(ray_local, tmp_path):
    with pytest.raises(ChunkFailedError, match="chunk 1 failed 3 times: worker died"):
        run(tmp_path, poison={1: "die"})


def test_actors_that_cannot_start_are_reported_and_the_rest_carry_the_job(ray_local, tmp_path):
    receipts, calls = run(tmp_path, workers=2, broken=lambda i: i == 0)
    assert sorted(receipts) == list(range(6)) and sorted(calls) == list(range(6))
    with pytest.raises(InternalError, match="no style worker could start: .*CUDA out of memory"):
        run(tmp_path, workers=2, broken=lambda i: True)


def test_workers_the_cluster_cannot_place_are_reported_not_waited_on_silently(ray_local, tmp_path, caplog):
    # an actor asking for a resource no node has (a GPU job on a CPU cluster, an autoscaler still adding nodes)
    unplaceable, actors = StandIn.options(resources={"gpu_node_that_never_comes": 1}), []

    def new_actor():
        actors.append(unplaceable.remote(str(tmp_path / "calls.log")))
        return actors[-1]

    scheduler = Scheduler(StandIns(new_actor), None, workers=2, max_attempts=3, ask="1 GPU + 1 CPU", patience=0.5)
    outcome: list[BaseException] = []

    def drive() -> None:
        try:
            list(scheduler.run(Feeder(iter(chunks(2)), depth=3)))
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome.append(exc)

    with caplog.at_level("WARNING", logger="farm.schedule"):
        runner = threading.Thread(target=drive)
        runner.start()
        deadline = time.monotonic() + 30
        while "waiting for the cluster" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.1)
        for actor in actors:  # the pending actors are given up on: the job stops with a clear error
            ray.kill(actor)
        runner.join(timeout=30)
    scheduler.close()
    assert "waiting for the cluster to place 2 style workers (each asks for 1 GPU + 1 CPU)" in caplog.text
    assert not runner.is_alive() and isinstance(outcome[0], InternalError)
