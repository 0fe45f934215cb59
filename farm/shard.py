"""Cutting the source into input chunk objects, spread over shard tasks.

The driver plans; shard tasks cut (Ray tasks on any CPU node of a cluster, or
processes of this machine without one). Each task gets a *span*: consecutive
chunks of the plan, and the keyframe at or before the span's first warm-up
frame. It seeks there, decodes its own range only, and writes each chunk's
input object (lossless, warm-up frames included) as soon as the chunk's last
frame is decoded. A span covers at least :data:`SPAN_FRAMES` frames, so the
seek and the frames decoded between the keyframe and the span are paid once
per span, not per chunk.

Where the source allows it, a chunk's input object is not re-encoded at all: the task stream-copies the
source's own packets from the keyframe at or before the chunk's first warm-up frame (farm/video/remux.py),
and the chunk records how many frames before its own the worker decodes and drops (``Chunk.lead``). That is
exact (the worker's frames are the source's decoding), costs no encode, and is 10-20x smaller
(bench/README.md). Chunks whose keyframe lies too far back (:data:`COPY_LEAD_LIMIT`), trims, photo
sequences and sources whose timestamps cannot be trusted are cut losslessly as before.

Frame numbers come from the container's packets, read without decoding
(:func:`seek_table`): a keyframe's number is its rank among every frame's
presentation time. A source whose timestamps cannot be trusted for that
(missing or repeated) is cut from its start by every task, which is slower
but exact.
"""

from __future__ import annotations

import bisect
import heapq
import tempfile
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from farm import video
from farm.errors import InputError
from farm.local import first_done, kill_pool, process_pool
from farm.plan import Chunk, Layout
from farm.shots import LOOKBACK, ShotBook
from farm.store import ObjectStore, open_store
from farm.video.probe import open_input, video_stream

#: the fewest frames one shard task cuts (unless the plan has fewer left): a seek lands on a keyframe and
#: decodes up to the span, so a span much shorter than the source's keyframe interval would decode most
#: of its frames twice
SPAN_FRAMES = 48
#: a chunk is stream-copied only when the frames its worker decodes and drops before it (from the keyframe
#: to its first warm-up frame) are at most this many times its own input frames: past that the worker's
#: extra decoding costs more than the shard task's encode saves (bench/README.md, shard.py)
COPY_LEAD_LIMIT = 1.0


@dataclass(frozen=True)
class SeekPoint:
    """A keyframe: its frame number (presentation order) and pts; ``pts`` None means decode from the start."""

    index: int
    pts: int | None


START = SeekPoint(0, None)


@dataclass(frozen=True)
class Span:
    """Consecutive chunks one shard task cuts, and where its decoding starts; ``keys``: each chunk's keyframe
    at or before its first warm-up frame (where its stream copy starts)."""

    chunks: tuple[Chunk, ...]
    seek: SeekPoint
    keys: tuple[SeekPoint, ...] = ()

    @property
    def first(self) -> int:
        return self.chunks[0].first

    @property
    def end(self) -> int:
        return self.chunks[-1].end


def seekable(info: video.VideoInfo) -> bool:
    """Whether shard tasks may seek into the source: a whole video, not a trim or a photo sequence
    (their frame numbers count from the trim's first frame or the first photo, which a keyframe
    table of the file does not know). Those are cut as one stream, by one task."""
    return not info.photos and info.window is None


def seek_table(path: Path) -> list[SeekPoint]:
    """The source's keyframes as frame numbers, by demuxing its packets (no decoding). One pts per
    frame is held only while counting (8 bytes a frame: 1.4 MB for a 2-hour film)."""
    with open_input(Path(path)) as container:
        stream = video_stream(container, Path(path))
        every, keys = array("q"), []
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.pts is None:
                return [START]
            every.append(packet.pts)
            if packet.is_keyframe:
                keys.append(packet.pts)
    order = sorted(every)
    if any(a == b for a, b in zip(order, order[1:])):
        return [START]
    return [SeekPoint(bisect.bisect_left(order, pts), pts) for pts in sorted(keys)] or [START]


def plan_spans(chunks: Iterable[Chunk], table: list[SeekPoint], min_frames: int = SPAN_FRAMES) -> Iterator[Span]:
    """Group the chunks (in plan order) into spans of at least ``min_frames`` frames; a gap in the
    chunks (a resume's finished ones) ends a span. Each span starts at the last keyframe at or before
    its first warm-up frame."""
    starts = [p.index for p in table]
    group: list[Chunk] = []
    for chunk in sorted(chunks, key=lambda c: c.index):
        if group and (chunk.first > group[-1].end or group[-1].end - group[0].first >= min_frames):
            yield _span(group, table, starts)
            group = []
        group.append(chunk)
    if group:
        yield _span(group, table, starts)


