"""StyleWorker: holds loaded style networks and renders chunks.

A plain class: Ray wraps it in farm/cluster.py only. One instance renders
many chunks, of one job or of job after job (a worker kept warm); each
network is loaded once, by ``prepare``. Per chunk it fetches the input
object, stylizes the frames in batches, runs the sequential temporal pass
(warm-up frames are processed, not emitted), encodes the output chunk,
stores it, and returns a small :class:`Receipt`.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from farm import video
from farm.codecs import resolve_codec
from farm.config import RenderOptions
from farm.heap import keep_freed_memory
from farm.pipeline import Timer, ahead, behind, timed
from farm.errors import InternalError, MissingObjectError
from farm.plan import Chunk, Layout, Receipt, SettledCuts
from farm.schedule import CompileMode
from farm.store import ObjectStore, open_store, sha256_file


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


#: batches that decoding may run ahead of, and encoding behind, the device work (0: one after another)
OVERLAP = 2

#: networks a worker keeps loaded (the least recently used goes first): a few MB each on the CPU
MAX_NETWORKS = 4


def split_at_cuts(batch: list, first: int, cuts: Sequence[int]) -> list[list]:
    """``batch`` (frames ``first``, ``first``+1, ...) cut into runs that each start at a cut (or another
    frame the painter must be told of before it paints it: ``Chunk.regrid``) or at the batch's start: the
    painter forgets its history before a run that starts a shot."""
    marks = [0] + sorted({c - first for c in cuts if first < c < first + len(batch)}) + [len(batch)]
    return [batch[a:b] for a, b in zip(marks, marks[1:]) if b > a]


#: how long a worker waits for the cuts of frames it is about to paint before it gives the chunk up (the
#: driver settles them as its shard tasks judge the frames, far faster than a worker paints them)
CUTS_PATIENCE_S = 600.0


class ChunkCuts:
    """A chunk's cuts: those it was handed, or (``Chunk.cuts`` None: handed out before they were settled)
    the job's :class:`~farm.plan.SettledCuts`, read from the store when painting reaches a frame beyond
    what was settled at the last read."""

    def __init__(self, chunk: Chunk, store: ObjectStore, layout: Layout, poll: float = 0.05,
                 patience: float = CUTS_PATIENCE_S):
        self.chunk, self.store, self.layout, self.poll, self.patience = chunk, store, layout, poll, patience
        self.settled = SettledCuts(frontier=chunk.end, cuts=chunk.cuts) if chunk.cuts is not None else self._read()

    def _read(self) -> SettledCuts:
        try:
            return SettledCuts.model_validate_json(self.store.get_bytes(self.layout.cuts))
        except MissingObjectError:  # nothing settled yet
            return SettledCuts()

    def known_before(self, end: int) -> bool:
        """Whether every cut among the chunk's frames below ``end`` is settled (by the last read)."""
        return self.settled.frontier >= min(end, self.chunk.end)

    def before(self, end: int) -> list[int]:
        """The chunk's cuts among its frames below ``end``, waiting until the driver has settled them."""
        deadline = time.monotonic() + self.patience
        while not self.known_before(end):
            if time.monotonic() > deadline:
                raise InternalError(f"the cuts of frames up to {end} were not settled in {self.patience:.0f} s")
            time.sleep(self.poll)
            self.settled = self._read()
        return self.settled.within(self.chunk.first, min(end, self.chunk.end))


def output_size(width: int, height: int, render: RenderOptions) -> tuple[int, int]:
    """The size frames painted at ``width``×``height`` are delivered at (``RenderOptions.output_side``)."""
    return (width, height) if render.output_side is None else video.shrunk_size(width, height, render.output_side)


@dataclass(frozen=True)
class JobContext:
    """What a worker needs to know about the job a chunk belongs to (one per job, sent with each chunk)."""

    job_id: str
    store_uri: str
    render: RenderOptions
    width: int
    height: int
    time_base: Fraction
    #: compile the network for frames of this size: "on", "cached" (only a package already built), "off";
    #: see schedule.compile_mode
    compile: CompileMode = "off"
    #: the source's colour description: output chunks convert and are tagged with it
    colour: video.Colour = video.Colour()
    #: the source's facts (size, orientation, colour, HDR): a stream-copied input chunk (Chunk.lead) is
    #: decoded with them, as the shard task would decode the source
    source: video.VideoInfo | None = None

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames written: the painted ``width``×``height``, brought down to the
        render's ``output_side`` where it has one (a preview)."""
        return output_size(self.width, self.height, self.render)


