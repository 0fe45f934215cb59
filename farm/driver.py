"""The job: probe, plan, shard onto the store, render on Ray, reduce, deliver.

``submit`` is the one library entry point the CLI calls. Job state lives in
the object store (manifest, chunk receipts, state), so an interrupted job is
finished by running it again with the same id: chunks with a valid receipt
are not rendered twice.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ValidationError

from farm import cluster, local, video
from farm.config import ClusterOptions, JobSpec
from farm.errors import ChunkCorruptError, JobError, MissingObjectError
from farm.plan import Chunk, Layout, Manifest, Receipt, plan_chunks, snap_to_cuts, warmup_for
from farm.reduce import deliver, write_gif, write_video
from farm.schedule import Feeder, PoolShape, Scheduler, compile_mode, pool_shape
from farm.shard import shard
from farm.store import ObjectStore, open_store
from farm.worker import JobContext
from farm.styles.identity import model_identity

#: called with (frames done, frames total) as chunks finish
ProgressFn = Callable[[int, int], None]


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


def build_manifest(spec: JobSpec, info: video.VideoInfo, workers: int = 1, cuts: Sequence[int] = ()) -> Manifest:
    """The job's manifest; chunk boundaries snap to ``cuts`` (frames starting a shot) within a quarter chunk."""
    render = spec.render
    temporal = render.temporal
    warmup = warmup_for(temporal.strength, temporal.warmup) if temporal.enabled else 0
    chunks = plan_chunks(info.frames, render.chunk_frames, warmup, workers)
    chunks = snap_to_cuts(chunks, cuts, reach=chunks[0].frames // 4) if cuts and chunks else chunks
    return Manifest(spec=spec, source_info=info.model_dump(mode="json"), chunks=chunks, cuts=list(cuts),
                    model_id=model_identity(render.style), created=datetime.now(timezone.utc).isoformat())


def find_cuts(spec: JobSpec, source: Path, info: video.VideoInfo) -> list[int]:
    """Hard cuts of the source (one decoding pass), when coherence is on: it resets there."""
    if not spec.render.temporal.enabled:
        return []
    from farm.temporal.cuts import detect_cuts

    return detect_cuts(frame.rgb for frame in video.iter_frames(source, info))


def open_manifest(store: ObjectStore, layout: Layout, fresh: Manifest) -> Manifest:
    """Write the manifest of a new job, or check that an existing one asks for the same result."""
    if not store.exists(layout.manifest):
        store.put_bytes(layout.manifest, fresh.model_dump_json(indent=2).encode())
        return fresh
    old = load_manifest(store, layout)
    if old.identity() != fresh.identity():
        raise JobError(f"job {fresh.spec.job_id!r} already exists with a different spec; "
                       "use another --job-id, or `farm resume` to finish it as it was")
    return old


def load_manifest(store: ObjectStore, layout: Layout) -> Manifest:
    try:
        return Manifest.model_validate_json(store.get_bytes(layout.manifest))
    except MissingObjectError:
        raise JobError(f"no job at {store.describe(layout.manifest)}") from None
    except ValidationError as exc:
        raise JobError(f"{store.describe(layout.manifest)} is not a farm manifest of this version: "
                       f"{exc.errors()[0]['msg']}") from None


def finished_receipts(store: ObjectStore, layout: Layout, chunks: list[Chunk]) -> dict[int, Receipt]:
    """Chunks whose output object exists and matches its receipt's size: done, not rendered again."""
    done: dict[int, Receipt] = {}
    for chunk in chunks:
        key = layout.receipt(chunk.index)
        if not store.exists(key):
            continue
        try:
            receipt = Receipt.model_validate_json(store.get_bytes(key))
        except (ValidationError, MissingObjectError):
            continue
        if store.size(receipt.key) == receipt.size and receipt.frames == chunk.frames:
            done[chunk.index] = receipt
    return done


def write_state(store: ObjectStore, layout: Layout, **state: object) -> None:
    state["updated"] = datetime.now(timezone.utc).isoformat()
    store.put_bytes(layout.state, json.dumps(state, indent=2).encode())


def submit(spec: JobSpec, options: ClusterOptions, *, source: Path, info: video.VideoInfo | None = None,
           progress: ProgressFn | None = None) -> JobResult:
    """Render ``spec`` from the local file ``source`` and deliver the MP4 (and GIF) to the paths it names."""
    t0 = time.perf_counter()
    output = Path(spec.output)
    gif = Path(spec.gif_output) if spec.gif_output else None
    info = info or video.probe(source)
    store, layout = open_store(spec.store), Layout(spec.job_id)
    # an automatic chunk length is planned for the pool this cluster holds (a resume keeps its plan)
    planning = spec.render.chunk_frames is None and not store.exists(layout.manifest)
    cuts = find_cuts(spec, source, info) if not store.exists(layout.manifest) else []
    manifest = open_manifest(store, layout, build_manifest(spec, info, pool_width(options) if planning else 1, cuts))
    write_state(store, layout, state="running")
    try:
        receipts, rendered = _render_all(store, layout, manifest, source, info, options, progress)
        stages = _sum_stages(receipts.values())
        with _workdir(output) as tmp:
            stages.update(_finish(store, layout, manifest, receipts, source, info, options, Path(tmp)))
    except BaseException as exc:
        write_state(store, layout, state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        cluster.disconnect()
    write_state(store, layout, state="done", output=store.describe(layout.final(output.name)),
                gif=store.describe(layout.final(gif.name)) if gif else None)
    return JobResult(job_id=spec.job_id, output=str(output), gif=str(gif) if gif else None, frames=info.frames,
                     fps=info.fps, width=info.out_width, height=info.out_height, style=spec.render.style.name,
                     seconds=round(time.perf_counter() - t0, 3), chunks=len(manifest.chunks),
                     chunks_rendered=rendered, store=store.uri, stages=stages, notes=_notes(info))


def _finish(store: ObjectStore, layout: Layout, manifest: Manifest, receipts: dict[int, Receipt], source: Path,
            info: video.VideoInfo, options: ClusterOptions, tmp: Path) -> dict[str, float]:
    """Reduce to the final MP4, make the GIF, and move both to the user's paths."""
    spec, stages = manifest.spec, {}
    output, gif = Path(spec.output), Path(spec.gif_output) if spec.gif_output else None
    t = time.perf_counter()
    final = tmp / output.name
    _reduce_with_repair(store, layout, manifest, receipts, source, info, options, final)
    stages["reduce"] = round(time.perf_counter() - t, 3)
    if gif is not None:
        t = time.perf_counter()
        write_gif(store, layout, final, spec.gif, tmp / gif.name)
        stages["gif"] = round(time.perf_counter() - t, 3)
        deliver(tmp / gif.name, gif)
    deliver(final, output)
    return stages


class JobStatus(BaseModel):
    """What `farm status` shows."""

    job_id: str
    state: str
    chunks_done: int
    chunks: int
    frames_done: int
    frames: int
    created: str
    updated: str | None
    elapsed_seconds: float | None
    source: str
    style: str
    outputs: dict[str, str | None]
    error: str | None = None
    #: hard cuts found in the source (coherence resets at each)
    cuts: int = 0


def load_job(store: ObjectStore, job_id: str) -> Manifest:
    return load_manifest(store, Layout(job_id))


def job_status(store: ObjectStore, job_id: str) -> JobStatus:
    """Read a job's state from the store alone (works while it runs, after a crash, or when done)."""
    layout = Layout(job_id)
    manifest = load_manifest(store, layout)
    state = json.loads(store.get_bytes(layout.state)) if store.exists(layout.state) else {"state": "created"}
    done = finished_receipts(store, layout, manifest.chunks)
    if state["state"] == "running" and len(done) < len(manifest.chunks):
        state["state"] = "running or interrupted"
    created, updated = manifest.created, state.get("updated")
    elapsed = (datetime.fromisoformat(updated) - datetime.fromisoformat(created)).total_seconds() if updated else None
    return JobStatus(job_id=job_id, state=state["state"], chunks_done=len(done), chunks=len(manifest.chunks),
                     frames_done=sum(r.frames for r in done.values()), frames=manifest.source_info["frames"],
                     created=created, updated=updated, elapsed_seconds=elapsed, source=manifest.spec.source,
                     style=manifest.spec.render.style.name, error=state.get("error"),
                     outputs={"video": manifest.spec.output, "gif": manifest.spec.gif_output,
                              "stored_video": state.get("output"), "stored_gif": state.get("gif")},
                     cuts=len(manifest.cuts))


def pool_width(options: ClusterOptions) -> int:
    """How many workers this job gets (connecting to its cluster, or starting the local Ray, if it has one)."""
    return open_pool(options)[0].workers


def open_pool(options: ClusterOptions, chunks: int | None = None) -> tuple[PoolShape, bool]:
    """The pool's shape, and whether its workers are this machine's processes (farm/local.py); otherwise
    the driver is now connected to the Ray cluster that holds them."""
    if local.runs_here(options):
        return pool_shape(options, local.resources(), chunks=chunks), True
    cluster.connect(options.address)
    return pool_shape(options, cluster.cluster_resources(), cluster.node_cpus(), chunks=chunks), False


def _render_all(store: ObjectStore, layout: Layout, manifest: Manifest, source: Path, info: video.VideoInfo,
                options: ClusterOptions, progress: ProgressFn | None) -> tuple[dict[int, Receipt], int]:
    """Render every chunk without a valid receipt; returns all receipts and how many were rendered now."""
    done = finished_receipts(store, layout, manifest.chunks)
    todo = [c for c in manifest.chunks if c.index not in done]
    frames_done = sum(r.frames for r in done.values())
    if progress:
        progress(frames_done, info.frames)
    if not todo:
        return done, 0
    # the sharder starts before the workers do: the first chunks are being cut while they load
    feeder = Feeder(shard(source, info, todo, store, layout), depth=options.max_in_flight or 2)
    scheduler, warm, finished = None, None, False
    try:
        shape, here = open_pool(options, chunks=len(todo))
        feeder.resize(options.max_in_flight or shape.workers + 1)
        job = JobContext(job_id=manifest.spec.job_id, store_uri=store.uri, render=manifest.spec.render,
                         width=info.out_width, height=info.out_height, time_base=info.time_base,
                         compile=compile_mode(options, shape, sum(c.frames + c.warmup for c in todo),
                                              (info.out_height, info.out_width)))
        if here:
            pool = local.LocalWorkers(shape)
        else:
            warm = cluster.warm_pool(options, shape)
            pool = cluster.RayWorkers(lambda: cluster.make_actor(shape, warm))
        scheduler = Scheduler(
            pool,
            workers=min(shape.workers, len(todo)),
            call=pool.render_call(job),
            prepare=pool.prepare_call(job),
            restarts=shape.workers if warm else 0,  # a warm worker may retire just as this job reaches it
            max_attempts=options.max_attempts,
            ask=shape.ask(),
        )
        for receipt in scheduler.run(feeder):
            # the input object is no longer needed: a re-render re-shards it from the source
            store.delete_prefix(layout.input(receipt.chunk, video.SEGMENT_EXT))
            done[receipt.chunk] = receipt
            frames_done += receipt.frames
            if progress:
                progress(frames_done, info.frames)
        finished = True
    finally:
        feeder.close()
        if scheduler is not None:
            scheduler.close(keep_idle=finished and warm is not None)
    return done, len(todo)


def _reduce_with_repair(store: ObjectStore, layout: Layout, manifest: Manifest, receipts: dict[int, Receipt],
                        source: Path, info: video.VideoInfo, options: ClusterOptions, final: Path) -> None:
    """Reduce; a chunk whose bytes fail their checksum is re-rendered once, never muxed in."""
    for attempt in range(3):
        try:
            write_video(store, layout, list(receipts.values()), source, info, final)
            return
        except ChunkCorruptError as exc:
            if attempt == 2:
                raise
            store.delete_prefix(layout.receipt(exc.chunk))
            receipts, _ = _render_all(store, layout, manifest, source, info, options, None)


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
    if (info.out_width, info.out_height) != (info.width, info.height):
        return [f"source is {info.width}x{info.height}; yuv420p needs even sizes, so the output is "
                f"{info.out_width}x{info.out_height} (last row/column repeated)"]
    return []