def _span(chunks: list[Chunk], table: list[SeekPoint], starts: list[int]) -> Span:
    # a few frames before the span too: the cut detector judges its first frames against them
    at = bisect.bisect_right(starts, max(chunks[0].first - LOOKBACK, 0)) - 1
    keys = tuple(_key(table, starts, c.first) for c in chunks)
    return Span(tuple(chunks), table[at] if at >= 0 else START, keys)


def _key(table: list[SeekPoint], starts: list[int], frame: int) -> SeekPoint:
    at = bisect.bisect_right(starts, frame) - 1
    return table[at] if at >= 0 else START


def copyable(chunk: Chunk, key: SeekPoint) -> bool:
    """Whether ``chunk`` may be stream-copied from ``key`` (see COPY_LEAD_LIMIT)."""
    return key.pts is not None and chunk.first - key.index <= COPY_LEAD_LIMIT * (chunk.end - chunk.first)


class SpanCut(NamedTuple):
    """What a shard task reports: cut candidates among its frames (with detection), and the chunks it
    stream-copied, each with the frames its worker drops (Chunk.lead)."""

    candidates: list[int]
    leads: dict[int, int]


# --------------------------------------------------------------------------- one task


_sources: dict[str, Path] = {}  # a task process fetches an s3:// source once, for every span it cuts


def cut_span(source: str, info: video.VideoInfo, span: Span, store_uri: str, job_id: str,
             detect: bool = False, copy: bool = False, store_chunks: bool = True) -> SpanCut:
    """A shard task: store each of the span's chunks' input objects, stream-copied where ``copy`` allows it
    (see COPY_LEAD_LIMIT; the job decided the source can be), else decoded and written losslessly. With
    ``detect``, it also judges the span's frames for hard cuts (decoding them for that alone when every
    chunk was copied) and returns the candidates among them (farm/shots.py settles which start a shot).
    ``store_chunks`` False: judge only, the chunks are stored already (:class:`ShardFeeder`'s second task
    for a span whose chunks it handed out as soon as they were copied)."""
    if source not in _sources:
        from farm.sources import localize

        _sources[source] = localize(source)
    path, store, layout = _sources[source], open_store(store_uri), Layout(job_id)
    leads = copy_chunks(path, span, store, layout) if store_chunks and copy and seekable(info) and span.keys else {}
    lossless = [c for c in span.chunks if c.index not in leads] if store_chunks else []
    if not detect:
        if lossless:
            list(cut(frames_from(path, info, span.seek), lossless, store, layout, info, path))
        return SpanCut([], leads)
    from farm.temporal.cuts import RangeScorer

    scorer = RangeScorer(span.first, span.end, info.frames)
    list(cut(frames_from(path, info, span.seek), lossless, store, layout, info, path, scorer))
    return SpanCut(scorer.candidates(), leads)


def copy_chunks(source: Path, span: Span, store: ObjectStore, layout: Layout) -> dict[int, int]:
    """Stream-copy each chunk of the span that may be; returns their leads (chunk index: frames dropped)."""
    leads: dict[int, int] = {}
    with tempfile.TemporaryDirectory(prefix="farm-copy-") as tmp:
        for chunk, key in zip(span.chunks, span.keys):
            if not copyable(chunk, key):
                continue
            lead, path = chunk.first - key.index, Path(tmp) / f"{chunk.index:06d}{video.SEGMENT_EXT}"
            if video.copy_packets(source, key.pts, lead + chunk.end - chunk.first, path):
                store.put_file(layout.input(chunk.index, video.SEGMENT_EXT), path)
                path.unlink()
                leads[chunk.index] = lead
    return leads


class _SeekMissed(Exception):
    """The seek did not land on the keyframe the table names (an edit list, a damaged index)."""


def frames_from(path: Path, info: video.VideoInfo, seek: SeekPoint) -> Iterator[tuple[int, video.Frame]]:
    """Numbered frames from the keyframe ``seek`` on (from the start when the seek cannot be trusted).

    A trimmed video and a photo sequence are read from their start: frame numbers there count from the
    trim's first frame or the first photo, which the keyframe table of the whole file does not know."""
    if seekable(info) and seek.pts is not None and seek.index > 0:
        try:
            yield from _seeked(path, info, seek)
            return
        except _SeekMissed:
            pass
    yield from enumerate(video.iter_frames(path, info))


def _seeked(path: Path, info: video.VideoInfo, seek: SeekPoint) -> Iterator[tuple[int, video.Frame]]:
    with open_input(path) as container:
        stream = video_stream(container, path)
        container.seek(seek.pts, stream=stream, backward=True, any_frame=False)
        index = seek.index
        for frame in container.decode(stream):
            if frame.pts is None:
                raise _SeekMissed
            if frame.pts < seek.pts:  # open-GOP leading frames: they belong to the span before
                continue
            if index == seek.index and frame.pts != seek.pts:
                raise _SeekMissed
            rgb = video.to_rgb(frame, info.width, info.height, info.out_width, info.out_height, info.orientation,
                               info.colour)
            yield index, video.Frame(rgb, frame.pts)
            index += 1


