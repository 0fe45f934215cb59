"""Overlapped stages: a producer runs ahead of its consumer, a consumer behind its producer.

A worker's chunk is decode → device work (network, temporal pass) → encode.
Run one after another, a frame costs the sum of the three; with decoding
running ahead (:func:`ahead`) and encoding running behind (:func:`behind`) in
threads of their own, joined by bounded queues, it costs about the slowest
one. PyAV and torch release the GIL while they work, so threads are enough.

Both keep order (one thread per stage, FIFO queues), bound memory (``depth``
items in flight) and stop cleanly: an error in any stage is raised in the
caller's thread, at the point where the caller next meets that stage, and the
other threads are stopped and joined before it propagates. ``depth=0`` runs
the stage inline, in the caller's thread: the serial pipeline, same results.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")

#: how often a blocked thread looks whether the other side has stopped
_POLL = 0.05


class _End:
    """The producer's last word: done, or the error it stopped on."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _offer(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; whether it went in."""
    while not stop.is_set():
        try:
            q.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def ahead(items: Iterable[T], depth: int, name: str = "farm-ahead") -> Iterator[T]:
    """``items``, produced up to ``depth`` items ahead in a thread of their own.

    The producer's error is raised here, after the items it made before it.
    Closing this generator early (a consumer's error, ``break``) stops the
    producer, closes ``items`` in the producer's own thread and joins it.
    """
    if depth <= 0:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        iterator = iter(items)
        try:
            for item in iterator:
                if not _offer(q, item, stop):
                    return
            _offer(q, _End(), stop)
        except BaseException as exc:  # handed to the consumer, raised there
            _offer(q, _End(exc), stop)
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, daemon=True, name=name)
    thread.start()
    try:
        while True:
            item = q.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        stop.set()
        thread.join()


class behind(Generic[T]):
    """A consumer running in a thread of its own, up to ``depth`` items behind :meth:`put`.

    Use as a context manager: a clean exit waits for every item to be
    consumed and raises the consumer's error, if any; an exit on an error
    stops the consumer without finishing the queue. :meth:`put` raises the
    consumer's error as soon as it is known, so the producer stops early.
    """

    def __init__(self, consume: Callable[[T], None], depth: int, name: str = "farm-behind") -> None:
        self._consume, self._depth = consume, depth
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._queue: queue.Queue = queue.Queue(maxsize=max(depth, 1))
        self._thread = threading.Thread(target=self._run, daemon=True, name=name) if depth > 0 else None

    def __enter__(self) -> behind[T]:
        if self._thread is not None:
            self._thread.start()
        return self

    def put(self, item: T) -> None:
        """Hand ``item`` to the consumer (inline when ``depth`` is 0)."""
        if self._thread is None:
            self._consume(item)
            return
        self._raise_if_failed()
        if not _offer(self._queue, item, self._stop):
            self._raise_if_failed()

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
            except queue.Empty:
                if self._stop.is_set():
                    return
                continue
            if isinstance(item, _End) or self._stop.is_set():
                return
            try:
                self._consume(item)
            except BaseException as exc:  # raised in the producer's thread by put or __exit__
                self._error = exc
                self._stop.set()
                return

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._thread is None:
            return
        if exc_type is None:
            _offer(self._queue, _End(), self._stop)
        else:
            self._stop.set()
        self._thread.join()
        if exc_type is None:
            self._raise_if_failed()


class Timer:
    """Seconds spent per stage (receipts carry them, the driver sums them); stages may run in threads.

    ``seconds`` is wall time; ``cpu`` the CPU time of the thread that ran the stage (time.thread_time).
    Overlapped stages share the cores, so their wall time includes waiting for one; their CPU time
    does not. CPU time done in other threads (a multi-threaded torch or codec) is not in ``cpu``.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, c0 = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            spent, cpu = time.perf_counter() - t0, time.thread_time() - c0
            with self._lock:
                self.seconds[name] = self.seconds.get(name, 0.0) + spent
                self.cpu[name] = self.cpu.get(name, 0.0) + cpu

    def receipt_seconds(self) -> dict[str, float]:
        """Wall seconds per stage, then each stage's CPU seconds as ``<stage>_cpu``."""
        return {**self.seconds, **{f"{name}_cpu": cpu for name, cpu in self.cpu.items()}}


def timed(items: Iterable[T], timer: Timer, stage: str) -> Iterator[T]:
    """Charge the time spent producing each item of ``items`` to ``stage``."""
    iterator = iter(items)
    while True:
        with timer.stage(stage):
            item = next(iterator, None)
        if item is None:
            return
        yield item