class IdleClock:
    """How long a worker has gone without a call, and the watchdog that retires it after too long."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls = 0
        self._since = time.monotonic()

    @contextmanager
    def busy(self) -> Iterator[None]:
        with self._lock:
            self._calls += 1
        try:
            yield
        finally:
            with self._lock:
                self._calls -= 1
                self._since = time.monotonic()

    def idle_for(self, seconds: float) -> bool:
        with self._lock:
            return self._calls == 0 and time.monotonic() - self._since >= seconds

    def retire_after(self, seconds: float, retire: Callable[[], None], poll: float = 1.0) -> None:
        """Call ``retire`` from a daemon thread once ``seconds`` pass without a call."""
        def watch() -> None:
            while not self.idle_for(seconds):
                time.sleep(min(poll, seconds))
            retire()

        threading.Thread(target=watch, daemon=True, name="farm-idle").start()


class StyleWorker:
    """Renders chunks with loaded networks; one worker serves job after job.

    The constructor only claims the device. :meth:`prepare` loads (and
    compiles) the network a job's style runs on, once per network: a worker
    kept warm between jobs paints the next job's first frame without loading
    anything, whatever the style, as long as the network is the same. With
    ``keep_warm`` seconds, the worker retires itself after that long without a
    call (it then frees its share of the cluster).
    """

    def __init__(self, *, device: str = "auto", threads: int | None = None, batch: int | None = None,
                 keep_warm: float = 0.0, overlap: int = OVERLAP):
        self.device, self.batch, self.overlap = device, batch, overlap
        keep_freed_memory()  # frame after frame of the same sizes: reuse pages instead of faulting them in (farm/heap.py)
        #: the actor's CPU share also caps OpenCV's and FFmpeg's thread pools: left to themselves each
        #: starts one thread per core, and two 1-CPU actors on 2 cores then slow each other's network
        self.threads = threads or 0
        if threads:
            import cv2

            cv2.setNumThreads(threads)
        self._networks: OrderedDict[tuple[str, str | None, str, str], Any] = OrderedDict()
        self._stores: dict[str, ObjectStore] = {}
        self._idle = IdleClock()
        if keep_warm > 0:
            self._idle.retire_after(keep_warm, self.retire)

    def node_label(self) -> str:
        """Which machine rendered a chunk (receipts carry it; the Ray layer names the node instead)."""
        return socket.gethostname()

    def ping(self) -> str:
        """Cheap call the driver uses to learn an actor has started."""
        with self._idle.busy():
            return f"{socket.gethostname()}:{os.getpid()}"

    def prepare(self, job: JobContext) -> str:
        """Load the network the job's style runs on (kept for later jobs) and compile it for the job's
        frame size now, while the driver is still cutting the first chunk. Returns what :meth:`ping` does."""
        with self._idle.busy():
            stylizer = self._stylizer(job.render, job.compile)
            if stylizer.compiled is not None:
                stylizer(np.zeros((stylizer.batch, job.height, job.width, 3), dtype=np.uint8))
            return f"{socket.gethostname()}:{os.getpid()}"

    def retire(self) -> None:
        """Stop this worker (a plain worker has nothing to stop; the Ray actor ends its process)."""

    def retire_if_idle(self, seconds: float) -> bool:
        """Retire if no call came for ``seconds`` (a job about to need this worker's place asks)."""
        if not self._idle.idle_for(seconds):
            return False
        self.retire()
        return True

    def _stylizer(self, render: RenderOptions, compile: CompileMode):
        """The loaded network for the job's style and precision (loading it on first use), set to that style."""
        from farm.styles.model import Stylizer  # torch loads in the worker, not in the driver that names this class

        style = render.style
        key = (style.network, style.model_sha256, render.precision, compile)  # a checkpoint is its own network
        if key not in self._networks:
            self._networks[key] = Stylizer(style, device=self.device, threads=self.threads or None,
                                           precision=render.precision, compile=compile != "off",
                                           build=compile == "on",
                                           **({"batch": self.batch} if self.batch else {}))
            while len(self._networks) > MAX_NETWORKS:
                self._networks.popitem(last=False)
        self._networks.move_to_end(key)
        return self._networks[key].with_style(style, render.stroke_scale)

    def _store(self, uri: str) -> ObjectStore:
        if uri not in self._stores:
            self._stores[uri] = open_store(uri)
        return self._stores[uri]

    def render(self, job: JobContext, chunk: Chunk) -> Receipt:
        """Render one chunk; idempotent: a retry rewrites the same key with the same meaning."""
        with self._idle.busy():
            return self._render(job, chunk)

    def _render(self, job: JobContext, chunk: Chunk) -> Receipt:
        t0 = time.perf_counter()
        layout, timer, store = Layout(job.job_id), Timer(), self._store(job.store_uri)
        stylizer = self._stylizer(job.render, job.compile)
        with tempfile.TemporaryDirectory(prefix="farm-chunk-") as tmp:
            src = self._fetch(store, layout.input(chunk.index, video.SEGMENT_EXT), Path(tmp), timer)
            out = Path(tmp) / f"out{video.SEGMENT_EXT}"
            t_frames = time.perf_counter()
            cuts = ChunkCuts(chunk, store, layout)
            emitted = self._render_frames(stylizer, job, src, out, chunk, cuts, timer)
            frames_s = time.perf_counter() - t_frames
            key = layout.output(chunk.index, video.SEGMENT_EXT)
            with timer.stage("upload"):
                size, digest = out.stat().st_size, sha256_file(out)
                store.put_file(key, out)
        # what the chunk cost beside its frames, fetch and upload (network lookup, scratch folder): with those
        # two, a chunk's overhead (the receipt's own PUT follows and cannot be in it)
        rest = time.perf_counter() - t0 - frames_s - timer.seconds.get("fetch", 0.0) - timer.seconds["upload"]
        timer.seconds["setup"] = max(rest, 0.0)
        receipt = Receipt(chunk=chunk.index, key=key, frames=emitted, size=size, sha256=digest, lead=chunk.lead,
                          node=self.node_label(), pid=os.getpid(), seconds=timer.receipt_seconds(),
                          cuts=cuts.before(chunk.end))
        # the receipt is written after the chunk: its presence is what marks the chunk done
        store.put_bytes(layout.receipt(chunk.index), receipt.model_dump_json().encode())
        return receipt

    @staticmethod
    def _fetch(store: ObjectStore, key: str, tmp: Path, timer: Timer) -> Path:
        with timer.stage("fetch"):
            local = store.local_path(key)
            if local is not None:
                return local
            path = tmp / f"in{video.SEGMENT_EXT}"
            store.get_file(key, path)
            return path

    def _input_frames(self, job: JobContext, chunk: Chunk, src: Path) -> Iterator[video.Frame]:
        """The input object's frames [first, end): a lossless segment's, or a stream copy's after its lead."""
        if chunk.lead is None:
            return video.read_segment(src, threads=self.threads)
        if job.source is None:
            raise RuntimeError(f"chunk {chunk.index} was stream-copied but the job carries no source facts")
        return video.read_copied(src, job.source, chunk.lead, chunk.end - chunk.first, threads=self.threads)

    def _render_frames(self, stylizer, job: JobContext, src: Path, out: Path, chunk: Chunk, cuts: ChunkCuts,
                       timer: Timer) -> int:
        """Decode ahead, paint on the device, encode behind (farm/pipeline.py): each in its own thread,
        at most ``self.overlap`` batches apart, so a frame costs about its slowest stage, not the sum."""
        from farm.paint import painter_for

        enc, depth = job.render.encode, self.overlap * stylizer.batch
        paint = painter_for(stylizer, job.render.temporal, timer)
        codec = resolve_codec(enc.codec, stylizer.device.type)
        # warm-up frames before a cut are decoded but not painted: the history they would build is forgotten
        # (where the cuts are not settled yet, they are painted, and forgotten at the cut)
        known = cuts.before(chunk.start + 1) if cuts.known_before(chunk.start + 1) else []
        seen = max([c for c in known if c <= chunk.start], default=chunk.first) - chunk.first
        emitted = 0
        frames = ahead(timed(self._input_frames(job, chunk, src), timer, "decode"), depth, "farm-decode")
        frames = islice(frames, seen, None)

        size = job.output_size
        with video.SegmentWriter(out, *size, job.time_base, lossless=False, codec=codec,
                                 crf=enc.crf, preset=enc.preset, pix_fmt=enc.pix_fmt, threads=self.threads,
                                 colour=job.colour) as writer:
            def encode(item: tuple[np.ndarray, int]) -> None:
                with timer.stage("encode"):
                    writer.write(video.shrink(item[0], size), item[1])

            with behind(encode, depth, "farm-encode") as encoder:
                for batch in batched(frames, stylizer.batch):
                    batch_cuts = cuts.before(chunk.first + seen + len(batch))
                    for shot in split_at_cuts(batch, chunk.first + seen, [*batch_cuts, *chunk.regrid]):
                        if chunk.first + seen in batch_cuts:
                            paint.reset()
                        elif chunk.first + seen in chunk.regrid:
                            paint.regrid()
                        painted = paint(np.stack([f.rgb for f in shot]))
                        for frame, image in zip(shot, painted):
                            if seen >= chunk.warmup:
                                encoder.put((image, frame.pts))
                                emitted += 1
                            seen += 1
        return emitted