def cut(frames: Iterable[tuple[int, video.Frame]], chunks: Iterable[Chunk], store: ObjectStore, layout: Layout,
        info: video.VideoInfo, source: Path, scorer: Any = None) -> Iterator[Chunk]:
    """Write the input object of each chunk from numbered frames, yielding each chunk once it is stored.
    Each frame goes straight into the one or two chunk encoders whose range covers it (a chunk's warm-up
    frames are the tail of the chunk before it), and to ``scorer`` (a farm.temporal.cuts.RangeScorer)
    if given; decoding stops after the last chunk, or the last frame the scorer needs."""
    todo = sorted(chunks, key=lambda c: c.first)
    if not todo and scorer is None:
        return
    open_writers: dict[int, tuple[Chunk, video.SegmentWriter, Path]] = {}
    next_to_open, decoded = 0, 0
    with tempfile.TemporaryDirectory(prefix="farm-shard-") as tmp:
        for n, frame in frames:
            decoded = n + 1
            if scorer is not None:
                scorer.feed(n, frame.rgb)
            while next_to_open < len(todo) and todo[next_to_open].first == n:
                chunk = todo[next_to_open]
                path = Path(tmp) / f"{chunk.index:06d}{video.SEGMENT_EXT}"
                # one encoder thread: a shard task is one CPU's work, and tasks, not threads, scale it out
                writer = video.SegmentWriter(path, info.out_width, info.out_height, info.time_base, lossless=True,
                                             threads=1, colour=info.colour.output)
                open_writers[chunk.index] = (chunk, writer, path)
                next_to_open += 1
            for chunk, writer, _ in list(open_writers.values()):
                writer.write(frame.rgb, frame.pts)
                if n == chunk.end - 1:
                    yield _store_chunk(open_writers.pop(chunk.index), store, layout)
            if next_to_open == len(todo) and not open_writers and (scorer is None or decoded >= scorer.needs_until):
                return
        raise InputError(f"{source}: decoding stopped after {decoded} of {info.frames} frames "
                         "(the file is truncated or corrupt)")


def _store_chunk(entry: tuple[Chunk, video.SegmentWriter, Path], store: ObjectStore, layout: Layout) -> Chunk:
    chunk, writer, path = entry
    writer.close()
    store.put_file(layout.input(chunk.index, video.SEGMENT_EXT), path)
    path.unlink()
    return chunk


def shard(source: Path, info: video.VideoInfo, chunks: Iterable[Chunk], store: ObjectStore,
          layout: Layout) -> Iterator[Chunk]:
    """Cut the given chunks in this process, as one stream from the source's start (tests, benches)."""
    return cut(enumerate(video.iter_frames(source, info)), chunks, store, layout, info, source)


# --------------------------------------------------------------------------- tasks, and the feeder over them


class Sharders(Protocol):
    """Where shard tasks run: this machine's processes, or Ray tasks on a cluster (farm/cluster.py)."""

    def submit(self, *args: Any) -> Any:
        """Start ``cut_span(*args)``; returns the call."""

    def wait(self, calls: list[Any], timeout: float) -> list[Any]:
        """The finished calls among ``calls``, waiting up to ``timeout`` seconds for one."""

    def result(self, call: Any) -> Any:
        """A finished call's value, or its error raised."""

    def close(self) -> None:
        """Stop every task still running."""


class LocalSharders:
    """Shard tasks as ``tasks`` processes of this machine (farm.local.process_pool)."""

    def __init__(self, tasks: int):
        self._pool = process_pool(tasks)

    def submit(self, *args: Any) -> Future:
        return self._pool.submit(cut_span, *args)

    wait = staticmethod(first_done)

    @staticmethod
    def result(call: Future) -> Any:
        return call.result()

    def close(self) -> None:
        kill_pool(self._pool)


