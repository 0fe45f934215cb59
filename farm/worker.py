"""StyleWorker: holds a loaded style network and renders chunks.

A plain class: Ray wraps it in farm/cluster.py only. One instance renders
many chunks; the network is loaded once in ``__init__``. Per chunk it fetches
the input object, stylizes the frames in batches, runs the sequential
temporal pass (warm-up frames are processed, not emitted), encodes the output
chunk, stores it, and returns a small :class:`Receipt`.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np

from farm.config import RenderOptions
from farm.plan import Chunk, Layout, Receipt
from farm.store import open_store, sha256_file
from farm import video


class Timer:
    """Accumulates seconds per stage (reported in receipts, summed by the driver)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


def batched(frames: Iterator[video.Frame], size: int) -> Iterator[list[video.Frame]]:
    """Group a frame stream into lists of ``size`` (the last may be shorter)."""
    batch: list[video.Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def timed(items: Iterator, timer: Timer, stage: str) -> Iterator:
    """Charge the time spent producing each item of ``items`` to ``stage``."""
    iterator = iter(items)
    while True:
        with timer.stage(stage):
            item = next(iterator, None)
        if item is None:
            return
        yield item


class StyleWorker:
    """Renders chunks of one job with one loaded network."""

    def __init__(self, store_uri: str, render: RenderOptions, *, device: str = "auto",
                 threads: int | None = None, batch: int | None = None, compile: bool = False,
                 frame_size: tuple[int, int] | None = None):
        from farm.styles.model import Stylizer  # torch loads in the actor, not in the driver that names this class

        self.store = open_store(store_uri)
        self.render_options = render
        #: the actor's CPU share also caps OpenCV's and FFmpeg's thread pools: left to themselves each
        #: starts one thread per core, and two 1-CPU actors on 2 cores then slow each other's network
        self.threads = threads or 0
        if threads:
            import cv2

            cv2.setNumThreads(threads)
        self.stylizer = Stylizer(render.style, device=device, threads=threads, compile=compile,
                                 **({"batch": batch} if batch else {}))
        if compile and frame_size:  # compile now, while the driver is still cutting the first chunk
            self.stylizer(np.zeros((self.stylizer.batch, *frame_size, 3), dtype=np.uint8))

    def node_label(self) -> str:
        """Which machine rendered a chunk (receipts carry it; the Ray layer names the node instead)."""
        return socket.gethostname()

    def ping(self) -> str:
        """Cheap call the driver uses to learn an actor has started."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def render(self, job_id: str, chunk: Chunk, width: int, height: int, time_base: Fraction) -> Receipt:
        """Render one chunk; idempotent: a retry rewrites the same key with the same meaning."""
        layout, timer = Layout(job_id), Timer()
        with tempfile.TemporaryDirectory(prefix="farm-chunk-") as tmp:
            src = self._fetch(layout.input(chunk.index, video.SEGMENT_EXT), Path(tmp), timer)
            out = Path(tmp) / f"out{video.SEGMENT_EXT}"
            emitted = self._render_frames(src, out, chunk, width, height, time_base, timer)
            key = layout.output(chunk.index, video.SEGMENT_EXT)
            with timer.stage("upload"):
                size, digest = out.stat().st_size, sha256_file(out)
                self.store.put_file(key, out)
        receipt = Receipt(chunk=chunk.index, key=key, frames=emitted, size=size, sha256=digest,
                          node=self.node_label(), pid=os.getpid(), seconds=timer.seconds)
        # the receipt is written after the chunk: its presence is what marks the chunk done
        self.store.put_bytes(layout.receipt(chunk.index), receipt.model_dump_json().encode())
        return receipt

    def _fetch(self, key: str, tmp: Path, timer: Timer) -> Path:
        with timer.stage("fetch"):
            local = self.store.local_path(key)
            if local is not None:
                return local
            path = tmp / f"in{video.SEGMENT_EXT}"
            self.store.get_file(key, path)
            return path

    def _render_frames(self, src: Path, out: Path, chunk: Chunk, width: int, height: int,
                       time_base: Fraction, timer: Timer) -> int:
        from farm.temporal import Coherence

        coherence = Coherence(self.render_options.temporal) if self.render_options.temporal.enabled else None
        enc = self.render_options.encode
        emitted, seen = 0, 0
        frames = timed(video.read_segment(src, threads=self.threads), timer, "decode")
        with video.SegmentWriter(out, width, height, time_base, lossless=False, codec=enc.codec,
                                 crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt, threads=self.threads) as writer:
            for batch in batched(frames, self.stylizer.batch):
                with timer.stage("network"):
                    styled = self.stylizer(np.stack([f.rgb for f in batch]))
                for frame, image in zip(batch, styled):
                    if coherence is not None:
                        with timer.stage("temporal"):
                            image = coherence.step(frame.rgb, image)
                    if seen >= chunk.warmup:
                        with timer.stage("encode"):
                            writer.write(video.to_uint8(image), frame.pts)
                        emitted += 1
                    seen += 1
        return emitted
