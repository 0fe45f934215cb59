"""Chunk planning, the job's object-store layout, and the records kept there.

A job is split into chunks of consecutive frames. Chunk i emits frames
[start, end); its input object also carries the ``warmup`` frames before
``start`` so the temporal pass can rebuild the history it would have had in a
single sequential run (DESIGN.md, "Temporal coherence").
"""

from __future__ import annotations

import heapq
import math
import re
from datetime import datetime, timezone

from pydantic import Field

from farm.config import JobSpec, Model
from farm.errors import JobError

SCHEMA_VERSION = 1
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Chunk(Model):
    """Frames [start, end) are emitted; the input object starts ``warmup`` frames earlier."""

    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(gt=0)
    warmup: int = Field(0, ge=0)
    #: frames in [first, end) that start a new shot: the worker forgets the coherence history there. None: not
    #: settled when the chunk was handed out (a stream-copied chunk leaves before its frames are judged); the
    #: worker reads them from the job's :class:`SettledCuts` as it paints (farm/worker.py)
    cuts: list[int] | None = []
    #: None: the input object is a lossless segment of exactly [first, end). A number: it is the source's own
    #: packets stream-copied from a keyframe (farm/video/remux.py), and the worker decodes and drops this many
    #: frames before ``first``. Set by the shard task that cut it, never planned (old manifests: None).
    lead: int | None = Field(None, ge=0)
    #: frames in (first, end) where the worker starts the painting grid over (farm/styles/grid.py): the
    #: first warm-up frames of the chunks after, where their workers start theirs, so that every worker
    #: paints the frames it shares with another on the same grid. Planned (old manifests: none)
    regrid: list[int] = []

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def first(self) -> int:
        """First frame stored in the input object (the first warm-up frame)."""
        return self.start - self.warmup


#: the longest chunk an automatic plan makes: 12 warm-up frames cost 8% of it, and a chunk lost with its
#: worker is at most this much work again
MAX_CHUNK_FRAMES = 150
#: what starting a chunk costs beside its frames (fetch, open the encoder, store the output), in frames
CHUNK_OVERHEAD_FRAMES = 2


def plan_chunks(frames: int, chunk_frames: int | None, warmup: int, workers: int = 1) -> list[Chunk]:
    """Split ``frames`` into chunks, each with up to ``warmup`` lead-in frames.

    ``chunk_frames`` fixes the length; None picks it with :func:`balanced_length` for ``workers``, and makes
    the first chunk, which needs no warm-up, longer by the warm-up (:func:`chunk_starts`).
    """
    if chunk_frames:
        starts = list(range(0, frames, chunk_frames))
    else:
        starts = chunk_starts(frames, balanced_length(frames, warmup, workers), warmup) if frames > 0 else []
    chunks = [Chunk(index=i, start=start, end=end, warmup=min(warmup, start))
              for i, (start, end) in enumerate(zip(starts, [*starts[1:], frames]))]
    origins = sorted({c.first for c in chunks})
    return [c.model_copy(update={"regrid": [o for o in origins if c.first < o < c.end]}) for c in chunks]


def chunk_starts(frames: int, length: int, warmup: int) -> list[int]:
    """Where an automatic plan's chunks of ``length`` start. The first chunk paints no warm-up, so it gets
    ``warmup`` more frames than the rest: every chunk then costs the same work, and two workers sharing
    300 frames with a 26-frame warm-up finish together (163 and 137 + 26 frames) instead of one idling
    26 frames at the end (150, and 150 + 26)."""
    return [0, *range(min(length + warmup, frames), frames, length)]


#: how much of a fresh history a warm-up may leave at the first emitted frame: 0.8**12, the old default
#: strength's 12-frame warm-up, under which chunking adds nothing measurable at the seams (bench/README.md)
SEAM_RESIDUE = 0.8**12


def warmup_for(strength: float, warmup: int, longest: int = 240) -> int:
    """At least ``warmup``, and enough frames for the history to converge at this ``strength``.

    A chunk's history differs from the sequential run's by about strength**k after k warm-up frames,
    whatever the motion (measured on the suite's pan, zoom, deformation, crossing and cut clips): at
    strength 0.9 the default 12 frames leave seams 1.11x the sequential render's E_warp, 26 frames 1.00x.
    """
    if strength <= 0.0:
        return warmup
    if strength >= 1.0:
        return max(warmup, longest)
    return max(warmup, min(longest, math.ceil(math.log(SEAM_RESIDUE) / math.log(strength) - 1e-9)))


