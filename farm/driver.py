"""The job: probe, plan, shard onto the store, render on the pool, reduce, deliver.

``submit`` is the one library entry point the CLI calls; a :class:`JobRun`
owns everything one running job holds (store, layout, manifest, source and
its facts, the pool and its scheduler). Job state lives in the object store
(manifest, chunk receipts, state: farm/jobs.py), so an interrupted job is
finished by running it again with the same id: chunks with a valid receipt
are not rendered twice.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel

from farm import cluster, local, video
from farm.video import images
from farm.config import ClusterOptions, JobSpec, PhotoOptions, RenderOptions, Trim
from farm.errors import ChunkCorruptError, JobError
from farm.files import atomic_path
from farm.jobs import finished_receipts, load_manifest, read_state, write_state
from farm.plan import Chunk, Layout, Manifest, Receipt, SettledCuts, plan_chunks, warmup_for
from farm.reduce import deliver, write_gif, write_video
from farm.schedule import CompileMode, PoolShape, Scheduler, compile_mode, network_pixels, pool_shape
from farm.shard import (SPAN_FRAMES, START, LocalSharders, SeekPoint, Sharders, ShardFeeder, plan_spans, seek_table,
                        seekable)
from farm.shots import ShotBook
from farm.store import LocalStore, ObjectStore, open_store
from farm.worker import JobContext, output_size
from farm.styles import ledger
from farm.styles.catalog import reference_side
from farm.styles.identity import PAINTER_REVISION, model_identity
from farm.styles.size import working_size

#: called with (frames done, frames total) as chunks finish
ProgressFn = Callable[[int, int], None]
#: how many times the reducer renders a chunk again whose bytes fail their checksum
REPAIRS = 2


class JobResult(BaseModel):
    """What ``farm submit --json`` prints."""

    job_id: str
    output: str
    gif: str | None
    frames: int
    fps: float
    width: int
    height: int
    style: str
    seconds: float
    chunks: int
    chunks_rendered: int
    store: str
    stages: dict[str, float]
    notes: list[str] = []


def build_manifest(spec: JobSpec, info: video.VideoInfo, workers: int = 1) -> Manifest:
    """The job's manifest. Its cuts are found later, by the shard tasks (see JobRun.record_cuts)."""
    render = spec.render
    temporal = render.temporal
    warmup = warmup_for(temporal.strength, temporal.warmup) if temporal.enabled else 0
    chunks = plan_chunks(info.frames, render.chunk_frames, warmup, workers)
    return Manifest(spec=spec, source_info=info.model_dump(mode="json"), chunks=chunks,
                    model_id=model_identity(render.style), painter=PAINTER_REVISION,
                    created=datetime.now(timezone.utc).isoformat())


def open_manifest(store: ObjectStore, layout: Layout, fresh: Manifest) -> Manifest:
    """Write the manifest of a new job, or check that an existing one asks for the same result."""
    if not store.exists(layout.manifest):
        store.put_bytes(layout.manifest, fresh.model_dump_json(indent=2).encode())
        return fresh
    old = load_manifest(store, layout)
    check_same_job(old, fresh)
    return old


def check_same_job(old: Manifest, fresh: Manifest) -> None:
    """Refuse a stored job that asks for another result than ``fresh`` under the same id: another spec, or
    chunks painted by another revision of farm's painter, which would not meet the new ones without seams."""
    if old.identity() == fresh.identity():
        return
    job = fresh.spec.job_id
    if {**old.identity(), "painter": fresh.painter} == fresh.identity():
        raise JobError(f"job {job!r} was painted by another version of farm (painter revision {old.painter}; this "
                       f"one paints as {fresh.painter}), whose chunks would not join this one's without seams: "
                       "finish it with the farm that started it, or render it under another --job-id")
    raise JobError(f"job {job!r} already exists with a different spec; "
                   "use another --job-id, or `farm resume` to finish it as it was")


def submit(spec: JobSpec, options: ClusterOptions, *, source: Path, info: video.VideoInfo | None = None,
           progress: ProgressFn | None = None) -> JobResult:
    """Render ``spec`` from the local file ``source`` and deliver the MP4 (and GIF) to the paths it names."""
    return JobRun(spec, options, source, info or probe_source(source, spec.trim, spec.photos), progress).run()


def probe_source(source: Path, trim: Trim | None, photos: PhotoOptions = PhotoOptions()) -> video.VideoInfo:
    """The source as a job sees it: a video or a photo sequence, whole or the part a trim keeps."""
    start, duration = (trim.start, trim.duration) if trim else (None, None)
    if images.is_sequence(source):
        return images.probe_sequence(source, photos.fps, photos.long_side, start, duration)
    return video.probe(source, start, duration)


