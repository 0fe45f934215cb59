"""The `farm` command: parse arguments, build specs, call the library, show progress.

No logic lives here (DESIGN.md: the CLI is an adapter). Exit codes: 0 done,
2 bad input or usage (one line on stderr, no traceback), 1 internal failure,
130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from datetime import timedelta
from enum import Enum
from contextlib import redirect_stdout
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from farm.config import ClusterOptions, EncodeOptions, GifOptions, PhotoOptions, TemporalOptions, Trim
from farm.errors import FarmError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  rich_markup_mode=None, help="Repaint videos in the style of a painting, without flicker.")
styles_app = typer.Typer(invoke_without_command=True, help="List the named styles, or render a contact sheet.")
eval_app = typer.Typer(no_args_is_help=True, help="Measure a render.")
app.add_typer(styles_app, name="styles")
app.add_typer(eval_app, name="eval")
err = Console(stderr=True)


def render_rate(task) -> float | None:
    """Frames per second since this run began. Not rich's windowed speed: chunks finish in bursts of
    many frames, which a short window reads as tens of frames per second."""
    done = task.completed - task.fields.get("baseline", 0)
    return done / task.elapsed if task.elapsed and done > 0 else None


class FpsColumn(ProgressColumn):
    """Frames per second of the render so far."""

    def render(self, task) -> Text:
        rate = render_rate(task)
        return Text(f"{rate:5.2f} fps" if rate else "  ... fps", style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """Time left at the rate so far."""

    def render(self, task) -> Text:
        rate = render_rate(task)
        if task.finished or not rate or task.total is None:
            return Text("0:00:00" if task.finished else "-:--:--", style="progress.remaining")
        return Text(str(timedelta(seconds=int((task.total - task.completed) / rate))), style="progress.remaining")


def progress_bar(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                    FpsColumn(), TimeElapsedColumn(), TextColumn("ETA"), EtaColumn(),
                    console=err, disable=not enabled, transient=False)


class PrecisionMode(str, Enum):
    auto = "auto"
    float32 = "float32"


class CompileMode(str, Enum):
    auto = "auto"
    on = "on"
    off = "off"


class FlowMode(str, Enum):
    auto = "auto"
    dis = "dis"
    torch = "torch"


GpusPerWorker = Annotated[float, typer.Option(min=0.01, max=8.0, help="GPUs per worker; below 1 shares a GPU so decode/encode overlap compute.")]
Compile = Annotated[CompileMode, typer.Option(help="Compile the network: one AOT package for every frame size on CPU (built once per machine), torch.compile on GPU [auto: CPU only; a missing package is built once the machine's eager jobs pass the build's break-even].")]
Threads = Annotated[Optional[int], typer.Option(min=1, help="Torch threads per CPU worker [1 on 2-core machines, else 4].")]
PrecisionOption = Annotated[PrecisionMode, typer.Option(help="Network arithmetic: auto = bf16 on CPUs with AMX, fp16 on CUDA GPUs (2.3x faster on AMX, within 1.5 levels of 255 of float32 on average), else float32.")]
FlowOption = Annotated[FlowMode, typer.Option(help="Optical flow: dis = OpenCV DIS on the CPU, torch = farm's flow on the worker's device; auto = torch on a CUDA GPU, dis on a CPU.")]
Address = Annotated[Optional[str], typer.Option(help="Ray cluster address [the Ray `ray start` left running here, else this machine's own worker processes, no Ray; `local`: an embedded Ray].")]
StrokeScale = Annotated[float, typer.Option(min=0.25, max=4.0, help="Strokes this many times as large as the style's own, at any output size.")]
KeepWarm = Annotated[Optional[float], typer.Option(min=0.0, help="Seconds the workers stay loaded for the next job on a cluster that outlives this one (`ray start`, a cloud cluster); 0 stops them with the job [$FARM_KEEP_WARM, else 300].")]


def cluster_options(**given) -> ClusterOptions:
    """ClusterOptions from the flags given; the ones left out keep their defaults (some read the environment)."""
    return ClusterOptions(**{k: v for k, v in given.items() if v is not None})


@app.command()
def submit(
    input: Annotated[str, typer.Argument(help="Source video: a file (any container/codec FFmpeg reads) or s3://bucket/key; or photos: a folder, or a quoted glob such as 'TimeLapse/*.jpg'.")],
    style: Annotated[Optional[str], typer.Option("--style", "-s", help="Named style (see `farm styles`) [vangogh].")] = None,
    style_image: Annotated[Optional[list[Path]], typer.Option(help="Any painting as the style; repeat to blend paintings (exclusive with --style).")] = None,
    model: Annotated[Optional[str], typer.Option(help="A fast-neural-style TransformerNet .pth (path or s3://) as the style.")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Video to write: .mp4, .mov or .mkv, the container by the extension [<stem>_<style>.mp4].")] = None,
    frames_dir: Annotated[Optional[Path], typer.Option(help="Also write every frame as a numbered PNG into this new folder.")] = None,
    no_video: Annotated[bool, typer.Option("--no-video", help="With --frames-dir: write the frames instead of the video.")] = False,
    gif: Annotated[Optional[Path], typer.Option(help="GIF preview path [<stem>_<style>.gif].")] = None,
    no_gif: Annotated[bool, typer.Option("--no-gif", help="Skip the GIF preview.")] = False,
    strength: Annotated[float, typer.Option(min=0.0, max=1.0, help="Mix with the original frame (1 = all paint).")] = 1.0,
    stroke_scale: StrokeScale = 1.0,
    preview: Annotated[bool, typer.Option("--preview", help="Render only the first 5 s, as the full render paints them (up to 1080p), shown at 360p (short side): to choose a style.")] = False,
    temporal: Annotated[bool, typer.Option("--temporal/--no-temporal", help="Flow-guided coherence (anti-flicker).")] = True,
    coherence: Annotated[float, typer.Option(min=0.0, max=1.0, help="How strongly paint follows the motion.")] = TemporalOptions().strength,
    flow: FlowOption = FlowMode.auto,
    chunk_frames: Annotated[Optional[int], typer.Option(min=1, help="Frames per chunk, the unit of parallel work [up to 150, balanced over the workers].")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Style workers [one per GPU, else by CPU count].")] = None,
    gpus_per_worker: GpusPerWorker = ClusterOptions.model_fields["gpus_per_worker"].default,
    threads: Threads = None,
    shard_tasks: Annotated[Optional[int], typer.Option(min=1, help="Tasks cutting the source into chunks at once, each decoding its own range [1 here, 2 on a Ray cluster].")] = None,
    stream_copy: Annotated[bool, typer.Option(help="Input chunks as the source's own packets where it allows (exact, no encode); --no-stream-copy: always lossless x264.")] = True,
    compile: Compile = CompileMode.auto,
    precision: PrecisionOption = PrecisionMode.auto,
    keep_warm: KeepWarm = None,
    store: Annotated[Optional[str], typer.Option(help="Object store: a directory, file://… or s3://bucket/prefix.")] = None,
    address: Address = None,
    job_id: Annotated[Optional[str], typer.Option(help="Job id; the same id again resumes the job.")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep the output chunks in the store after delivery (a local store's copy of the video too).")] = False,
    crf: Annotated[int, typer.Option(min=0, max=51, help="Encoder quality (lower = better).")] = EncodeOptions().crf,
    preset: Annotated[str, typer.Option(help="Encoder preset.")] = EncodeOptions().preset,
    codec: Annotated[str, typer.Option(help="Video encoder (an FFmpeg name); auto = h264_nvenc on GPU workers with NVENC, else libx264.")] = EncodeOptions().codec,
    gif_seconds: Annotated[float, typer.Option(min=0.1, help="Cap on the GIF's length.")] = GifOptions().max_seconds,
    gif_fps: Annotated[float, typer.Option(min=0.1, max=50.0, help="The GIF's frame rate (ffmpeg's fps=).")] = GifOptions().fps,
    gif_width: Annotated[int, typer.Option(min=16, max=4096, help="The GIF's width in pixels, height to scale (ffmpeg's scale=W:-1); never above the video's.")] = GifOptions().width,
    fps: Annotated[float, typer.Option(min=0.01, help="Frame rate of a photo sequence (a folder or a quoted glob as INPUT).")] = PhotoOptions().fps,
    full_size: Annotated[bool, typer.Option("--full-size", help=f"Keep photos at full size [their long side is limited to {PhotoOptions().long_side} pixels].")] = False,
    start: Annotated[Optional[float], typer.Option(help="Render from this many seconds into the source (ffmpeg -ss).")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Render only this many seconds (ffmpeg -t) [to the end].")] = None,
    detach: Annotated[bool, typer.Option(help="With an http:// --address: return once the job is submitted.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object at the end, nothing else on stdout.")] = False,
) -> None:
    """Render INPUT in a painting's style: an MP4 with the source's sound, and a GIF preview."""
    from farm import api

    request = api.SubmitRequest(
        input=input, style=style, style_images=tuple(style_image or ()), model=model, output=output, gif=False if no_gif else gif, video=not no_video, frames_dir=frames_dir,
        strength=strength, stroke_scale=stroke_scale, preview=preview,
        temporal=TemporalOptions(enabled=temporal, strength=coherence, flow=flow.value),
        encode=EncodeOptions(codec=codec, crf=crf, preset=preset), chunk_frames=chunk_frames,
        photos=PhotoOptions(fps=fps, long_side=None if full_size else PhotoOptions().long_side),
        trim=Trim(start=start or 0.0, duration=duration) if start is not None or duration is not None else None, precision=precision.value,
        gif_options=GifOptions(max_seconds=gif_seconds, fps=gif_fps, width=gif_width), store=store, job_id=job_id, keep=keep,
        cluster=cluster_options(address=address, workers=workers, gpus_per_worker=gpus_per_worker, threads=threads,
                                compile=compile.value, keep_warm=keep_warm, shard_tasks=shard_tasks,
                                stream_copy=stream_copy),
    )
    _render(api.prepare(request), as_json, detach)


def _render(job, as_json: bool, detach: bool = False) -> None:
    """Run a prepared job under a progress bar and report the result."""
    from farm import api

    # stdout carries only the result: chatter from libraries (Ray's worker-death notices) goes to stderr
    with progress_bar(enabled=not (as_json or detach)) as bar, redirect_stdout(sys.stderr):
        task = bar.add_task(f"{job.local_source.name} → {job.spec.render.style.name}", total=job.info.frames)

        first: list[int] = []

        def report(done: int, total: int) -> None:
            if not first:  # frames a resumed job had already are not this run's speed
                first.append(done)
                bar.update(task, baseline=done)
            bar.update(task, completed=done, total=total)

        result = api.run(job, progress=report, detach=detach)
    if as_json or isinstance(result, api.Detached):
        print(result.model_dump_json())
        return
    for note in result.notes:
        err.print(f"note: {note}")
    spec = job.spec
    written = [p for p in (result.output if spec.video else None, spec.frames_dir and f"{spec.frames_dir}/",
                           result.gif) if p]
    err.print(f"wrote {' and '.join(written)} ({result.frames} frames in {result.seconds:.1f} s, job {result.job_id})")


@app.command()
def resume(
    job_id: Annotated[str, typer.Argument(help="The job to finish.")],
    store: Annotated[Optional[str], typer.Option(help="The job's object store [the default local store].")] = None,
    address: Address = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Style workers.")] = None,
    gpus_per_worker: GpusPerWorker = ClusterOptions.model_fields["gpus_per_worker"].default,
    threads: Threads = None,
    compile: Compile = CompileMode.auto,
    keep_warm: KeepWarm = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object at the end.")] = False,
) -> None:
    """Finish an interrupted job: finished chunks are kept, the rest are rendered."""
    from farm import api

    options = cluster_options(address=address, workers=workers, gpus_per_worker=gpus_per_worker, threads=threads,
                              compile=compile.value, keep_warm=keep_warm)
    _render(api.prepare_resume(job_id, store, options), as_json)


@app.command(hidden=True)
def run_job(
    job_id: Annotated[str, typer.Argument()],
    store: Annotated[str, typer.Option()],
    cluster: Annotated[str, typer.Option(help="ClusterOptions as JSON.")] = "{}",
) -> None:
    """The driver of a remote job (started on the cluster by `farm submit --address http://…`)."""
    from farm import api

    print(api.run_job(job_id, store, ClusterOptions.model_validate_json(cluster)).model_dump_json())


@app.command()
def logs(
    job_id: Annotated[str, typer.Argument(help="The farm job.")],
    address: Annotated[str, typer.Option(help="The cluster's Jobs API, http://HEAD:8265.")],
) -> None:
    """The driver log of a job that ran on a remote cluster."""
    from farm import remote

    print(remote.logs(address, job_id), end="")


@app.command()
def status(
    job_id: Annotated[str, typer.Argument(help="The job to look at.")],
    store: Annotated[Optional[str], typer.Option(help="The job's object store [the default local store].")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """A job's state, chunks and frames done, elapsed time, and where its outputs are."""
    from farm import api

    report = api.status(job_id, store)
    if as_json:
        print(report.model_dump_json())
        return
    table = Table(box=None, show_header=False)
    for name, value in report.model_dump().items():
        if isinstance(value, dict):
            for sub, item in value.items():
                if item:
                    table.add_row(f"{name}.{sub}", str(item))
        elif value is not None:
            table.add_row(name, f"{value:.1f}" if isinstance(value, float) else str(value))
    Console().print(table)


