"""Flicker you can see: `farm eval flicker --plot` and `--side-by-side`.

People would rather look than read a table. The plot draws E_warp (Lai et al.
2018, farm/metrics.py) pair by pair for the render and for the per-frame
stylization, on a log scale (coherence divides flicker by ten or more), with
the chunk seams and the cuts marked: a seam that flickers shows as a spike on a
dashed line. The pair that straddles a cut is left out of the curves: the flow
between two shots means nothing, and its term would flatten every other one.

The side-by-side video puts source | per-frame | farm next to each other, each
labelled, with the source's timestamps and colour description.

matplotlib is an extra (``pip install 'farm[plot]'``): a render farm's workers
never plot, and a missing one is one line and exit 2, before any decoding.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from farm.errors import UserError
from farm.files import atomic_path
from farm.metrics import FlickerReport, FlickerSeries, Triple, mean_of
from farm.plan import Manifest

PLOT_SUFFIXES = (".png", ".svg", ".pdf")
LABELS = ("source", "per-frame", "farm")


class Marks(BaseModel):
    """Where a render's chunks meet and its shots change, in frame indices (the first frame of each)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seams: list[int] = []
    cuts: list[int] = []
    #: where they come from: the job's id, or None (given with --seams, cuts found on the input)
    job_id: str | None = None


def marks_of(manifest: Manifest) -> Marks:
    """The seams (every chunk's first emitted frame but the film's) and cuts a job's manifest recorded."""
    seams = sorted(c.start for c in manifest.chunks if c.start > 0)
    return Marks(seams=seams, cuts=sorted(manifest.cuts), job_id=manifest.spec.job_id)


class PlotSeries(BaseModel):
    """What the plot draws: per frame t ≥ 1 the E_warp of the pair (t−1, t); None across a cut."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: list[int]
    render: list[float | None]
    per_frame: list[float | None] | None = None
    input: list[float | None]
    seams: list[int]
    cuts: list[int]
    #: mean render E_warp of the pairs that end on a seam over that of the pairs inside chunks (no seam, no cut)
    seam_over_interior: float | None = None


def plot_series(series: FlickerSeries, marks: Marks) -> PlotSeries:
    """The plot's data from a :class:`FlickerSeries` and the render's marks (those outside the video dropped)."""
    inside = lambda frame: 0 < frame < series.frames  # noqa: E731
    seams, cuts = sorted(filter(inside, set(marks.seams))), sorted(filter(inside, set(marks.cuts)))
    frames = list(range(1, series.frames))

    def masked(terms: list[float]) -> list[float | None]:
        return [None if t in cuts else term for t, term in zip(frames, terms, strict=True)]

    interior = [series.render[t - 1] for t in frames if t not in seams and t not in cuts]
    at_seams = [series.render[t - 1] for t in seams if t not in cuts]
    ratio = mean_of(at_seams) / mean_of(interior) if at_seams and interior and mean_of(interior) > 0 else None
    return PlotSeries(frames=frames, render=masked(series.render), input=masked(series.input),
                      per_frame=masked(series.per_frame) if series.per_frame is not None else None,
                      seams=seams, cuts=cuts, seam_over_interior=ratio)


def check_plot_path(path: Path) -> None:
    """Before any work: a format matplotlib writes, and matplotlib itself (an extra)."""
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"--plot {path.name}: the file must end in {', '.join(PLOT_SUFFIXES)}")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UserError("--plot needs matplotlib: pip install 'farm[plot]'") from None


def draw_plot(data: PlotSeries, path: Path, title: str) -> Path:
    """The PNG (or SVG/PDF): E_warp per frame, log scale, seams dashed, cuts solid; written atomically."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a render node; set before pyplot is imported
    import matplotlib.pyplot as plt

    def curve(values: list[float | None]) -> np.ndarray:  # None (a cut) and 0 break the line on a log scale
        return np.array([np.nan if v is None or v <= 0 else v for v in values], dtype=np.float64)

    fig, ax = plt.subplots(figsize=(10, 4), dpi=100, layout="constrained")
    try:
        if data.per_frame is not None:
            ax.plot(data.frames, curve(data.per_frame), color="tab:red", lw=1.2, label="per-frame stylization")
        ax.plot(data.frames, curve(data.render), color="tab:blue", lw=1.6, label="farm render")
        ax.plot(data.frames, curve(data.input), color="0.6", lw=1.0, ls=":", label="input (floor)")
        for i, seam in enumerate(data.seams):
            ax.axvline(seam, color="tab:green", ls="--", lw=0.9, label="chunk seam" if i == 0 else None)
        for i, cut in enumerate(data.cuts):
            ax.axvline(cut, color="black", lw=1.4, label="cut" if i == 0 else None)
        ax.set_yscale("log")
        ax.set_xlim(0, max(data.frames, default=1))
        ax.set_xlabel("frame t (pair t−1 → t)")
        ax.set_ylabel("E_warp (Lai et al. 2018)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
        fig.legend(loc="outside lower center", fontsize=8, ncols=5, frameon=False)  # never over a curve
        with atomic_path(path) as part:
            fig.savefig(part, format=path.suffix.lower().lstrip("."))
    finally:
        plt.close(fig)
    return path


def check_side_by_side_path(path: Path, *inputs: Path) -> None:
    """The comparison video is an MP4 that overwrites neither video it compares."""
    if path.suffix.lower() != ".mp4":
        raise UserError(f"--side-by-side {path.name}: the file must end in .mp4")
    if any(path.resolve() == Path(p).resolve() for p in inputs):
        raise UserError(f"--side-by-side {path}: would overwrite a video it compares")


def label(image: np.ndarray, text: str) -> np.ndarray:
    """``text`` in the top-left corner, white on a dark outline (readable on any painting)."""
    import cv2

    out = np.ascontiguousarray(image)
    scale = max(1.0, image.shape[0] / 360)  # readable on a 360p panel, growing with larger ones
    origin = (int(8 * scale), int(24 * scale))
    for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(out, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6 * scale, colour,
                    max(1, round(width * scale)), cv2.LINE_AA)
    return out


def side_by_side_frame(source: np.ndarray, per_frame: np.ndarray, render: np.ndarray) -> np.ndarray:
    """source | per-frame | farm, labelled, as one uint8 frame three times as wide."""
    return np.concatenate([label(f.copy(), name) for f, name in zip((source, per_frame, render), LABELS)], axis=1)


def write_side_by_side(frames: Iterable[tuple[Triple, int]], path: Path, info, stack: ExitStack) -> Iterator[Triple]:
    """Pass the (input, render, per-frame) triples through, writing each, at its source pts, as a side-by-side
    frame of an H.264 MP4 (x264 crf 18, the source's colour description) that appears at ``path`` once
    ``stack`` closes without an error (atomically: never half a file)."""
    from farm.video import SegmentWriter

    part = stack.enter_context(atomic_path(path))
    writer = stack.enter_context(SegmentWriter(part, 3 * info.out_width, info.out_height, info.time_base,
                                               lossless=False, colour=info.colour))
    for triple, pts in frames:
        source, render, per_frame = triple
        writer.write(side_by_side_frame(source, per_frame, render), pts)
        yield triple


class FlickerEvaluation(FlickerReport):
    """`farm eval flicker`'s answer: the report, and what it marked and wrote."""

    #: the job whose seams and cuts were read (None: --seams given, cuts found on the input)
    job_id: str | None = None
    seams: list[int] = []
    cuts: list[int] = []
    #: mean E_warp at seams over inside chunks, when the render has seams
    seam_over_interior: float | None = None
    plot: str | None = None
    side_by_side: str | None = None
