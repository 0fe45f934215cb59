"""Chunk planning, the job's object-store layout, and the records kept there.

A job is split into chunks of consecutive frames. Chunk i emits frames
[start, end); its input object also carries the ``warmup`` frames before
``start`` so the temporal pass can rebuild the history it would have had in a
single sequential run (DESIGN.md, "Temporal coherence").
"""

from __future__ import annotations

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

    @property
    def frames(self) -> int:
        return self.end - self.start

    @property
    def first(self) -> int:
        """First frame stored in the input object (the first warm-up frame)."""
        return self.start - self.warmup


def plan_chunks(frames: int, chunk_frames: int, warmup: int) -> list[Chunk]:
    """Split ``frames`` into chunks of at most ``chunk_frames``, each with up to ``warmup`` lead-in frames."""
    return [
        Chunk(index=i, start=start, end=min(start + chunk_frames, frames), warmup=min(warmup, start))
        for i, start in enumerate(range(0, frames, chunk_frames))
    ]


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

    def receipt(self, chunk: int) -> str:
        return f"{self.prefix}output/{chunk:06d}.json"

    def final(self, name: str) -> str:
        return f"{self.prefix}final/{name}"


class Manifest(Model):
    """Everything that decides a job's result; a changed manifest under the same id is refused."""

    schema_version: int = SCHEMA_VERSION
    spec: JobSpec
    source_info: dict
    chunks: list[Chunk]
    model_id: str
    created: str

    def identity(self) -> dict:
        """The parts that must match for a resume to reuse finished chunks."""
        return {
            "schema_version": self.schema_version,
            "render": self.spec.render.model_dump(),
            # where the file sits may change (a fetched copy, another machine); what it holds may not
            "source_info": {k: v for k, v in self.source_info.items() if k != "path"},
            "chunks": [c.model_dump() for c in self.chunks],
            "model_id": self.model_id,
        }


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