class ShardFeeder:
    """The chunks ahead of the style workers, cut by shard tasks: at most ``tasks`` tasks at once, and a
    new span only while fewer than ``depth`` chunks are cut or being cut and not yet taken (the
    backpressure that keeps the store and the driver flat however long the film). Hands out the
    earliest ready chunk first. The same ``take``/``poll``/``exhausted`` as :class:`farm.schedule.Feeder`.

    With a ``book`` the tasks also look for hard cuts, settled in plan order as the spans come back:

    * a span whose chunks are encoded is cut and judged in the one pass that decodes it, and its chunks
      leave once every span before it is settled, each with the cuts among its frames (warm-up included)
      in ``Chunk.cuts``;
    * with ``copy`` (storing a stream-copied chunk decodes nothing) a span takes two tasks: the first
      stores its chunks, which leave at once with ``cuts`` None, the second judges its frames. Each time
      the settled cuts grow they go to ``publish``, where those chunks' workers read them as they paint
      (farm/worker.py): a worker need not wait, before its first frame, for every frame of the film up to
      its chunk's last to be decoded and judged (issue 18: 2.2 s of an 18 s job on 2 cores)."""

    def __init__(self, sharders: Sharders, spans: Iterable[Span], args: tuple, depth: int, tasks: int,
                 book: ShotBook | None = None, copy: bool = False,
                 publish: Callable[[ShotBook], None] | None = None):
        self.sharders, self.args, self.depth, self.tasks, self.book = sharders, args, depth, tasks, book
        self.copy = copy  # stream-copy the chunks that allow it (cut_span)
        self.publish = publish
        #: chunks leave before their cuts are settled (the second way above)
        self.early = copy and book is not None
        self._spans: deque[tuple[int, Span]] = deque(enumerate(spans))
        self._running: dict[Any, tuple[int, Span, bool]] = {}  # call: span, and whether it only judges
        self._unjudged: deque[tuple[int, Span]] = deque()  # stored and handed out, frames not judged yet
        self._back: dict[int, tuple[Span, SpanCut]] = {}  # spans judged, waiting for those before them
        self._next = 0  # the span settled next
        self._ready: list[tuple[int, Chunk]] = []
        self._closed = False
        self.exhausted = False
        self._fill()

    def _queued(self) -> int:
        held = sum(len(span.chunks) for _, span, judging in self._running.values() if not judging)
        if not self.early:
            held += sum(len(span.chunks) for span, _ in self._back.values())
        return len(self._ready) + held

    def _fill(self) -> None:
        """Start tasks while there is room: the next span's chunks first (workers wait for them), then a
        judging of frames handed out already."""
        while not self._closed and len(self._running) < self.tasks:
            if self._spans and self._queued() < self.depth:
                seq, span = self._spans.popleft()
                judging = False
            elif self._unjudged:
                seq, span = self._unjudged.popleft()
                judging = True
            else:
                return
            detect = self.book is not None and (judging or not self.early)
            call = self.sharders.submit(self.args[0], self.args[1], span, *self.args[2:], detect,
                                        self.copy and not judging, not judging)
            self._running[call] = (seq, span, judging)

    def resize(self, depth: int) -> None:
        self.depth = depth
        self._fill()

    def take(self, timeout: float) -> Chunk | None:
        """The earliest cut chunk, waiting up to ``timeout`` for one; None when none is ready or left."""
        if not self._ready and self._running:
            self._collect(timeout)
        if self._ready:
            chunk = heapq.heappop(self._ready)[1]
            self._fill()
            return chunk
        self._fill()
        self.exhausted = not (self._spans or self._running or self._back or self._unjudged)
        return None

    def poll(self) -> None:
        """Take in the tasks that finished, without waiting: called while every worker is busy, since
        workers painting chunks handed out early wait for the cuts the judging tasks settle."""
        if self._running:
            self._collect(0.0)
        self._fill()

    def _collect(self, timeout: float) -> None:
        for call in self.sharders.wait(list(self._running), timeout):
            seq, span, judging = self._running.pop(call)
            found = self.sharders.result(call)  # a task's error (a corrupt source) stops the job here
            if self.early and not judging:
                self._hand_out(span, found, cuts=False)
                self._unjudged.append((seq, span))
            else:
                self._back[seq] = (span, found)
        self._release()

    def _release(self) -> None:
        settled = False
        for seq in sorted(self._back):
            if self.book is not None and seq != self._next:
                break  # without cuts to settle, any span's chunks go at once
            span, found = self._back.pop(seq)
            self._next = seq + 1
            if self.book is not None:
                self.book.settle(span.first, span.end, found.candidates)
                settled = True
            if not self.early:
                self._hand_out(span, found, cuts=self.book is not None)
        if settled and self.publish is not None:
            assert self.book is not None
            self.publish(self.book)

    def _hand_out(self, span: Span, found: SpanCut, cuts: bool) -> None:
        for chunk in span.chunks:
            update: dict[str, Any] = {"lead": found.leads.get(chunk.index)}  # how its input object was cut: a
            # chunk planned again (a repair) may be cut the other way
            if cuts:
                assert self.book is not None
                update["cuts"] = self.book.within(chunk.first, chunk.end)
            elif self.early:
                update["cuts"] = None
            heapq.heappush(self._ready, (chunk.index, chunk.model_copy(update=update)))

    def close(self) -> None:
        """Start no more spans (the job failed or was interrupted); the running ones are the sharders' to stop."""
        self._closed = True