def network_size(render: RenderOptions, height: int, width: int) -> tuple[int, int]:
    """The (height, width) the workers' network paints this job's frames at (farm/styles/size.py): what
    its compile policy counts, since the network's work follows it, not the output's size."""
    return working_size(height, width, reference_side(render.style.network), render.stroke_scale)


class JobRun:
    """One running job. Opens its pool once, the first time a chunk needs rendering, and renders on it
    until the job ends: the reducer's repairs of a corrupt chunk go to the same workers."""

    def __init__(self, spec: JobSpec, options: ClusterOptions, source: Path, info: video.VideoInfo,
                 progress: ProgressFn | None = None):
        self.spec, self.options, self.source, self.info, self.progress = spec, options, source, info, progress
        self.store, self.layout = open_store(spec.store), Layout(spec.job_id)
        self.manifest: Manifest | None = None
        #: whether the workers are this machine's processes (farm/local.py), else Ray actors
        self.here = local.runs_here(options)
        self._resources: tuple[dict[str, float], list[float] | None] | None = None
        self._scheduler: Scheduler | None = None
        self._warm: cluster.WarmPool | None = None
        self._sharders: Sharders | None = None
        self._seek_table: list[SeekPoint] | None = None
        #: the cuts settled so far (None with coherence off: nothing resets)
        self.book: ShotBook | None = None
        self.receipts: dict[int, Receipt] = {}
        self.rendered = 0
        #: what the reducer said about the source's tracks (set by finish)
        self.notes: list[str] = []

    # -- the job, start to end

    def run(self) -> JobResult:
        t0, spec = time.perf_counter(), self.spec
        output, gif = Path(spec.output), Path(spec.gif_output) if spec.gif_output else None
        if (delivered := self.delivered_before()) is not None:
            return delivered.model_copy(update={"chunks_rendered": 0, "seconds": round(time.perf_counter() - t0, 3)})
        # an automatic chunk length is planned for the pool this cluster holds (a resume keeps its plan)
        fresh = not self.store.exists(self.layout.manifest)
        planning = spec.render.chunk_frames is None and fresh
        self.manifest = open_manifest(self.store, self.layout,
                                      build_manifest(spec, self.info, self.shape().workers if planning else 1))
        write_state(self.store, self.layout, state="running")
        finished = False
        try:
            self.render_missing()
            stages = _sum_stages(self.receipts.values())
            with _workdir(output) as tmp:
                stages.update(self.finish(Path(tmp)))
            finished = True
        except BaseException as exc:
            write_state(self.store, self.layout, state="failed", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            self.close(finished)
        info = self.info
        width, height = output_size(info.out_width, info.out_height, spec.render)
        result = JobResult(job_id=spec.job_id, output=str(output), gif=str(gif) if gif else None, frames=info.frames,
                           fps=info.fps, width=width, height=height, style=spec.render.style.name,
                           seconds=round(time.perf_counter() - t0, 3), chunks=len(self.manifest.chunks),
                           chunks_rendered=self.rendered, store=self.store.uri, stages=stages,
                           notes=_notes(info) + self.notes)
        stored = self.drop_chunks()
        write_state(self.store, self.layout, state="done", dropped=not spec.keep, result=result.model_dump(mode="json"),
                    output=stored.get(output.name), gif=stored.get(gif.name) if gif else None)
        return result

    def drop_chunks(self) -> dict[str, str]:
        """Once delivered, the output chunks and the settled cuts go (the chunks' receipts, a few hundred
        bytes each, stay as the job's record), and so does a local store's copy of the final files, which
        sit at the user's paths too; an S3 store's final files are the delivery and stay. Returns where the finals are stored."""
        finals = {Path(self.spec.output).name, *([Path(self.spec.gif_output).name] if self.spec.gif_output else [])}
        if self.spec.keep:
            return {name: self.store.describe(self.layout.final(name)) for name in finals}
        # the settled cuts were the workers' (the manifest keeps them)
        self.store.delete_keys([*(r.key for r in self.receipts.values()), self.layout.cuts])
        if isinstance(self.store, LocalStore):
            self.store.delete_keys([self.layout.final(name) for name in finals])
            return {}
        return {name: self.store.describe(self.layout.final(name)) for name in finals}

    def delivered_before(self) -> JobResult | None:
        """The earlier result of this job if it finished, dropped its chunks, and its files are still
        at the user's paths (or in the store, copied there now): nothing to render again. A job whose
        files are gone is rendered again from the start."""
        state = read_state(self.store, self.layout)
        if state["state"] != "done" or not state.get("dropped") or "result" not in state:
            return None
        check_same_job(load_manifest(self.store, self.layout), build_manifest(self.spec, self.info))
        wanted = [Path(p) for p in (self.spec.output, self.spec.gif_output) if p]
        for path in wanted:
            if not path.exists() and self.store.exists(self.layout.final(path.name)):
                with atomic_path(path) as part:
                    self.store.get_file(self.layout.final(path.name), part)
        if not all(path.exists() for path in wanted):
            return None
        return JobResult.model_validate(state["result"]).model_copy(
            update={"output": self.spec.output, "gif": self.spec.gif_output})

    def close(self, finished: bool = False) -> None:
        """Stop the pool (idle warm workers stay for the next job after a job that finished)."""
        if self._sharders is not None:
            self._sharders.close()
            self._sharders = None
        if self._scheduler is not None:
            self._scheduler.close(keep_idle=finished and self._warm is not None)
            self._scheduler = None
        cluster.disconnect()

    # -- the pool

    def shape(self, chunks: int | None = None) -> PoolShape:
        """How wide the pool is (joining or starting Ray, the first time, where the job uses Ray)."""
        if self._resources is None:
            if self.here:
                self._resources = (local.resources(), None)
            else:
                cluster.connect(self.options.address)
                self._resources = (cluster.cluster_resources(), cluster.node_cpus())
        resources, node_cpus = self._resources
        return pool_shape(self.options, resources, node_cpus, chunks=chunks)

    def compile_mode(self, shape: PoolShape, todo: list[Chunk]) -> CompileMode:
        """The compile policy's answer for this job, counting it in the machine's ledger when it runs eagerly."""
        frames, size = sum(c.frames + c.warmup for c in todo), network_size(self.spec.render, self.info.out_height,
                                                                            self.info.out_width)
        key = ledger.network_key(self.spec.render.style, self.spec.render.precision)
        auto = self.options.compile == "auto"
        mode = compile_mode(self.options, shape, frames, size, ledger.eager_pixels(key) if auto else 0)
        if auto and mode == "cached":
            ledger.add_eager_pixels(key, network_pixels(shape, frames, size))
        return mode

    def scheduler(self, todo: list[Chunk]) -> Scheduler:
        """The job's one scheduler over its one pool, sized for the chunks the first render pass has."""
        if self._scheduler is not None:
            return self._scheduler
        shape, info = self.shape(chunks=len(todo)), self.info
        job = JobContext(job_id=self.spec.job_id, store_uri=self.store.uri, render=self.spec.render,
                         width=info.out_width, height=info.out_height, time_base=info.time_base,
                         colour=info.colour.output, source=info, compile=self.compile_mode(shape, todo))
        if self.here:
            pool = local.LocalWorkers(shape)
        else:
            self._warm = cluster.warm_pool(self.options, shape)
            pool = cluster.RayWorkers(lambda: cluster.make_actor(shape, self._warm))
        self._scheduler = Scheduler(
            pool, job,
            workers=min(shape.workers, len(todo)),
            restarts=shape.workers if self._warm else 0,  # a warm worker may retire just as this job reaches it
            max_attempts=self.options.max_attempts,
            ask=shape.ask(),
        )
        return self._scheduler

    # -- sharding

    def feeder(self, todo: list[Chunk]) -> ShardFeeder:
        """The chunks to render, cut by the job's shard tasks (started on first use, kept for repairs)."""
        whole = seekable(self.info)
        if self._seek_table is None:
            self._seek_table = seek_table(self.source) if whole else [START]
        tasks = self.options.shard_tasks or (1 if self.here else 2)
        if self._sharders is None:
            self.shape()  # connected to the cluster, where the job uses one
            self._sharders = LocalSharders(tasks) if self.here else cluster.RaySharders()
        # a task on another node reads the source from the store when it has been staged there
        spec = self.spec
        staged = spec.source_copy or (spec.source if spec.source.startswith("s3://") else None)
        source = staged if staged and not self.here else str(self.source)
        spans = plan_spans(todo, self._seek_table, min_frames=SPAN_FRAMES if whole else self.info.frames)
        return ShardFeeder(self._sharders, spans,
                           (source, self.info, self.store.uri, spec.job_id),
                           depth=self.options.max_in_flight or 2, tasks=tasks, book=self.book,
                           copy=self.options.stream_copy and whole and self._seek_table[0].pts is not None,
                           publish=self.publish_cuts)

    # -- cuts

    def shot_book(self) -> ShotBook | None:
        """Where the shard tasks' cut candidates are settled (coherence on only: it resets at each cut),
        starting from the cuts the finished chunks recorded."""
        if not self.spec.render.temporal.enabled:
            return None
        assert self.manifest is not None
        done = [(c.start, c.end) for c in self.manifest.chunks if c.index in self.receipts]
        return ShotBook([*self.manifest.cuts, *(cut for r in self.receipts.values() for cut in r.cuts)], done)

    def publish_cuts(self, book: ShotBook) -> None:
        """The cuts settled so far, for the workers of chunks handed out before theirs were (farm/worker.py)."""
        settled = SettledCuts(frontier=book.frontier, cuts=book.cuts)
        self.store.put_bytes(self.layout.cuts, settled.model_dump_json().encode())

    def record_cuts(self) -> None:
        """Write the cuts settled so far into the manifest (once per render pass: `farm status` counts them).
        Not part of the job's identity, so a resume still matches."""
        if self.book is None or self.manifest is None or self.book.cuts == self.manifest.cuts:
            return
        chunks = [c.model_copy(update={"cuts": self.book.within(c.first, c.end)}) for c in self.manifest.chunks]
        self.manifest = self.manifest.model_copy(update={"cuts": list(self.book.cuts), "chunks": chunks})
        self.store.put_bytes(self.layout.manifest, self.manifest.model_dump_json(indent=2).encode())

    # -- render, reduce

    def render_missing(self) -> None:
        """Render every chunk without a valid receipt, on the job's pool."""
        assert self.manifest is not None
        self.receipts = finished_receipts(self.store, self.layout, self.manifest.chunks)
        todo = [c for c in self.manifest.chunks if c.index not in self.receipts]
        frames_done = sum(r.frames for r in self.receipts.values())
        self._report(frames_done)
        if not todo:
            return
        self.book = self.shot_book()
        # the shard tasks start before the workers do: the first chunks are being cut while they load
        feeder = self.feeder(todo)
        try:
            scheduler = self.scheduler(todo)
            feeder.resize(self.options.max_in_flight or len(scheduler.slots) + 1)
            for receipt in scheduler.run(feeder):
                # the input object is no longer needed: a re-render re-shards it from the source
                self.store.delete_keys([self.layout.input(receipt.chunk, video.SEGMENT_EXT)])
                self.receipts[receipt.chunk] = receipt
                frames_done += receipt.frames
                self._report(frames_done)
        finally:
            feeder.close()
            self.record_cuts()
        self.rendered += len(todo)

    def finish(self, tmp: Path) -> dict[str, float]:
        """Reduce to the final video, make the GIF and the frames folder, and move them to the user's paths;
        the reducer's notes go to :attr:`notes`."""
        spec, stages = self.spec, {}
        output, gif = Path(spec.output), Path(spec.gif_output) if spec.gif_output else None
        t = time.perf_counter()
        final = tmp / output.name
        self.notes = self.reduce(final)
        stages["reduce"] = round(time.perf_counter() - t, 3)
        if gif is not None:
            t = time.perf_counter()
            write_gif(self.store, self.layout, final, spec.gif, tmp / gif.name)
            stages["gif"] = round(time.perf_counter() - t, 3)
            deliver(tmp / gif.name, gif)
        if spec.frames_dir:
            t = time.perf_counter()
            images.write_frames(final, Path(spec.frames_dir))
            stages["frames"] = round(time.perf_counter() - t, 3)
        if spec.video:
            deliver(final, output)
        return stages

    def reduce(self, final: Path) -> list[str]:
        """Reduce; a chunk whose bytes fail their checksum is rendered again on the job's pool, never muxed in.
        Returns the reducer's notes (tracks left out or converted)."""
        for repair in range(REPAIRS + 1):
            try:
                return write_video(self.store, self.layout, list(self.receipts.values()), self.source, self.info,
                                   final)
            except ChunkCorruptError as exc:
                if repair == REPAIRS:
                    raise
                self.store.delete_prefix(self.layout.receipt(exc.chunk))
                self.render_missing()

    def _report(self, frames_done: int) -> None:
        if self.progress:
            self.progress(frames_done, self.info.frames)


def _sum_stages(receipts) -> dict[str, float]:
    total: dict[str, float] = {}
    for receipt in receipts:
        for stage, seconds in receipt.seconds.items():
            total[stage] = round(total.get(stage, 0.0) + seconds, 3)
    return total


def _workdir(near: Path):
    """A scratch folder beside the output, so delivering is a rename, not a copy."""
    near.parent.mkdir(parents=True, exist_ok=True)
    return tempfile.TemporaryDirectory(prefix=".farm-", dir=near.parent)


def _notes(info: video.VideoInfo) -> list[str]:
    hdr = video.hdr_note(info.colour)
    return list(info.notes) + ([hdr] if hdr else []) + _size_notes(info)


def _size_notes(info: video.VideoInfo) -> list[str]:
    if (info.out_width, info.out_height) != info.display_size:
        return [f"source is {'x'.join(map(str, info.display_size))}; yuv420p needs even sizes, so the output is "
                f"{info.out_width}x{info.out_height} (last row/column repeated)"]
    return []
