"""Ray at the edge: connect, start style workers as actors (warm pools included), await their calls.

Everything Ray-specific lives here. The worker is a plain class
(farm/worker.py) wrapped with ``ray.remote`` in :func:`make_actor`; only
small receipts travel through Ray, never frames (they go through the object
store). Chunks are handed out by farm/schedule.py's loop over
:class:`RayWorkers` (``ray.wait``) rather than Ray Data's ``map_batches``: the
loop keeps chunk order for the reducer, lets the driver stream-decode the
source while actors work (a bounded queue is the backpressure), and owns the
retry policy that resume relies on.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError

from farm import rayprobe
from farm.config import ClusterOptions
from farm.plan import Chunk
from farm.schedule import PoolShape, WorkerLost
from farm.worker import JobContext, StyleWorker

log = logging.getLogger(__name__)

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
    """Whether the connected cluster goes on after this process: joined, not started here (Ray tells only
    through a private name, farm/rayprobe.py)."""
    return not rayprobe.started_here()


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


def node_cpus() -> list[float]:
    """CPUs of each alive node of the connected cluster."""
    return [n["Resources"].get("CPU", 0.0) for n in ray.nodes() if n.get("Alive")]


class _RayStyleWorker(StyleWorker):
    """StyleWorker as an actor: receipts name the Ray node, which tells nodes of one host apart."""

    def node_label(self) -> str:
        return ray.get_runtime_context().get_node_id()[:12]

    def retire(self) -> None:
        ray.kill(ray.get_runtime_context().current_actor, no_restart=True)


#: boto3's settings that say which store to reach and how (none of them secret), handed to the cluster
#: with farm's own ``FARM_*`` ones: its workers do not share the submitting shell
STORE_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE",
                  "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")
#: the submitting shell's keys, which stay there unless FORWARD_KEYS opts in
CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
FORWARD_KEYS = "FARM_FORWARD_AWS_KEYS"


def forwarded_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment a job's Ray Job and actors get (their ``runtime_env.env_vars``).

    Never credentials by default: Ray keeps a runtime_env in the cluster's GCS, and its Jobs API and
    dashboard show it to every holder of the cluster's token. The nodes get theirs from their own
    boto3 chain (instance roles, IRSA, or the environment the cluster was started with: deploy/).
    ``FARM_FORWARD_AWS_KEYS=1`` sends the shell's keys as well, with a warning on stderr.
    """
    env = {k: v for k, v in environ.items() if k.startswith("FARM_") or k in STORE_SETTINGS}
    if environ.get(FORWARD_KEYS, "").lower() in ("1", "true", "yes"):
        keys = {k: environ[k] for k in CREDENTIALS if k in environ}
        if keys:
            _warn_keys_forwarded(tuple(keys))
        env.update(keys)
    return env


@functools.cache
def _warn_keys_forwarded(names: tuple[str, ...]) -> None:
    print(f"farm: warning: {FORWARD_KEYS} sends {', '.join(names)} to the cluster, which stores them in the "
          "job's runtime_env: its Jobs API and dashboard show them to every holder of the cluster's token",
          file=sys.stderr)


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


def cluster_resources() -> dict[str, float]:
    return dict(ray.cluster_resources())


class RayWorkers:
    """Style workers as Ray actors, for :class:`farm.schedule.Scheduler`."""

    def __init__(self, start: Callable[[], Any]):
        self.start = start

    @staticmethod
    def wait(calls: list[Any], timeout: float) -> list[Any]:
        done, _ = ray.wait(calls, num_returns=1, timeout=timeout)
        return done

    @staticmethod
    def result(call: Any) -> Any:
        try:
            return ray.get(call)
        except RayActorError as exc:  # the actor's process died, or its node went away
            raise WorkerLost(type(exc).__name__) from exc

    @staticmethod
    def stop(worker: Any) -> None:
        ray.kill(worker)

    @staticmethod
    def prepare(actor: Any, job: JobContext) -> Any:
        """The remote call that readies an actor for the job (its network loaded and compiled)."""
        return actor.prepare.remote(job)

    @staticmethod
    def render(actor: Any, job: JobContext, chunk: Chunk) -> Any:
        """The remote call for one chunk of the job."""
        return actor.render.remote(job, chunk)


class RaySharders:
    """Shard tasks as Ray tasks spread over the cluster's nodes (farm/shard.py).

    They reserve no CPU (``num_cpus=0``), as the driver's own decoding never did: the style pool is
    sized to take every CPU a node offers, and a shard task that waited for a free one would wait for
    the job to end (it holds the chunks the workers wait for). Each is one decoding and one encoding
    thread; the OS shares the cores."""

    def __init__(self) -> None:
        from farm.shard import cut_span

        self._remote = ray.remote(cut_span).options(num_cpus=0, scheduling_strategy="SPREAD", max_retries=0,
                                                    runtime_env={"env_vars": forwarded_env()})
        self._calls: set[Any] = set()

    def submit(self, *args: Any) -> Any:
        ref = self._remote.remote(*args)
        self._calls.add(ref)
        return ref

    @staticmethod
    def wait(calls: list[Any], timeout: float) -> list[Any]:
        done, _ = ray.wait(calls, num_returns=1, timeout=timeout)
        return done

    def result(self, call: Any) -> Any:
        """The task's value; its own error (a corrupt source, the store failing) raised as itself, so
        the CLI says it in one line rather than with Ray's remote traceback."""
        self._calls.discard(call)
        try:
            return ray.get(call)
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, BaseException):
                raise exc.cause from None
            raise

    def close(self) -> None:
        for ref in self._calls:
            try:
                ray.cancel(ref, force=True)
            except Exception:  # noqa: BLE001 - finished meanwhile, or Ray already gone
                pass
        self._calls.clear()
