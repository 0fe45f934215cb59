"""Backend-free scheduling: how wide the pool is, and handing chunks to its workers with retries.

The workers are Ray actors (farm/cluster.py) or processes of this machine
(farm/local.py); both answer the small :class:`Workers` protocol, so the
rules of a job (chunks handed out in plan order, a bounded queue ahead of the
workers as backpressure, retries on other workers, a dead worker replaced, a
chunk that keeps failing stopping the job by name) live here once.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from farm.config import ClusterOptions
from farm.errors import ChunkFailedError, InternalError, UserError
from farm.plan import Chunk, Receipt

log = logging.getLogger(__name__)

#: CPU threads one CPU actor uses when the options do not say. Torch's intra-op threading scales
#: poorly on this network, worst on a busy machine: on 2 cores, two 1-thread workers took a median 18.3 s
#: against 49.8 s for one 2-thread worker (bench/scaling.py, load 0.7-3.4); past 4 threads the memory of one model per actor is the better trade.
DEFAULT_CPU_THREADS = 4
#: eager network pixels per CPU worker (frames x the working size the network paints at, farm/styles/size.py,
#: not the output's), summed over the machine's jobs in its ledger (farm/styles/ledger.py), from which
#: building the network's one package (for every frame size) pays: the build costs the same whatever the
#: size, the time it saves grows with the pixels. Derived on the issue's kind of CPU, an AMD EPYC run as
#: AVX2 (float32, one thread, 640x360, bench/aot_dynamic.py, results/aot_dynamic_epyc_avx2*.json): eager
#: (channels-last) 157.2 ms, package 132.1 ms (load 2.1-2.6); a build from nothing in a fresh process
#: 33.9 s (33.3 s of CPU): it pays from 1350 frames of 640x360 per worker. Natively there the package
#: saved 6-40 ms a frame in two runs (load 2-2.4), the same build 34.8 s.
COMPILE_MIN_PIXELS = 1350 * 640 * 360
#: what a worker does about compiling: build the package if missing, use one only if built, or stay eager
CompileMode = Literal["on", "cached", "off"]


@dataclass(frozen=True)
class PoolShape:
    """How many actors, and what each one reserves."""

    workers: int
    num_gpus: float
    num_cpus: float

    @property
    def device(self) -> str:
        return "cuda" if self.num_gpus > 0 else "cpu"

    def ask(self) -> str:
        """What one actor reserves, for messages: ``1 GPU + 1 CPU``, ``4 CPUs``."""
        parts = [f"{self.num_gpus:g} GPU"] if self.num_gpus else []
        parts.append(f"{self.num_cpus:g} CPU{'' if self.num_cpus == 1 else 's'}")
        return " + ".join(parts)


def pool_shape(options: ClusterOptions, resources: dict[str, float], node_cpus: list[float] | None = None,
               chunks: int | None = None) -> PoolShape:
    """One actor per GPU (or per ``gpus_per_worker``), else CPU actors sized to fit on single nodes.

    ``node_cpus`` lists each alive node's CPUs: an actor must fit on one node, so
    two 1-CPU nodes hold two 1-thread actors, not one 2-thread actor. Never more
    actors than ``chunks``; the actors there are keep their threads, and the cores
    the missing ones would have had stay free: the network's intra-op threading
    costs more than an idle core gives (a 640x360 frame on a 2-core AMD EPYC: 0.16 s
    on one thread, 0.65-1.6 s on two; an 8-frame clip took 14.8 s as one 2-thread
    actor and 3.7 s as one 1-thread actor, bench/README.md).
    """
    shape = _pool_shape(options, resources, node_cpus)
    if chunks is None or chunks >= shape.workers or options.workers:
        return shape
    return replace(shape, workers=max(1, chunks))


def _pool_shape(options: ClusterOptions, resources: dict[str, float], node_cpus: list[float] | None) -> PoolShape:
    gpus, cpus = resources.get("GPU", 0.0), max(1.0, resources.get("CPU", 1.0))
    if gpus >= options.gpus_per_worker:
        workers = options.workers or int(gpus // options.gpus_per_worker)
        return PoolShape(workers, options.gpus_per_worker, 1.0)
    nodes = [c for c in (node_cpus or [cpus]) if c >= 1] or [1.0]
    biggest = max(nodes)
    if options.workers:  # share the CPUs among the asked-for actors, so every one can be scheduled
        threads = options.threads or max(1, int(cpus // options.workers))
        return PoolShape(options.workers, 0.0, float(min(threads, biggest)))
    threads = float(min(options.threads or (1 if biggest <= 2 else DEFAULT_CPU_THREADS), biggest))
    return PoolShape(max(1, sum(int(c // threads) for c in nodes)), 0.0, threads)


def compile_mode(options: ClusterOptions, shape: PoolShape, frames: int, network_size: tuple[int, int],
                 eager_before: int = 0) -> CompileMode:
    """How workers get their network compiled (farm/styles/aot.py). ``auto`` on CPU: ``on`` (build the
    network's one package, for every frame size, if this machine has none yet: about 34 s once on 2 cores) when the
    eager network pixels per worker this machine already ran (``eager_before``, its ledger) and this
    job's (``frames`` x ``network_size``, the (height, width) it paints at, over the workers) pass the
    build's break-even, else ``cached`` (run a package this machine already built, eager otherwise). A
    machine's first short jobs run as fast as they can; the job that passes break-even pays the build,
    which every later job wins back. GPUs stay eager until measured there."""
    if options.compile != "auto":
        return options.compile
    if shape.device != "cpu":
        return "off"
    return "on" if eager_before + network_pixels(shape, frames, network_size) >= COMPILE_MIN_PIXELS else "cached"


def network_pixels(shape: PoolShape, frames: int, network_size: tuple[int, int]) -> int:
    """A job's network pixels per worker: the part of its wall time a compiled network would shorten."""
    return frames * network_size[0] * network_size[1] // max(1, shape.workers)


class WorkerLost(Exception):
    """A worker's process died (or its node went away) with a call in flight."""


class Workers(Protocol):
    """Where workers come from, what they are asked, and how their calls are awaited. A call is whatever
    the backend hands back for a request: a Ray object ref, a ``Future``."""

    def start(self) -> Any:
        """Start one worker (it may take a while to be placed); returns its handle."""

    def prepare(self, worker: Any, job: Any) -> Any:
        """Ask ``worker`` to get ready for ``job`` (a :class:`~farm.worker.JobContext`: network loaded)."""

    def render(self, worker: Any, job: Any, chunk: Chunk) -> Any:
        """Ask ``worker`` to render one chunk of ``job``; the call's value is its :class:`Receipt`."""

    def wait(self, calls: list[Any], timeout: float) -> list[Any]:
        """The calls among ``calls`` that are finished, waiting up to ``timeout`` seconds for one."""

    def result(self, call: Any) -> Any:
        """A finished call's value; raises :class:`WorkerLost` if its worker died, else the call's own error."""

    def stop(self, worker: Any) -> None:
        """Stop a worker now (its chunk, if any, is retried elsewhere or by a resume)."""


class Chunks(Protocol):
    """The chunks ahead of the workers: :class:`Feeder`, or farm/shard.py's ``ShardFeeder``."""

    exhausted: bool

    def take(self, timeout: float) -> Chunk | None:
        """The next ready chunk, or None if none is ready within ``timeout`` or none are left."""

    def poll(self) -> None:
        """Move on without waiting while no worker is free to take a chunk (farm/shard.py settles cuts)."""


class Feeder:
    """Runs a blocking producer in a thread, a bounded queue ahead of the workers (tests; a job's
    chunks come from farm/shard.py's shard tasks)."""

    _END = object()

    def __init__(self, items: Iterator[Chunk], depth: int):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._closed = threading.Event()
        self.exhausted = False
        self._thread = threading.Thread(target=self._run, args=(items,), daemon=True, name="farm-shard")
        self._thread.start()

    def _run(self, items: Iterator[Chunk]) -> None:
        try:
            for item in items:
                while not self._closed.is_set():
                    try:
                        self._queue.put(item, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if self._closed.is_set():
                    return
        except BaseException as exc:  # handed to the main thread by take()
            self._error = exc
        self._queue.put(self._END)

    def close(self) -> None:
        """Stop producing (the job failed or was interrupted); the chunk being cut is finished first."""
        self._closed.set()

    def resize(self, depth: int) -> None:
        """Change how far the producer may run ahead (the pool's size is known only once Ray is up)."""
        with self._queue.mutex:
            self._queue.maxsize = depth
            self._queue.not_full.notify_all()

    def take(self, timeout: float) -> Chunk | None:
        """The next ready chunk, or None if none is ready within ``timeout`` or none are left."""
        if self.exhausted:
            return None
        try:
            item = self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None
        if item is self._END:
            self.exhausted = True
            if self._error is not None:
                raise self._error
            return None
        return item

    def poll(self) -> None:
        """Nothing to move on: the producer thread runs by itself."""


@dataclass
class Slot:
    """One worker and where it stands: ``starting`` (its prepare call in flight), ``idle``, or ``busy``
    (``call`` renders ``chunk``, try number ``attempt``)."""

    handle: Any
    state: Literal["starting", "idle", "busy"]
    call: Any = None
    chunk: Chunk | None = None
    attempt: int = 0
    #: workers this chunk failed on before (a retry's history travels with it)
    failed_on: set[int] = field(default_factory=set)


@dataclass
class Retry:
    """A failed chunk waiting for another try, and the workers it already failed on."""

    chunk: Chunk
    attempt: int
    failed_on: set[int] = field(default_factory=set)


class Scheduler:
    """Hands chunks to ready workers, retries failures on other workers, yields receipts as they finish.

    One map holds every worker's state (:class:`Slot`). A worker gets work
    only once its ``prepare`` call has answered: a replacement for a worker
    lost with its node may wait for resources that never come back, and must
    not hold a chunk hostage meanwhile (the surviving workers take it). A
    failed chunk goes to a worker it has not failed on whenever one is alive
    (a bad GPU or a full disk fails the same way twice), to the same worker
    only when no other is left. :meth:`run` may be called again for more
    chunks (the reducer's repairs) on the same workers.
    """

    def __init__(self, pool: Workers, job: Any, workers: int, max_attempts: int, ask: str = "",
                 patience: float = 60.0, restarts: int = 0):
        self.pool, self.job, self.max_attempts = pool, job, max_attempts
        #: how many workers whose start failed may be replaced, in all: a warm worker can retire just as a
        #: job reaches it; otherwise a failed start is reported, and the workers that did start carry the job
        self.restarts_left = restarts
        #: what one worker reserves, and how long to wait for a place before saying so (then again as often)
        self.ask, self.patience = ask, patience
        self._notice_at = time.monotonic() + patience
        self.slots: dict[int, Slot] = {}
        self._ids = itertools.count()
        self.retry: deque[Retry] = deque()
        self.start_failure: str | None = None
        for _ in range(workers):
            self._start_worker()

    def _start_worker(self) -> None:
        handle = self.pool.start()
        self.slots[next(self._ids)] = Slot(handle, "starting", call=self.pool.prepare(handle, self.job))

    def _in(self, state: str) -> list[int]:
        return [i for i, slot in self.slots.items() if slot.state == state]

    def run(self, feeder: Chunks) -> Iterator[Receipt]:
        while True:
            self._dispatch(feeder)
            feeder.poll()
            busy = self._in("busy")
            if not busy and feeder.exhausted and not self.retry:
                return
            if not self.slots:
                raise InternalError(f"no style worker could start: {self.start_failure}")
            waiting = {self.slots[i].call: i for i in busy + self._in("starting")}
            if not waiting:
                continue
            self._notice_if_stalled()
            for call in self.pool.wait(list(waiting), timeout=0.2):
                worker = waiting[call]
                if self.slots[worker].state == "starting":
                    self._started(worker)
                elif (receipt := self._collect(worker)) is not None:
                    yield receipt

    def _notice_if_stalled(self) -> None:
        """Say so when no worker has started for a while: an autoscaler still adding nodes, or a cluster
        without room (a GPU job on CPU nodes) would otherwise look like a hung job."""
        now = time.monotonic()
        if self._in("idle") or self._in("busy"):  # work goes on: the clock starts again
            self._notice_at = now + self.patience
            return
        if now < self._notice_at:
            return
        self._notice_at = now + self.patience
        starting = len(self._in("starting"))
        each = f" (each asks for {self.ask})" if self.ask else ""
        log.warning("waiting for the cluster to place %d style worker%s%s; none has started yet",
                    starting, "" if starting == 1 else "s", each)

    def close(self, keep_idle: bool = False) -> None:
        """Stop this job's workers (their chunks are done or will be retried by a resume); with
        ``keep_idle``, idle ones are left running for the next job (warm workers retire themselves)."""
        for slot in self.slots.values():
            if not (keep_idle and slot.state == "idle"):
                self.pool.stop(slot.handle)
        self.slots.clear()

    def _started(self, worker: int) -> None:
        slot = self.slots[worker]
        try:
            self.pool.result(slot.call)
        except Exception as exc:  # the constructor failed (no weights, no GPU...), or a warm worker retired
            del self.slots[worker]
            self.start_failure = _one_line(exc)
            log.warning("a style worker failed to start: %s", self.start_failure)
            if self.restarts_left > 0:
                self.restarts_left -= 1
                self._start_worker()
            return
        slot.state, slot.call = "idle", None

    def _dispatch(self, feeder: Chunks) -> None:
        fed = True
        for worker in self._in("idle"):
            retry = self._retry_for(worker)
            if retry is None:
                if not fed:  # the next idle worker may still take a retry this one may not
                    continue
                # block briefly only when nothing is running, so finished work is collected promptly
                chunk = feeder.take(timeout=0.0 if self._in("busy") else 0.2)
                if chunk is None:
                    fed = False
                    continue
                retry = Retry(chunk, 1)
            slot = self.slots[worker]
            slot.state, slot.chunk, slot.attempt, slot.failed_on = "busy", retry.chunk, retry.attempt, retry.failed_on
            slot.call = self.pool.render(slot.handle, self.job, retry.chunk)

    def _retry_for(self, worker: int) -> Retry | None:
        """The first failed chunk this worker may take: one it has not failed, or one that every
        started worker has failed (then there is no one else to try: one still starting may never be placed)."""
        started = {i for i, slot in self.slots.items() if slot.state != "starting"}
        for retry in self.retry:
            if worker not in retry.failed_on or started <= retry.failed_on:
                self.retry.remove(retry)
                return retry
        return None

    def _collect(self, worker: int) -> Receipt | None:
        slot = self.slots[worker]
        chunk, attempt, call, failed_on = slot.chunk, slot.attempt, slot.call, slot.failed_on
        slot.state, slot.call, slot.chunk = "idle", None, None
        try:
            return self.pool.result(call)
        except WorkerLost as exc:
            del self.slots[worker]
            log.warning("worker lost on chunk %d (attempt %d): %s", chunk.index, attempt, exc)
            self._start_worker()  # before _fail, which may raise: close() must find (and stop) it
            self._fail(chunk, attempt, f"worker died: {exc}", failed_on | {worker})
            return None
        except Exception as exc:  # a task error: the worker itself is still usable
            if isinstance(exc, UserError):
                raise
            log.warning("chunk %d failed (attempt %d): %s", chunk.index, attempt, exc)
            self._fail(chunk, attempt, _one_line(exc), failed_on | {worker})
            return None

    def _fail(self, chunk: Chunk, attempt: int, cause: str, failed_on: set[int]) -> None:
        if attempt >= self.max_attempts:
            raise ChunkFailedError(chunk.index, attempt, cause)
        self.retry.append(Retry(chunk, attempt + 1, failed_on))


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, WorkerLost) and exc.__cause__ is not None:  # what the backend saw: Ray's error names the cause
        exc = exc.__cause__
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