StoreOption = Annotated[Optional[str], typer.Option(help="The object store [the default local store].")]


@app.command()
def jobs(store: StoreOption = None,
         as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array.")] = False) -> None:
    """The store's jobs: state, age and bytes held."""
    from farm import api

    found = api.jobs(store)
    if as_json:
        print(json.dumps([job.model_dump() for job in found]))
        return
    table = Table("job", "state", "age", "bytes", box=None)
    for job in found:
        age = str(timedelta(seconds=int(job.age_seconds))) if job.age_seconds is not None else "?"
        table.add_row(job.job_id, job.state, age, f"{job.bytes:,}")
    Console().print(table)


@app.command()
def rm(job_ids: Annotated[list[str], typer.Argument(help="The jobs to remove.")], store: StoreOption = None,
       force: Annotated[bool, typer.Option(help="Remove a job whose state says running (its driver is gone).")] = False) -> None:
    """Remove jobs' chunks and stored videos; their manifests stay, so `farm status` still answers."""
    from farm import api

    for job_id, freed in api.remove(job_ids, store, force).items():
        err.print(f"removed {job_id} ({freed:,} bytes)")


@app.command()
def prune(older_than: Annotated[str, typer.Option(help="Remove jobs not updated for this long: 90s, 30m, 12h, 7d, 2w.")],
          store: StoreOption = None) -> None:
    """Remove every job older than --older-than (its manifest stays)."""
    from farm import api

    removed = api.prune(older_than, store)
    for job_id, freed in removed.items():
        err.print(f"removed {job_id} ({freed:,} bytes)")
    err.print(f"{len(removed)} job{'' if len(removed) == 1 else 's'} removed, "
              f"{sum(removed.values()):,} bytes freed")


@styles_app.callback()
def styles(
    ctx: typer.Context,
    sheet: Annotated[Optional[Path], typer.Option(help="Render a labelled contact sheet PNG of every style.")] = None,
    image: Annotated[Optional[Path], typer.Option(help="Picture for the sheet [a frame of a sample clip].")] = None,
    stroke_scale: StrokeScale = 1.0,
) -> None:
    """List the named styles, built-in and your own (or render them all on one picture with --sheet)."""
    if ctx.invoked_subcommand is not None:
        return
    from farm.styles.catalog import load_catalog
    from farm.styles.resolve import read_image
    from farm.styles.user import user_styles

    catalog, mine = load_catalog(), user_styles()
    if sheet is not None:
        from farm.styles.sheet import render_sheet

        render_sheet(catalog, read_image(image) if image else None, sheet,
                     extra=[style.choice() for style in mine.values()], stroke_scale=stroke_scale)
        err.print(f"wrote {sheet}")
        return
    table = Table("name", "network", "description", box=None)
    for entry in catalog.entries:
        table.add_row(entry.name, entry.kind_label, entry.description)
    for style in mine.values():
        table.add_row(style.name, style.kind_label, style.description or "(yours)")
    Console().print(table)


@styles_app.command("add")
def styles_add(
    name: Annotated[str, typer.Argument(help="The new style's name (lower case, digits, dashes).")],
    image: Annotated[Optional[list[Path]], typer.Option(help="A painting; repeat to blend several.")] = None,
    model: Annotated[Optional[str], typer.Option(help="A fast-neural-style .pth (path or s3://).")] = None,
    description: Annotated[str, typer.Option(help="One line for `farm styles`.")] = "",
    force: Annotated[bool, typer.Option(help="Replace a style of yours with the same name.")] = False,
) -> None:
    """Save a style of your own, so `--style NAME` works in later jobs (and on clusters)."""
    from farm.styles.resolve import add_style
    from farm.styles.user import styles_dir

    style = add_style(name, images=tuple(image or ()), model=model, description=description, replace=force)
    err.print(f"saved style {style.name} ({style.kind_label}) in {styles_dir()}")


@styles_app.command("remove")
def styles_remove(name: Annotated[str, typer.Argument(help="A style of yours.")]) -> None:
    """Forget a style of yours (built-in styles stay)."""
    from farm.styles.user import remove

    remove(name)
    err.print(f"removed style {name}")


@eval_app.command("flicker")
def eval_flicker(
    input: Annotated[Path, typer.Argument(help="The source video.")],
    stylized: Annotated[Path, typer.Argument(help="The stylized video of the same frames.")],
    style: Annotated[Optional[str], typer.Option(help="Also compare with a per-frame stylization in this style.")] = None,
    flow: Annotated[FlowMode, typer.Option(help="The flow that scores the pairs of frames (auto = dis).")] = FlowMode.auto,
    plot: Annotated[Optional[Path], typer.Option(help="Draw E_warp frame by frame (render, per-frame, seams, cuts): "
                                                      ".png, .svg or .pdf; needs farm[plot] (matplotlib).")] = None,
    side_by_side: Annotated[Optional[Path], typer.Option(help="Write source | per-frame | farm as one .mp4.")] = None,
    seams: Annotated[Optional[str], typer.Option(help="Chunk seams to mark, as first frames: 30,60,90 "
                                                      "(default: from the render's job).")] = None,
    job: Annotated[Optional[str], typer.Option(help="The job that rendered STYLIZED (default: the newest job "
                                                    "in the store that delivered to that path).")] = None,
    store: Annotated[Optional[str], typer.Option(help="Where that job is (default: $FARM_STORE or the cache).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Warping error E_warp (Lai et al. 2018) of STYLIZED, next to INPUT's own; --plot and --side-by-side to see it."""
    from farm import api

    report = api.flicker(input, stylized, style=style, flow=flow.value, plot=plot, side_by_side=side_by_side,
                         seams=frame_list(seams, "--seams"), job_id=job, store=store)
    if as_json:
        print(report.model_dump_json())
        return
    table = Table("measure", "value", box=None)
    for name, value in report.model_dump().items():
        if value is not None and value != []:
            shown = ",".join(map(str, value)) if isinstance(value, list) else value
            table.add_row(name, f"{shown:.6g}" if isinstance(shown, float) else str(shown))
    Console().print(table)


def frame_list(text: str | None, option: str) -> list[int] | None:
    """``30,60,90`` → [30, 60, 90]; a bad list is a usage error (exit 2)."""
    if text is None:
        return None
    try:
        frames = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"{text!r}: frame numbers separated by commas", param_hint=option) from None
    if any(f < 0 for f in frames):
        raise typer.BadParameter(f"{text!r}: frame numbers are 0 or more", param_hint=option)
    return frames


#: Typer >= 0.2x vendors its own click; catch its exceptions and plain click's alike
_EXIT = (click.exceptions.Exit, typer.Exit)
_ABORT = (click.exceptions.Abort, typer.Abort, KeyboardInterrupt)
_USAGE = (click.ClickException, getattr(typer.exceptions, "TyperException", click.ClickException))


def main() -> None:
    """Console entry point: map farm's errors to exit codes and one-line messages."""
    try:
        # Typer >= 0.2x turns Ctrl-C into Exit(130), which standalone_mode=False *returns* rather than raises
        code = app(standalone_mode=False)
        if code == 130:
            raise KeyboardInterrupt
        if isinstance(code, int) and code:
            sys.exit(code)
    except _EXIT as exc:
        sys.exit(exc.exit_code)
    except _USAGE as exc:  # bad options or arguments: usage and the problem, exit 2
        exc.show()
        sys.exit(2)
    except _ABORT:
        err.print("farm: interrupted (a job with a --job-id can be finished with `farm resume`)")
        sys.exit(130)
    except FarmError as exc:
        print(f"farm: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except Exception as exc:  # an internal failure: one line, the traceback only on request
        if os.environ.get("FARM_DEBUG"):
            traceback.print_exc()
        print(f"farm: internal error: {type(exc).__name__}: {exc} (FARM_DEBUG=1 shows the traceback)",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
