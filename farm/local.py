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

import ctypes
import glob
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from farm import rayprobe
from farm.config import ClusterOptions
from farm.plan import Chunk
from farm.schedule import PoolShape, WorkerLost
from farm.worker import JobContext, StyleWorker


def runs_here(options: ClusterOptions) -> bool:
    """Whether the job's workers are this machine's processes: no cluster asked for, joined or running
    here (Ray's own lookup: ``RAY_ADDRESS``, else the address ``ray start`` left), and no GPU, which a
    Ray pool places one worker per device on."""
    import ray

    if options.address is not None or ray.is_initialized() or has_gpu():
        return False
    try:
        return rayprobe.bootstrap_address() is None
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


def _init_worker(driver: int) -> None:
    """A worker's (or shard task's) process's first act. Ctrl-C reaches the whole process group: the
    driver stops the workers, they do not print tracebacks. And the worker ends with its driver, however the driver dies."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with(driver)


#: prctl(2) option: the signal this process gets when its parent ends (<linux/prctl.h>)
PR_SET_PDEATHSIG = 1
#: how often a worker looks whether its driver is still there, where the kernel cannot tell it
PARENT_POLL_SECONDS = 1.0


def die_with(parent: int) -> None:
    """End this process as soon as ``parent`` (the driver that started it) is gone.

    A driver killed with SIGKILL (the OOM killer, a closed terminal) never stops its workers, and a
    ``ProcessPoolExecutor`` worker waits for its next call forever: the call queue it reads never
    reaches end-of-file, since the worker holds that pipe's write end as well. Orphans holding a
    loaded network (430 MB each) were found alive 19 minutes on. So:

    * on Linux the kernel sends SIGKILL the moment the parent ends (``PR_SET_PDEATHSIG``): it works
      while the worker is deep in native code with the GIL held. It fires when the parent's *thread*
      that started the worker ends; the executor starts its workers in the thread that submits the
      first call, the job's own, which outlives them;
    * everywhere, a daemon thread also polls the parent pid (reparenting changes it), for systems
      without prctl;
    * a parent already gone before either was in place is caught by the first look.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_SECONDS)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="farm-driver-watch").start()


def process_pool(processes: int) -> ProcessPoolExecutor:
    """``processes`` processes of this machine (``spawn``: no thread state is forked) that ignore Ctrl-C
    and end with this driver (:func:`_init_worker`): style workers here, shard tasks in farm/shard.py."""
    return ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(),))


def first_done(calls: list[Future], timeout: float) -> list[Future]:
    """The finished calls among ``calls``, waiting up to ``timeout`` seconds for one."""
    done, _ = wait(calls, timeout=timeout, return_when=FIRST_COMPLETED)
    return list(done)


def kill_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now, busy processes included."""
    # the standard library has no kill for a busy worker before Python 3.14 (terminate_workers)
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.kill()
    pool.shutdown(wait=True, cancel_futures=True)


class LocalWorkers:
    """Style workers as local processes, for :class:`farm.schedule.Scheduler`."""

    def __init__(self, shape: PoolShape):
        self.device, self.threads = shape.device, max(1, int(shape.num_cpus))

    @staticmethod
    def start() -> ProcessPoolExecutor:
        return process_pool(1)

    wait = staticmethod(first_done)

    @staticmethod
    def result(call: Future) -> Any:
        try:
            return call.result()
        except BrokenProcessPool as exc:  # the process died: killed, out of memory, a crash in native code
            raise WorkerLost("the worker process exited") from exc

    stop = staticmethod(kill_pool)

    def prepare(self, worker: ProcessPoolExecutor, job: JobContext) -> Future:
        return worker.submit(_call, self.device, self.threads, "prepare", job)

    def render(self, worker: ProcessPoolExecutor, job: JobContext, chunk: Chunk) -> Future:
        return worker.submit(_call, self.device, self.threads, "render", job, chunk)
