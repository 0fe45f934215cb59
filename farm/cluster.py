"""Ray at the edge: connect, size the actor pool, and hand out chunks with backpressure.

Everything Ray-specific lives here. The worker is a plain class
(farm/worker.py) wrapped with ``ray.remote`` in :func:`make_actor`; only
small receipts travel through Ray, never frames (they go through the object
store). Chunks are scheduled with a hand-written loop over ``ray.wait`` rather
than Ray Data's ``map_batches``: the loop keeps chunk order for the reducer,
lets the driver stream-decode the source while actors work (a bounded queue
is the backpressure), and owns the retry policy that resume relies on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError

from farm.config import ClusterOptions
from farm.errors import ChunkFailedError, InternalError, UserError
from farm.plan import Chunk, Receipt
from farm.worker import JobContext, StyleWorker

log = logging.getLogger(__name__)

#: CPU threads one CPU actor uses when the options do not say. Torch's intra-op threading scales
#: poorly on this network: on 2 cores, two 1-thread actors ran 1.57 fps vs 1.09 fps for one 2-thread
#: actor (bench/scaling.py); past 4 threads the memory of one model per actor is the better trade.
DEFAULT_CPU_THREADS = 4
#: pixels per CPU actor (frames x width x height) from which compiling pays even with a cold cache: a
#: compile costs about the same at any size, the time it saves grows with the pixels. bikes.mp4 (640x272),
#: 137 frames per actor: 83.7 s compiled cold, 58.3 s warm, 86.7 s eager; so 100 frames of that size
COMPILE_MIN_PIXELS = 100 * 640 * 272


_owned = False  # whether connect() started this process's Ray connection (and so disconnect() ends it)


def connect(address: str | None) -> None:
    """Join a cluster at ``address``, else the local one ``ray start`` left running, else start an
    embedded local Ray that ends with this process (Ray's own order for ``ray.init()``)."""
    global _owned
    if ray.is_initialized():
        return
    ray.init(address=address, include_dashboard=False, log_to_driver=False,
             logging_level=logging.ERROR, configure_logging=True)
    _owned = True


def outlives_driver() -> bool:
    """Whether the connected cluster goes on after this process: joined, not started here.

    Ray tells only through its node object (public API has no such flag): a driver that started the
    local instance holds the head node; one that joined holds a connect-only view of it.
    """
    node = getattr(ray._private.worker, "_global_node", None)
    return not (node is not None and node.is_head())


def disconnect() -> None:
    """End a connection that :func:`connect` made; one the caller made stays theirs.

    Ray's driver prints the cluster's error notices (a lost node's last raylet lines) on stdout from
    a background thread; ending the connection while the job is still ours stops that thread, so
    nothing lands after the result a ``--json`` caller parses.
    """
    global _owned
    if _owned and ray.is_initialized():
        ray.shutdown()
    _owned = False


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
    actors than ``chunks``: with fewer chunks than actors, CPU actors share the
    cores the missing ones would have had (a one-chunk clip on 2 cores gets one
    2-thread actor, not one 1-thread actor beside an idle core).
    """
    shape = _pool_shape(options, resources, node_cpus)
    if chunks is None or chunks >= shape.workers or options.workers:
        return shape
    return _pool_shape(options.model_copy(update={"workers": max(1, chunks)}), resources, node_cpus)


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


def node_cpus() -> list[float]:
    """CPUs of each alive node of the connected cluster."""
    return [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]


class _RayStyleWorker(StyleWorker):
    """StyleWorker as an actor: receipts name the Ray node, which tells nodes of one host apart."""

    def node_label(self) -> str:
        return ray.get_runtime_context().get_node_id()[:12]

    def retire(self) -> None:
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


#: environment the workers need to reach the same object store as the driver (boto3's standard chain)
FORWARDED_ENV = ("AWS_", "FARM_")


def forwarded_env() -> dict[str, str]:
    """The driver's store settings, handed to actors: a cluster's workers do not share its shell."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED_ENV)}


def make_actor(shape: PoolShape, warm: WarmPool | None = None) -> Any:
    """Start one StyleWorker actor (networks load in its ``prepare``); with ``warm``, join or start
    one of that pool's named workers, which outlive the job."""
    options: dict[str, Any] = {}
    if warm is not None:
        options = {"name": warm.next_name(), "namespace": WARM_NAMESPACE, "lifetime": "detached",
                   "get_if_exists": True}
    remote = ray.remote(_RayStyleWorker).options(num_gpus=shape.num_gpus, num_cpus=shape.num_cpus, max_restarts=0,
                                             runtime_env={"env_vars": forwarded_env()}, **options)
    return remote.remote(device=shape.device, threads=max(1, int(shape.num_cpus)),
                         keep_warm=warm.keep_warm if warm else 0.0)


#: the Ray namespace of workers kept warm between jobs, whatever namespace a driver runs in
WARM_NAMESPACE = "farm"
WARM_PREFIX = "style-worker-"
#: how long a warm worker of another pool must have been idle for a new job to retire it (a busy one, or
#: one between two chunks of a running job, has had a call within milliseconds)
RETIRE_IDLE_SECONDS = 2.0


def code_fingerprint() -> str:
    """Hash of farm's own source: workers left warm by other code are not reused by this code."""
    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class WarmPool:
    """Style workers that outlive a job, on a cluster that outlives it: the next job starts painting at once.

    Workers are detached named actors, ``style-worker-<key>-<id>``; the key covers everything fixed at
    an actor's creation (its resources, the environment it was handed, farm's code), so a job joins
    only workers that are what it would have started. Each retires itself after ``keep_warm`` idle
    seconds. Networks are loaded per job by ``prepare`` and kept, so any style can reuse a worker.
    """

    def __init__(self, shape: PoolShape, keep_warm: float):
        self.keep_warm = keep_warm
        fields = {"cpus": shape.num_cpus, "gpus": shape.num_gpus, "env": forwarded_env(), "code": code_fingerprint()}
        self.key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
        self.prefix = f"{WARM_PREFIX}{self.key}-"
        existing = [n for n in _warm_names() if n.startswith(self.prefix)]
        self._names = iter(sorted(existing))

    def next_name(self) -> str:
        """A warm worker's name not yet handed out in this job, else a fresh one."""
        return next(self._names, None) or f"{self.prefix}{uuid.uuid4().hex[:8]}"

    def retire_others(self, keep_own: bool = True) -> int:
        """Ask idle warm workers of other pools (and of this one, unless ``keep_own``) to retire: they
        hold resources this job's workers need. Returns how many were asked."""
        asked = 0
        for name in _warm_names():
            if keep_own and name.startswith(self.prefix):
                continue
            try:
                ray.get_actor(name, namespace=WARM_NAMESPACE).retire_if_idle.remote(RETIRE_IDLE_SECONDS)
                asked += 1
            except ValueError:  # gone meanwhile
                continue
        return asked


def _warm_names() -> list[str]:
    return [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
            if a.get("namespace") == WARM_NAMESPACE and a["name"].startswith(WARM_PREFIX)]


def warm_pool(options: ClusterOptions, shape: PoolShape) -> WarmPool | None:
    """The pool this job's workers join, or None when they stop with the job: asked (``keep_warm`` 0),
    or nothing to keep them for (the Ray this driver started ends with it).

    Idle warm workers that this job will not use are asked to retire first, so they make room.
    """
    if not outlives_driver():
        return None
    pool = WarmPool(shape, options.keep_warm)
    pool.retire_others(keep_own=options.keep_warm > 0)
    return pool if options.keep_warm > 0 else None


def wants_compile(options: ClusterOptions, shape: PoolShape, frames: int, frame_size: tuple[int, int]) -> bool:
    """Whether actors should torch.compile their network: ``auto`` does on CPU when each actor has
    enough pixels to win back the compile (about 28 s cold, 8 s from the on-disk cache, for about
    half the time per frame: bench/profile_stages.py). GPUs stay eager until measured there."""
    if options.compile != "auto":
        return options.compile == "on"
    pixels = frames * frame_size[0] * frame_size[1]
    return shape.device == "cpu" and pixels / max(1, shape.workers) >= COMPILE_MIN_PIXELS


class Feeder:
    """Runs a blocking producer (the sharder) in a thread, a bounded queue ahead of the actors."""

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


class Scheduler:
    """Hands chunks to ready actors, retries failures on other actors, yields receipts as they finish.

    An actor gets work only once it has answered a ping: a replacement for an
    actor lost with its node may wait for resources that never come back, and
    must not hold a chunk hostage meanwhile (the surviving actors take it).
    """

    def __init__(self, new_actor: Callable[[], Any], workers: int, call: Callable[[Any, Chunk], Any],
                 max_attempts: int, ask: str = "", patience: float = 60.0,
                 prepare: Callable[[Any], Any] = lambda actor: actor.ping.remote(), restarts: int = 0):
        self.new_actor, self.call, self.max_attempts, self.prepare = new_actor, call, max_attempts, prepare
        #: how many actors whose start failed may be replaced, in all: a warm worker can retire just as a
        #: job reaches it; otherwise a failed start is reported, and the actors that did start carry the job
        self.restarts_left = restarts
        #: what one actor reserves, and how long to wait for a place before saying so (then again as often)
        self.ask, self.patience = ask, patience
        self._notice_at = time.monotonic() + patience
        self.idle: list[Any] = []
        self.starting: dict[Any, Any] = {}
        self.in_flight: dict[Any, tuple[Chunk, Any, int]] = {}
        self.retry: deque[tuple[Chunk, int]] = deque()
        self.start_failure: str | None = None
        for _ in range(workers):
            self._start_actor()

    def _start_actor(self) -> None:
        actor = self.new_actor()
        self.starting[self.prepare(actor)] = actor

    def run(self, feeder: Feeder) -> Iterator[Receipt]:
        while True:
            self._dispatch(feeder)
            if not self.in_flight and feeder.exhausted and not self.retry:
                return
            if not (self.in_flight or self.starting or self.idle):
                raise InternalError(f"no style worker could start: {self.start_failure}")
            waiting = list(self.in_flight) + list(self.starting)
            if not waiting:
                continue
            self._notice_if_stalled()
            done, _ = ray.wait(waiting, num_returns=1, timeout=0.2)
            for ref in done:
                if ref in self.starting:
                    self._started(ref)
                elif (receipt := self._collect(ref)) is not None:
                    yield receipt

    def _notice_if_stalled(self) -> None:
        """Say so when no actor has started for a while: an autoscaler still adding nodes, or a cluster
        without room (a GPU job on CPU nodes) would otherwise look like a hung job."""
        now = time.monotonic()
        if self.idle or self.in_flight:  # work goes on: the clock starts again
            self._notice_at = now + self.patience
            return
        if now < self._notice_at:
            return
        self._notice_at = now + self.patience
        each = f" (each asks for {self.ask})" if self.ask else ""
        log.warning("waiting for the cluster to place %d style worker%s%s; none has started yet",
                    len(self.starting), "" if len(self.starting) == 1 else "s", each)

    def close(self, keep_idle: bool = False) -> None:
        """Stop this job's actors (their chunks are done or will be retried by a resume); with
        ``keep_idle``, idle ones are left running for the next job (warm workers retire themselves)."""
        actors = list(self.starting.values()) + [actor for _, actor, _ in self.in_flight.values()]
        for actor in actors + ([] if keep_idle else self.idle):
            ray.kill(actor)
        self.idle.clear()
        self.starting.clear()
        self.in_flight.clear()

    def _started(self, ref: Any) -> None:
        actor = self.starting.pop(ref)
        try:
            ray.get(ref)
        except Exception as exc:  # the constructor failed (no weights, no GPU...), or a warm worker retired
            self.start_failure = _one_line(exc)
            log.warning("a style worker failed to start: %s", self.start_failure)
            if self.restarts_left > 0:
                self.restarts_left -= 1
                self._start_actor()
            return
        self.idle.append(actor)

    def _dispatch(self, feeder: Feeder) -> None:
        while self.idle:
            if self.retry:
                chunk, attempt = self.retry.popleft()
            else:
                # block briefly only when nothing is running, so finished work is collected promptly
                chunk, attempt = feeder.take(timeout=0.0 if self.in_flight else 0.2), 1
                if chunk is None:
                    return
            actor = self.idle.pop()
            self.in_flight[self.call(actor, chunk)] = (chunk, actor, attempt)

    def _collect(self, ref: Any) -> Receipt | None:
        chunk, actor, attempt = self.in_flight.pop(ref)
        try:
            receipt = ray.get(ref)
        except RayActorError as exc:
            log.warning("worker lost on chunk %d (attempt %d): %s", chunk.index, attempt, exc)
            self._fail(chunk, attempt, f"worker died: {type(exc).__name__}")
            self._start_actor()
            return None
        except Exception as exc:  # a task error: the actor itself is still usable
            # back among the idle first: _fail may raise, and close() must still find (and stop) the actor
            self.idle.append(actor)
            if isinstance(exc, UserError):
                raise
            log.warning("chunk %d failed (attempt %d): %s", chunk.index, attempt, exc)
            self._fail(chunk, attempt, _one_line(exc))
            return None
        self.idle.append(actor)
        return receipt

    def _fail(self, chunk: Chunk, attempt: int, cause: str) -> None:
        if attempt >= self.max_attempts:
            raise ChunkFailedError(chunk.index, attempt, cause)
        self.retry.append((chunk, attempt + 1))


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


def cluster_resources() -> dict[str, float]:
    return dict(ray.cluster_resources())


def render_call(job: JobContext) -> Callable[[Any, Chunk], Any]:
    """The remote call for one chunk, bound to one job's constants."""
    return lambda actor, chunk: actor.render.remote(job, chunk)


def prepare_call(job: JobContext) -> Callable[[Any], Any]:
    """The remote call that readies an actor for the job (its network loaded and compiled)."""
    return lambda actor: actor.prepare.remote(job)


