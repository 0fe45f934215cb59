"""Pydantic models for every spec farm passes around.

All models forbid unknown keys, so a typo in a YAML file or a manifest is an
error that names the key rather than a silently ignored setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from farm.errors import ConfigError


class Model(BaseModel):
    """Base for farm's specs: strict about unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TemporalOptions(Model):
    """Flow-guided coherence (Ruder et al. 2016); see farm/temporal/."""

    enabled: bool = True
    #: how much of the warped previous output survives where the flow is reliable (0 = per-frame), in the
    #: strokes; the base layer keeps at most farm.temporal.BASE_STRENGTH. 0.9 (with base 0.4) since issue 15's
    #: suite: lower E_warp and low-frequency deviation than 0.8/0.5 on all nine clips (bench/README)
    strength: float = Field(0.9, ge=0.0, le=1.0)
    #: optical flow runs on frames scaled by this factor, then the flow is scaled back up
    flow_scale: float = Field(0.5, gt=0.0, le=1.0)
    #: frames from the end of the previous chunk that each chunk processes but does not emit
    warmup: int = Field(12, ge=0, le=240)
    #: which optical flow: OpenCV DIS on the CPU, farm's torch flow on the worker's device, or ``auto``
    #: (torch on a CUDA GPU, DIS on a CPU; farm.temporal.resolve_flow). ``auto`` stays ``auto`` in a
    #: job's identity, like ``precision``: a resume on another kind of node recognises its chunks
    flow: Literal["auto", "dis", "torch"] = "auto"


class EncodeOptions(Model):
    """How the final video is encoded (and so how output chunks are encoded)."""

    #: an FFmpeg encoder name, or ``auto``: h264_nvenc on a GPU worker with NVENC, else libx264
    #: (farm/codecs.py); resolved by each worker
    codec: str = "auto"
    crf: int = Field(18, ge=0, le=51)
    preset: str = "veryfast"
    pix_fmt: str = "yuv420p"


