"""Style workers as processes of this machine, without Ray: a job with no cluster to run on.

Starting an embedded Ray costs a short clip more than it gives: ``ray.init`` took 2.9-3.9 s on 2 cores
and ``ray.shutdown`` another 1.1-1.4 s, both on the job's critical path, for a "cluster" of one machine
whose workers end with the job anyway. So with no ``--address``, no Ray of the caller's and none left
running here by ``ray start``, and no GPU, the driver runs its :class:`~farm.worker.StyleWorker`\\ s in
worker processes of its own: each a one-process ``ProcessPoolExecutor`` (the standard library's,
``spawn``, so no torch or thread state is forked), which lets the scheduler address each worker,
replace one that died and kill them all on failure, as it does Ray actors. ``--address local`` (Ray's
word for "start a Ray of your own") still gets an embedded Ray.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import signal
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from farm.config import ClusterOptions
from farm.plan import Chunk
from farm.schedule import PoolShape, WorkerLost
from farm.worker import JobContext, StyleWorker


def runs_here(options: ClusterOptions) -> bool:
    """Whether the job's workers are this machine's processes: no cluster asked for, joined or running
    here (Ray's own lookup: ``RAY_ADDRESS``, else the address ``ray start`` left), and no GPU, which a
    Ray pool places one worker per device on."""
    import ray
    from ray._private.services import canonicalize_bootstrap_address

    if options.address is not None or ray.is_initialized() or has_gpu():
        return False
    try:
        return canonicalize_bootstrap_address(None) is None
    except Exception:  # noqa: BLE001 - an unreadable address file: let Ray decide, as ray.init would
        return False


def has_gpu() -> bool:
    """An NVIDIA device node: the driver's own check, torch-free (the driver never imports torch)."""
    return bool(glob.glob("/dev/nvidia[0-9]*"))


def resources() -> dict[str, float]:
    """This machine as a one-node cluster: the CPUs this process may run on."""
    return {"CPU": float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)}


#: the process's one worker, made by its first call (no module state in the driver: this runs in a child)
_worker: StyleWorker | None = None


def _call(device: str, threads: int, method: str, *args: Any) -> Any:
    global _worker
    if _worker is None:  # made on the first call, so a constructor error reaches the driver as itself
        _worker = StyleWorker(device=device, threads=threads)
    return getattr(_worker, method)(*args)


def _ignore_interrupts() -> None:
    """Ctrl-C reaches the whole process group: the driver stops the workers, they do not print tracebacks."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class LocalWorkers:
    """Style workers as local processes, for :class:`farm.schedule.Scheduler`."""

    def __init__(self, shape: PoolShape):
        self.device, self.threads = shape.device, max(1, int(shape.num_cpus))

    @staticmethod
    def start() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_ignore_interrupts)

    @staticmethod
    def wait(calls: list[Future], timeout: float) -> list[Future]:
        done, _ = wait(calls, timeout=timeout, return_when=FIRST_COMPLETED)
        return list(done)

    @staticmethod
    def result(call: Future) -> Any:
        try:
            return call.result()
        except BrokenProcessPool as exc:  # the process died: killed, out of memory, a crash in native code
            raise WorkerLost("the worker process exited") from exc

    @staticmethod
    def stop(worker: ProcessPoolExecutor) -> None:
        # the standard library has no kill for a busy worker before Python 3.14 (terminate_workers)
        for process in list((getattr(worker, "_processes", None) or {}).values()):
            process.kill()
        worker.shutdown(wait=True, cancel_futures=True)

    def prepare(self, worker: ProcessPoolExecutor, job: JobContext) -> Future:
        return worker.submit(_call, self.device, self.threads, "prepare", job)

    def render(self, worker: ProcessPoolExecutor, job: JobContext, chunk: Chunk) -> Future:
        return worker.submit(_call, self.device, self.threads, "render", job, chunk)
