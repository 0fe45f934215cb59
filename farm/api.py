"""Library entry points behind the CLI: turn what the user typed into specs and run them.

Defaults live here, so the CLI, tests and other Python callers get the same
behaviour: outputs named ``<input-stem>_<style>.mp4|.gif`` in the current
directory, the embedded local store, a readable job id.
"""

from __future__ import annotations

import os
import time

import av
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from farm.config import (ClusterOptions, EncodeOptions, GifOptions, JobSpec, Precision, RenderOptions, StyleChoice,
                         TemporalOptions, PhotoOptions, Trim)
from farm.driver import JobResult, ProgressFn, probe_source
from farm.errors import InternalError, UserError
from farm.files import atomic_path
from farm.plan import new_job_id, validate_job_id
from farm.sources import is_remote, localize, source_name, stage, stage_photos
from farm.store import LocalStore, open_store
from farm.video import VideoInfo, images, probe
from farm.video.images import root
from farm.video.mux import check_output


DEFAULT_STYLE = "vangogh"


class SubmitRequest(BaseModel):
    """What `farm submit` was asked, before defaults are filled in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: str
    style: str | None = None
    style_images: tuple[Path, ...] = ()
    model: str | None = None
    strength: float = 1.0
    output: Path | None = None
    #: the GIF preview: None = beside the output (``<output stem>.gif``), a path, or False for none
    gif: Path | Literal[False] | None = None
    #: deliver the video (False: only the frames and/or the GIF)
    video: bool = True
    #: every output frame as a numbered PNG in this folder
    frames_dir: Path | None = None
    temporal: TemporalOptions = TemporalOptions()
    encode: EncodeOptions = EncodeOptions()
    chunk_frames: int | None = None
    trim: Trim | None = None
    photos: PhotoOptions = PhotoOptions()
    precision: Precision = "auto"
    stroke_scale: float = 1.0
    #: render the first seconds, shown at a small size, instead (farm/preview.py)
    preview: bool = False
    #: deliver the frames with this short side (brought down after the temporal pass); set by ``preview``
    output_side: int | None = None
    gif_options: GifOptions = GifOptions()
    store: str | None = None
    job_id: str | None = None
    keep: bool = False
    cluster: ClusterOptions = Field(default_factory=ClusterOptions)


def default_outputs(request: SubmitRequest) -> tuple[Path, Path | None]:
    """``<stem>_<style>.mp4`` and ``.gif`` in the current directory unless given."""
    sequence = images.is_sequence(request.input)
    name = root(request.input).absolute().name if sequence else Path(source_name(request.input)).stem
    base = f"{name}_{style_label(request)}"
    output = request.output or Path.cwd() / f"{base}.mp4"
    check_output(output, request.encode.codec)
    if not request.video and request.frames_dir is None:
        raise UserError("--no-video needs --frames-dir (there would be no video to write the frames of)")
    if request.gif is False:
        return output, None
    gif = request.gif or output.with_suffix(".gif")
    if gif.suffix.lower() != ".gif":
        raise UserError(f"--gif must end in .gif (got {gif.name})")
    return output, gif


def check_frames_dir(request: SubmitRequest) -> None:
    """A frames folder must be new or empty (frames are never mixed with another render's), and local."""
    folder = request.frames_dir
    if folder is None:
        return
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise UserError(f"--frames-dir {folder}: must be a new or empty folder")
    if request.cluster.address and request.cluster.address.startswith("http"):
        raise UserError("--frames-dir is not available with a remote --address yet (the frames are written "
                        "where the driver runs)")


def fitted_encode(encode: EncodeOptions) -> EncodeOptions:
    """The encode options with a pixel format the encoder takes (ProRes has no yuv420p: its first one)."""
    if encode.codec == "auto":
        return encode
    formats = [f.name for f in av.codec.Codec(encode.codec, "w").video_formats or ()]
    if not formats or encode.pix_fmt in formats:
        return encode
    return encode.model_copy(update={"pix_fmt": formats[0]})


def refuse_overwriting_source(source: Path, *outputs: Path | None) -> None:
    """An output that is the source itself would destroy the user's original (ffmpeg: "Output same as Input")."""
    for out in filter(None, outputs):
        same = out.exists() and source.exists() and os.path.samefile(out, source)
        if same or out.resolve() == source.resolve():
            raise UserError(f"{out}: the output would overwrite the source; choose another --output/--gif")


def style_label(request: SubmitRequest) -> str:
    """The style's name in output file names: the catalog name, the painting's or the checkpoint's stem."""
    if sum(map(bool, (request.style, request.style_images, request.model))) > 1:
        raise UserError("--style, --style-image and --model are exclusive: choose one")
    if request.style_images:
        return "+".join(path.stem for path in request.style_images)
    if request.model:
        from farm.styles.resolve import model_label

        return model_label(request.model)
    return request.style or DEFAULT_STYLE


def resolve_style(request: SubmitRequest, local: Path, info: VideoInfo) -> StyleChoice:
    """The request's style as a job carries it; a painting's embedding is computed once, here."""
    from farm.styles import resolve

    first_frame = lambda: video_first_frame(local, info)  # noqa: E731  (read only when strength < 1)
    label = style_label(request)
    if request.model:
        return resolve.checkpoint_style(request.model, request.strength)
    if request.style_images:
        vector = resolve.painting_vector(request.style_images)
        return resolve.painting_style(label, vector, request.strength, first_frame)
    return resolve.named_style(label, request.strength, first_frame)


def video_first_frame(path: Path, info: VideoInfo):
    """The first frame as RGB: a painting's strength mixes toward the clip's own style, read from it."""
    from farm.video import iter_frames

    return next(iter(iter_frames(path, info))).rgb


def stage_model(style: StyleChoice, store) -> StyleChoice:
    """A local checkpoint goes into a remote store once (content-addressed), so cluster workers can read it."""
    if style.model is None or is_remote(style.model):
        return style
    staged = stage(store, Path(style.model))
    return style.model_copy(update={"model": staged}) if staged else style


def build_spec(request: SubmitRequest, local: Path, info: VideoInfo, output: Path, gif: Path | None) -> JobSpec:
    """Resolve the style and the store, stage the source, and fill in the job id."""
    job_id = validate_job_id(request.job_id) if request.job_id else new_job_id(local.stem)
    store = open_store(request.store)
    if isinstance(store, LocalStore):
        store.ensure_root()
    render = RenderOptions(style=stage_model(resolve_style(request, local, info), store), temporal=request.temporal,
                           encode=fitted_encode(request.encode), chunk_frames=request.chunk_frames,
                           precision=request.precision, stroke_scale=request.stroke_scale,
                           output_side=request.output_side)
    source = request.input if is_remote(request.input) else str(local.resolve())
    copy = None if is_remote(source) else (stage_photos(store, Path(info.path), info.photos) if info.photos
                                           else stage(store, local))
    return JobSpec(job_id=job_id, source=source, source_copy=copy, render=render, trim=request.trim,
                   photos=request.photos, gif=request.gif_options, store=store.uri, output=str(output.resolve()),
                   gif_output=str(gif.resolve()) if gif else None, keep=request.keep, video=request.video,
                   frames_dir=str(request.frames_dir.resolve()) if request.frames_dir else None)


class PreparedJob(BaseModel):
    """A request checked against the world: the source probed, the style resolved, the outputs named."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    spec: JobSpec
    local_source: Path
    info: VideoInfo
    cluster: ClusterOptions


def prepare(request: SubmitRequest) -> PreparedJob:
    """Every check that can fail on bad input, before anything is started or written."""
    if request.preview:
        request = preview_request(request)
    output, gif = default_outputs(request)
    check_frames_dir(request)
    local = localize(request.input)
    refuse_overwriting_source(local, output if request.video else None, gif)
    info = probe_source(local, request.trim, request.photos)  # before the style or the store: a bad video is the likeliest mistake
    return PreparedJob(spec=build_spec(request, local, info, output, gif), local_source=local, info=info,
                       cluster=request.cluster)


def preview_request(request: SubmitRequest) -> SubmitRequest:
    """The same request on the clip's preview (its first seconds, ``<stem>_preview.mp4``), painted as the full
    render paints them and delivered small, so the outputs default to ``<stem>_preview_<style>.mp4``."""
    from farm.preview import PREVIEW_SIDE, make_preview

    local = localize(request.input)
    return request.model_copy(update={"input": str(make_preview(local, probe(local))), "preview": False,
                                      "output_side": PREVIEW_SIDE})


class Detached(BaseModel):
    """What `farm submit --detach` prints: enough to follow the job later."""

    job_id: str
    submission_id: str
    address: str
    store: str


def run(job: PreparedJob, progress: ProgressFn | None = None, detach: bool = False) -> JobResult | Detached:
    """Render a prepared job here, or as a Ray Job on the cluster at an http:// address."""
    from farm import driver, remote

    if not remote.is_jobs_address(job.cluster.address):
        return driver.submit(job.spec, job.cluster, source=job.local_source, info=job.info, progress=progress)
    store = open_store(job.spec.store)
    submission = remote.submit_remote(job.spec, store, job.cluster.address, job.cluster)
    if detach:
        return Detached(job_id=job.spec.job_id, submission_id=submission, address=job.cluster.address,
                        store=store.uri)
    t0 = time.perf_counter()
    remote.follow(job.cluster.address, submission, lambda: _report(store, job.spec.job_id, progress))
    return _fetch_results(store, job, time.perf_counter() - t0)


def _report(store, job_id: str, progress: ProgressFn | None) -> None:
    from farm.jobs import job_status

    try:
        state = job_status(store, job_id)
    except UserError:  # the remote driver has not written the manifest yet
        return
    if progress:
        progress(state.frames_done, state.frames)


def _fetch_results(store, job: PreparedJob, seconds: float) -> JobResult:
    """Copy the finished job's MP4 and GIF from the store to the user's paths; the result is the one the
    cluster's driver recorded in the job's state (its chunks, chunks rendered, stages), with this side's
    paths and wall time."""
    from farm.jobs import read_state
    from farm.plan import Layout

    spec, layout = job.spec, Layout(job.spec.job_id)
    for wanted in filter(None, (spec.output if spec.video else None, spec.gif_output)):
        dest = Path(wanted)
        dest.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as part:
            store.get_file(layout.final(dest.name), part)
    state = read_state(store, layout)
    if "result" not in state:
        raise InternalError(f"the remote driver of job {spec.job_id} finished without recording its result "
                            f"in {store.describe(layout.state)}")
    return JobResult.model_validate(state["result"]).model_copy(
        update={"output": spec.output, "gif": spec.gif_output, "seconds": round(seconds, 3)})


def run_job(job_id: str, store_uri: str, cluster: ClusterOptions) -> JobResult:
    """The driver side of a remote job (`farm run-job`, started by the Jobs API on the cluster)."""
    from farm import driver, remote

    store = open_store(store_uri)
    spec = JobSpec.model_validate_json(store.get_bytes(remote.spec_key(validate_job_id(job_id))))
    local = localize(spec.source)
    return driver.submit(spec, cluster, source=local, info=probe_source(local, spec.trim, spec.photos))


def submit(request: SubmitRequest, progress: ProgressFn | None = None) -> JobResult:
    """Render a video: the library call behind `farm submit`."""
    return run(prepare(request), progress)


def prepare_resume(job_id: str, store: str | None, cluster: ClusterOptions) -> PreparedJob:
    """A job as its manifest describes it, checked like a new one (the source must still be there)."""
    from farm.jobs import load_job

    spec = load_job(open_store(store), validate_job_id(job_id)).spec
    try:
        local = localize(spec.source)
    except UserError:
        if spec.source_copy is None:
            raise UserError(f"job {job_id}: its source {spec.source} is no longer there") from None
        local = localize(spec.source_copy)
    return PreparedJob(spec=spec, local_source=local, info=probe_source(local, spec.trim, spec.photos), cluster=cluster)


def status(job_id: str, store: str | None):
    """Where a job stands, read from the store alone."""
    from farm.jobs import job_status

    return job_status(open_store(store), validate_job_id(job_id))


def jobs(store: str | None):
    """The store's jobs with their state, age and bytes."""
    from farm.jobs import list_jobs

    return list_jobs(open_store(store))


def remove(job_ids: list[str], store: str | None, force: bool = False) -> dict[str, int]:
    """Remove jobs' chunks and stored outputs (manifests and states stay); bytes freed per job."""
    from farm.jobs import remove_job

    opened = open_store(store)
    return {job_id: remove_job(opened, validate_job_id(job_id), force) for job_id in job_ids}


def prune(older_than: str, store: str | None) -> dict[str, int]:
    """Remove every job not updated for ``older_than`` (``7d``, ``12h``); bytes freed per job."""
    from farm.jobs import parse_age, prune as prune_jobs

    return dict(prune_jobs(open_store(store), parse_age(older_than)))


def flicker(input: Path, stylized: Path, style: str | None = None, flow: str = "auto", *, plot: Path | None = None,
            side_by_side: Path | None = None, seams: list[int] | None = None, job_id: str | None = None,
            store: str | None = None):
    """E_warp of a stylized video against its source (and a per-frame stylization, given a style), the pairs
    scored through ``flow`` (``auto``: DIS, the measure's reference since farm began).

    ``plot`` draws it frame by frame, ``side_by_side`` writes source | per-frame | farm (farm/flickerview.py).
    The render's seams and cuts come from its job (``job_id``, else the newest job in ``store`` that delivered
    to ``stylized``); without one, ``seams`` are as given and the cuts are found on the input. The views take
    the per-frame stylization in the job's own style unless ``style`` names one."""
    from contextlib import ExitStack

    from farm import flickerview as view, metrics
    from farm.temporal.cuts import adaptive_cuts

    if plot is not None:
        view.check_plot_path(plot)
    if side_by_side is not None:
        view.check_side_by_side_path(side_by_side, input, stylized)
    src_info, out_info = probe(input), probe(stylized)
    src_shape = (src_info.frames, src_info.out_width, src_info.out_height)
    out_shape = (out_info.frames, out_info.out_width, out_info.out_height)
    if src_shape != out_shape:
        raise UserError(f"{stylized} is not a render of {input}: frames, width, height {out_shape} vs {src_shape}")
    manifest = render_job(stylized, out_info.frames, job_id, store)
    views = plot is not None or side_by_side is not None
    stylizer = reference_stylizer(style, manifest if views else None, input, src_info)
    if side_by_side is not None and stylizer is None:
        raise UserError("--side-by-side needs a per-frame stylization: give --style, or --job for a farm render "
                        "whose job is not found by its output path")
    scores: list[float] = []
    with ExitStack() as stack:
        frames = flicker_frames(input, stylized, src_info, out_info, stylizer, None if manifest else scores)
        if side_by_side is not None:
            triples = view.write_side_by_side(frames, side_by_side, src_info, stack)
        else:
            triples = (triple for triple, _ in frames)
        series = metrics.series_of(triples, stylizer is not None, metrics.pair_flow(flow))
    marks = view.marks_of(manifest) if manifest else view.Marks(cuts=adaptive_cuts(scores))
    if seams is not None:
        marks = marks.model_copy(update={"seams": seams})
    data = view.plot_series(series, marks)
    if plot is not None:
        view.draw_plot(data, plot, f"{Path(stylized).name}: E_warp frame by frame"
                       + (f" (job {marks.job_id})" if marks.job_id else ""))
    return view.FlickerEvaluation(**metrics.report_of(series).model_dump(), job_id=marks.job_id, seams=data.seams,
                                  cuts=data.cuts, seam_over_interior=data.seam_over_interior,
                                  plot=str(plot) if plot else None,
                                  side_by_side=str(side_by_side) if side_by_side else None)


def render_job(stylized: Path, frames: int, job_id: str | None, store: str | None):
    """The job that rendered ``stylized``: ``job_id``'s, else the newest one in the store that delivered to
    that path, else None. The search is a convenience: a store it cannot read (an S3 ``$FARM_STORE`` with no
    credentials here) means no job, not a failed measurement. A job of another frame count is refused (the
    seams would be wrong)."""
    from farm.errors import StoreError
    from farm.jobs import find_render, load_job

    opened = open_store(store)
    if job_id:
        manifest = load_job(opened, validate_job_id(job_id))
    else:
        try:
            manifest = find_render(opened, str(Path(stylized).resolve()))
        except StoreError:
            manifest = None
    if manifest is not None and manifest.source_info["frames"] != frames:
        raise UserError(f"job {manifest.spec.job_id} rendered {manifest.source_info['frames']} frames, "
                        f"{stylized} has {frames}: give the render's own --job, or --seams")
    return manifest


def reference_stylizer(style: str | None, manifest, input: Path, info: VideoInfo):
    """What paints the per-frame reference: ``style`` at full strength, else the job's own style, strength,
    precision and stroke scale; None without either."""
    from farm.styles.model import Stylizer
    from farm.styles.resolve import named_style

    if style is not None:
        return Stylizer(named_style(style, 1.0, lambda: video_first_frame(input, info)))
    if manifest is None:
        return None
    render = manifest.spec.render
    return Stylizer(render.style, precision=render.precision).with_style(render.style, render.stroke_scale)


def flicker_frames(input: Path, stylized: Path, src_info: VideoInfo, out_info: VideoInfo, stylizer,
                   cut_scores: list[float] | None):
    """((input, render, per-frame or None), source pts) frame by frame; each input frame's cut score
    (farm.temporal.cuts) appended to ``cut_scores`` when given."""
    from farm import video
    from farm.temporal import cuts

    prev = None
    outputs = (f.rgb for f in video.iter_frames(stylized, out_info))
    for frame, rendered in zip(video.iter_frames(input, src_info), outputs, strict=True):
        if cut_scores is not None:
            cur = cuts.hsv(frame.rgb)
            cut_scores.append(cuts.content_score(prev, cur) if prev is not None else 0.0)
            prev = cur
        reference = video.to_uint8(stylizer(frame.rgb[None])[0]) if stylizer is not None else None
        yield (frame.rgb, rendered, reference), frame.pts