def balanced_length(frames: int, warmup: int, workers: int, longest: int = MAX_CHUNK_FRAMES) -> int:
    """The chunk length, at most ``longest`` (the first chunk's frames beyond it are its missing warm-up),
    whose plan (:func:`chunk_starts`) finishes soonest on ``workers`` actors.

    Chunks go to whichever actor is free first, in plan order (as the Scheduler hands them out), and
    cost their frames plus their warm-up; ties go to the longer length (fewer frames rendered twice).
    A short clip on two actors is cut in two near-halves rather than into 120 frames and a remnant.
    """
    shortest = min(longest, max(warmup, 1))  # below its warm-up a chunk renders more frames twice than once
    return min(range(longest, shortest - 1, -1), key=lambda n: makespan(frames, n, warmup, workers))


def makespan(frames: int, length: int, warmup: int, workers: int) -> int:
    """The busiest of ``workers`` actors' work, in frames (warm-up and per-chunk overhead included),
    for chunks of ``length`` handed out in order to whichever actor is free first."""
    loads = [0] * max(workers, 1)
    starts = chunk_starts(frames, length, warmup)
    for start, end in zip(starts, [*starts[1:], frames]):
        heapq.heapreplace(loads, loads[0] + end - start + min(warmup, start) + CHUNK_OVERHEAD_FRAMES)
    return max(loads)


def validate_job_id(job_id: str) -> str:
    """Job ids become object keys: refuse anything that could escape the job's prefix."""
    if not _JOB_ID.match(job_id) or ".." in job_id:
        raise JobError(
            f"invalid job id {job_id!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return job_id


def new_job_id(stem: str) -> str:
    """A readable, unique id: the clip's name and the time."""
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", stem).strip("-")[:40] or "job"
    return f"{safe}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}"


class Layout:
    """Object keys of one job (DESIGN.md, "Object store layout")."""

    def __init__(self, job_id: str):
        self.prefix = f"jobs/{validate_job_id(job_id)}/"

    @property
    def manifest(self) -> str:
        return self.prefix + "manifest.json"

    @property
    def state(self) -> str:
        return self.prefix + "state.json"

    def input(self, chunk: int, ext: str) -> str:
        return f"{self.prefix}input/{chunk:06d}{ext}"

    def output(self, chunk: int, ext: str) -> str:
        return f"{self.prefix}output/{chunk:06d}{ext}"

    @property
    def outputs(self) -> str:
        """The prefix of every output chunk and receipt."""
        return f"{self.prefix}output/"

    def receipt(self, chunk: int) -> str:
        return f"{self.prefix}output/{chunk:06d}.json"

    @property
    def cuts(self) -> str:
        """The cuts settled so far (:class:`SettledCuts`), for chunks handed out before theirs were."""
        return self.prefix + "cuts.json"

    def final(self, name: str) -> str:
        return f"{self.prefix}final/{name}"


class Manifest(Model):
    """Everything that decides a job's result; a changed manifest under the same id is refused."""

    schema_version: int = SCHEMA_VERSION
    spec: JobSpec
    source_info: dict
    chunks: list[Chunk]
    #: frames that start a new shot (farm.temporal.cuts), found by the shard tasks and written here after
    #: each render pass (jobs planned before then found them before planning)
    cuts: list[int] = []
    model_id: str
    #: farm's painter revision that painted the chunks (farm/styles/identity.py PAINTER_REVISION); 0: a manifest
    #: written before farm recorded it
    painter: int = 0
    created: str

    def identity(self) -> dict:
        """The parts that must match for a resume to reuse finished chunks.

        The chunk plan is not among them: it follows from these (and, for an automatic length, from
        the pool the job first ran on), and a resume keeps the stored plan whatever pool it finds.
        """
        return {
            "schema_version": self.schema_version,
            "render": self.spec.render.model_dump(),
            # where the file sits may change (a fetched copy, another machine); what it holds may not
            "source_info": {k: v for k, v in self.source_info.items() if k != "path"},
            "model_id": self.model_id,
            "painter": self.painter,
        }


class SettledCuts(Model):
    """The film's cuts as far as they are settled: every frame below ``frontier`` is judged (farm/shots.py)."""

    frontier: int = 0
    cuts: list[int] = []

    def within(self, first: int, end: int) -> list[int]:
        return [c for c in self.cuts if first <= c < end]


class Receipt(Model):
    """What a worker returns for a finished chunk (small: this is what travels through Ray)."""

    chunk: int
    key: str
    frames: int
    size: int
    sha256: str
    node: str
    pid: int
    seconds: dict[str, float]
    #: the cuts the chunk was rendered with (a resume settles later cuts from them)
    cuts: list[int] = []
    #: how its input object was cut: Chunk.lead (None: lossless segment, else stream-copied)
    lead: int | None = None