class GifOptions(Model):
    """How the preview GIF looks: ffmpeg's palettegen → paletteuse recipe.

    Whether there is a GIF at all is said in one place: a job makes one when it
    names a path for it (``JobSpec.gif_output``).
    """

    width: int = Field(480, ge=16, le=4096)
    fps: float = Field(12.0, gt=0.0, le=50.0)
    max_seconds: float = Field(10.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy_switch(cls, data: object) -> object:
        """Manifests written before the switch moved to ``gif_output`` carry an unread ``enabled``."""
        if isinstance(data, dict) and "enabled" in data:
            data = {k: v for k, v in data.items() if k != "enabled"}
        return data


#: how long each network's style vector is: 26 style weights, Ghiasi et al.'s 100-d embedding, or none
#: (a fast-neural-style checkpoint is one style; the checkpoint itself is the "vector")
STYLE_VECTOR_LENGTH = {"multistyle26": 26, "arbitrary": 100, "fast-neural-style": 0}


class StyleChoice(Model):
    """A resolved style: a name for humans, the network, and the style vector it takes.

    ``multistyle26``: weights over the 26 built-in styles. ``arbitrary``: the
    100-number embedding of a style image (it travels in the spec, not as a file).
    ``fast-neural-style``: a user's TransformerNet checkpoint, named by ``model``
    (a path, or ``s3://`` where a cluster can read it) and pinned by its SHA-256,
    so a changed file is noticed instead of silently painting differently.
    """

    name: str
    network: Literal["multistyle26", "arbitrary", "fast-neural-style"] = "multistyle26"
    weights: tuple[float, ...] = ()
    strength: float = Field(1.0, ge=0.0, le=1.0)
    model: str | None = None
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @model_validator(mode="after")
    def _fits_network(self) -> StyleChoice:
        if len(self.weights) != STYLE_VECTOR_LENGTH[self.network]:
            raise ValueError(f"a {self.network} style takes {STYLE_VECTOR_LENGTH[self.network]} numbers, "
                             f"got {len(self.weights)}")
        checkpoint = self.network == "fast-neural-style"
        if checkpoint != (self.model is not None and self.model_sha256 is not None):
            raise ValueError("model and model_sha256 go with a fast-neural-style network, and only with it")
        return self


#: the network's arithmetic: ``auto`` = the half precision the hardware runs natively (bf16 on AMX
#: CPUs, fp16 on CUDA GPUs), else float32; ``float32`` everywhere on request (farm/styles/model.py)
Precision = Literal["auto", "float32"]


class RenderOptions(Model):
    """Everything that decides the pixels of the result (part of a job's identity)."""

    style: StyleChoice
    precision: Precision = "auto"
    #: strokes this many times as large as the style's own, at any output size (farm/styles/scale.py)
    stroke_scale: float = Field(1.0, ge=0.25, le=4.0)
    temporal: TemporalOptions = TemporalOptions()
    encode: EncodeOptions = EncodeOptions()
    #: the short side the frames are delivered at, brought down by area averaging after the temporal pass
    #: (never enlarged); None: the source's size. ``--preview`` sets it (farm/preview.py)
    output_side: int | None = Field(None, ge=2)
    #: frames per chunk; None: up to plan.MAX_CHUNK_FRAMES, the length that finishes soonest on the pool
    #: the job first runs on (a resume keeps the stored plan)
    chunk_frames: int | None = Field(None, ge=1, le=100_000)


#: how long warm workers wait for the next job unless told: long enough to line up a few clips
KEEP_WARM_SECONDS = 300.0


def default_keep_warm() -> float:
    """``$FARM_KEEP_WARM`` seconds, else :data:`KEEP_WARM_SECONDS`."""
    raw = os.environ.get("FARM_KEEP_WARM")
    if raw is None:
        return KEEP_WARM_SECONDS
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise ConfigError(f"FARM_KEEP_WARM must be a number of seconds, got {raw!r}") from None


class ClusterOptions(Model):
    """Where and how wide to run; not part of a job's identity."""

    address: str | None = None
    workers: int | None = Field(None, ge=1)
    gpus_per_worker: float = Field(1.0, gt=0.0, le=8.0)
    #: torch threads per CPU actor; None = the actor's CPU share
    threads: int | None = Field(None, ge=1)
    max_in_flight: int | None = Field(None, ge=1)
    #: shard tasks cutting the source at once (processes here, Ray tasks on a cluster); None: 1 here, 2 on Ray
    shard_tasks: int | None = Field(None, ge=1)
    #: input chunks as the source's own packets where the source allows it (farm/shard.py), else lossless x264
    stream_copy: bool = True
    max_attempts: int = Field(3, ge=1, le=20)
    #: torch.compile the network: "auto" where it pays (CPU actors, once the machine's eager jobs amortise
    #: a build: farm/styles/ledger.py)
    compile: Literal["auto", "on", "off"] = "auto"
    #: seconds a job's style workers stay loaded, idle, for the next job, on a cluster that outlives the
    #: job (``ray start``, a cloud cluster); 0 stops them with the job. Default: $FARM_KEEP_WARM, else 300
    keep_warm: float = Field(default_factory=default_keep_warm, ge=0.0)


class Trim(Model):
    """Render only part of the source: ``start`` seconds from its first frame, for ``duration`` seconds
    (None: to the end). farm.video.probe checks it against the source (a bad trim is the user's error)."""

    start: float = 0.0
    duration: float | None = None


class PhotoOptions(Model):
    """How a folder (or glob) of photos becomes frames: the frame rate, and the long side photos are
    limited to (None: full size). See farm/video/images.py."""

    fps: float = Field(24.0, gt=0.0, le=1000.0)
    long_side: int | None = Field(1920, ge=16)


class JobSpec(Model):
    """What the user asked for: a source, a look, and where the results go."""

    job_id: str
    #: the source as the user gave it (a path on the submitting machine, or s3://…)
    source: str
    #: the content-addressed copy in a remote store, for drivers and resumes elsewhere
    source_copy: str | None = None
    render: RenderOptions
    trim: Trim | None = None
    #: used when the source is a photo sequence
    photos: PhotoOptions = PhotoOptions()
    gif: GifOptions = GifOptions()
    store: str
    #: where the user wants the results (a resume delivers there again); not part of the job's identity
    output: str
    #: where the GIF goes; None: no GIF
    gif_output: str | None = None
    #: keep the output chunks (and a local store's copy of the final video) once the job has delivered;
    #: by default they go, so the store does not hold a film twice. Not part of the job's identity
    keep: bool = False
    #: whether the video is delivered to ``output`` (False: only the frames and/or the GIF)
    video: bool = True
    #: a folder for every output frame as a numbered PNG; None: no frames
    frames_dir: str | None = None


def load_yaml_model(path: Path, model: type[Model]) -> Model:
    """Parse a YAML file into ``model``; errors name the file and the offending key."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None


