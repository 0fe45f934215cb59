"""Stylizer: one loaded style network on one device, frames in, painted frames out.

A worker builds one Stylizer in its constructor and calls it per batch, so
everything expensive (reading the ONNX weights, moving them to the GPU,
choosing threads) happens once. Pixel maths stays in small pure functions.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from farm.config import Precision, StyleChoice
from farm.errors import ConfigError
from farm.styles.aot import AotNetwork, NotBuilt
from farm.styles.grid import NO_SHIFT, Shift, shifted_each
from farm.styles.identity import model_identity, onnx_path, weights_hash
from farm.styles.light import relit
from farm.styles.multistyle import load_multistyle, pad_to_multiple
from farm.styles.scale import Steep, resize, steepening, to_output, upsampled, working_size

log = logging.getLogger(__name__)

#: the smallest side the network accepts: its 9×9 reflect padding needs at least 5 rows and columns
MIN_SIDE = 5


def pick_device(device: str) -> torch.device:
    """``auto`` → the GPU when there is one; an explicit CUDA request without CUDA is a user error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, ValueError):
        raise ConfigError(f"unknown device {device!r}; use auto, cpu or cuda[:N]") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return chosen


def load_network(style: StyleChoice) -> torch.nn.Module:
    """The network a style runs on; all take (frames in [0,1], style vector)."""
    if style.network == "arbitrary":
        from farm.styles.arbitrary import load_transformer

        return load_transformer()
    if style.network == "fast-neural-style":
        from farm.styles.fns import CheckpointNetwork, fetch_checkpoint, load_fns

        assert style.model is not None and style.model_sha256 is not None
        return CheckpointNetwork(load_fns(fetch_checkpoint(style.model, style.model_sha256)))
    return load_multistyle(onnx_path())


def batches(n: int, size: int) -> Iterator[slice]:
    """Slices covering range(n) in runs of ``size``."""
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N,H,W,3) → a torch view; copies only when numpy hands us a read-only buffer."""
    array = frames if frames.flags.writeable else frames.copy()
    return torch.from_numpy(np.ascontiguousarray(array))


def planar(frames: torch.Tensor) -> torch.Tensor:
    """uint8 (N,H,W,3) → float32 (N,3,H,W) in [0,1]: what the network and the upsampling read, made once per batch."""
    return frames.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)


def paint_working(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype,
                  memory_format: torch.memory_format = torch.contiguous_format,
                  work: tuple[int, int] | None = None,
                  shifts: Sequence[Shift] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`planar` frames ``x`` on the device → ``(painting, guide)``, float32 (N,3,h,w): the network's
    painting (not yet clamped) and the frames at its size, the guide :func:`finish` upsamples it with.

    The network paints the frames resized to ``work`` (height, width; None: as they are), each first moved by
    ``shifts[i]`` pixels (farm/styles/grid.py). A painting to be brought up to the frames stays at the working
    size, and moved (:func:`finish` moves it back); one made at the frames' size or larger comes back at their
    size, moved back. The network contracts by 4, so frames are reflect-padded to a multiple of 4 and cropped
    back (reflection, not zeros, keeps the borders painted like the rest).
    """
    small = resize(shifted_each(x, shifts), work or tuple(x.shape[-2:]))
    padded, h, w = pad_to_multiple(small.to(dtype))
    styled = net(padded.contiguous(memory_format=memory_format), weights)[..., :h, :w].to(torch.float32)
    if upsampled(styled, x):
        return styled, small
    return to_output(styled, small, x, shifts=shifts), x


def finish(painting: torch.Tensor, guide: torch.Tensor, x: torch.Tensor, strength: float,
           steep: Steep | None = None, shifts: Sequence[Shift] | None = None,
           light: torch.Tensor | None = None) -> torch.Tensor:
    """A painting and its guide from :func:`paint_working` and the :func:`planar` frames ``x`` → float32
    (N,H,W,3) in [0,1]: brought to the frames' size guided by them (:mod:`farm.styles.scale`; ``steep``: the
    strokes' stretch, a scalar or a (N,1,H,W) map, None: the upsampling's own; ``shifts``: those the frames
    were painted with, moved back here unless the painting is at the frames' size already, and so moved back),
    mixed with them by ``strength`` (in float32, so strength 0 returns the input exactly). ``light``: where the
    frames ``x`` had their light's change taken out before they were painted (farm/styles/light.py ``flat``), the
    change, put back into the result."""
    styled = to_output(painting, guide, x, steep, shifts if upsampled(painting, x) else None)
    if strength < 1.0:
        styled = torch.lerp(x, styled, strength)
    return relit(styled, light).clamp_(0.0, 1.0).permute(0, 2, 3, 1)


class Stylizer:
    """The network for one style, loaded once; call it with batches of frames."""

    def __init__(self, style: StyleChoice, *, device: str = "auto", threads: int | None = None,
                 precision: Precision = "auto", batch: int | None = None, compile: bool = False,
                 build: bool = True, reference_side: int | None = None):
        if batch is not None and batch < 1:
            raise ConfigError(f"batch must be at least 1, got {batch}")
        if threads is not None:
            if threads < 1:
                raise ConfigError(f"threads must be at least 1, got {threads}")
            # per process, on purpose here and not at import: each actor decides its own share of the CPU
            torch.set_num_threads(threads)
        self.device = pick_device(device)
        self.dtype = network_dtype(self.device, precision)
        self.batch = batch or default_batch(self.device)
        #: the short side the network paints at, for stroke scale 1 (styles.yaml ``networks``)
        self.reference_side = reference_side or catalog_reference_side(style.network)
        self.stroke_scale = 1.0
        self._weights_hash = weights_hash(style)
        net = load_network(style).to(device=self.device, dtype=self.dtype)
        # the 26-style network's input stays NCHW on CPU: its AOT packages were measured with it, and its eager
        # path goes channels-last inside (multistyle.cpu_eager); channels_last is faster for the arbitrary one and on GPU
        self.memory_format = (torch.channels_last if self.device.type == "cuda" or style.network == "arbitrary"
                              else torch.contiguous_format)
        self.net = net.to(memory_format=self.memory_format)
        #: the network compiled by inductor (see compiled_network), or None for eager; every call gets a full batch
        #: with ``build`` off, only packages this machine already built are used (farm/styles/aot.py)
        self.compiled = compiled_network(self.net, self.device, self._weights_hash, build) if compile else None
        self._set_style(style)

    def _set_style(self, style: StyleChoice) -> None:
        self.style = style
        self.weights = torch.tensor(style.weights, dtype=self.dtype, device=self.device)

    def with_style(self, style: StyleChoice, stroke_scale: float = 1.0) -> Stylizer:
        """Another style (and stroke scale) on the same loaded network (no reload): contact sheets,
        multi-job workers."""
        if style.network != self.style.network:
            raise ConfigError(f"a {self.style.network} stylizer cannot run a {style.network} style")
        if style.model_sha256 != self.style.model_sha256:
            raise ConfigError("a checkpoint's stylizer cannot run another checkpoint: load it with its own Stylizer")
        other = copy.copy(self)
        other._set_style(style)
        other.stroke_scale = stroke_scale
        return other

    def working_size(self, height: int, width: int) -> tuple[int, int]:
        """The size the network paints a ``height``×``width`` frame at (the compiled packages see this)."""
        return working_size(height, width, self.reference_side, self.stroke_scale, MIN_SIDE)

    def steepening(self, height: int, width: int) -> float:
        """The stretch k :meth:`finish` gives the strokes' edges of ``height``×``width`` frames where nothing
        moves (1: painted at their size or larger, so nothing to steepen)."""
        return steepening(min(height, width) / min(self.working_size(height, width)))

    @property
    def model_id(self) -> str:
        """Network, weights-file hash, style mix, strength and reference side: what decides the pixels, for
        manifests (the stroke scale is in the job's RenderOptions).

        Device and precision are left out on purpose: a job resumed on another
        kind of node must still recognise its finished chunks.
        """
        return model_identity(self.style, self._weights_hash, self.reference_side)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N,H,W,3) → float32 (N,H,W,3) in [0,1], ``batch`` frames at a time (no temporal pass)."""
        check_frames(frames)
        out = np.empty(frames.shape, dtype=np.float32)
        with torch.inference_mode():
            for part in batches(len(frames), self.batch):
                x = planar(to_tensor(frames[part]).to(self.device, non_blocking=True))
                out[part] = self.finish(*self._run(x), x).cpu().numpy()
        return out

    def paint(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 (N,H,W,3) already on the device → float32 (N,H,W,3) in [0,1], left on the device
        (the worker's torch temporal pass takes it from there)."""
        with torch.inference_mode():
            x = planar(frames)
            return self.finish(*self.paint_working(x), x)

    def paint_working(self, x: torch.Tensor, shifts: Sequence[Shift] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`planar` frames on the device → ``(painting, guide)`` (N,3,h,w) on the device
        (:func:`paint_working`): what :meth:`finish` brings to the frames' size. ``shifts``: how far to move
        each frame before painting it (farm/styles/grid.py), None: none."""
        with torch.inference_mode():
            parts = [self._run(x[part], None if shifts is None else shifts[part])
                     for part in batches(len(x), self.batch)]
            return torch.cat([p for p, _ in parts]), torch.cat([g for _, g in parts])

    def finish(self, painting: torch.Tensor, guide: torch.Tensor, x: torch.Tensor,
               steep: Steep | None = None, shifts: Sequence[Shift] | None = None,
               light: torch.Tensor | None = None) -> torch.Tensor:
        """:func:`finish` with this style's strength, ``batch`` frames at a time (at 4K the guided
        upsampling holds 12 full-size channels per frame). ``steep``: a (N,1,H,W) map of the strokes'
        stretch where the frames move (:func:`farm.styles.scale.motion_steepening`), or a scalar; ``shifts``:
        those :meth:`paint_working` had; ``light``: the change of the light taken out of ``x``, put back."""
        with torch.inference_mode():
            return torch.cat([finish(painting[part], guide[part], x[part], self.style.strength,
                                     steep[part] if isinstance(steep, torch.Tensor) else steep,
                                     None if shifts is None else shifts[part],
                                     None if light is None else light[part])
                              for part in batches(len(x), self.batch)])

    def _run(self, chunk: torch.Tensor, shifts: Sequence[Shift] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One batch of :func:`planar` frames → ``(painting, guide)``, each frame moved by its shift first."""
        work = self.working_size(*chunk.shape[-2:])
        if self.compiled is None:
            return paint_working(self.net, chunk, self.weights, self.dtype, self.memory_format, work, shifts)
        n = len(chunk)
        full = fill_batch(chunk, self.batch)  # one shape per resolution: a short batch would compile again
        padded = None if shifts is None else [*shifts, *[NO_SHIFT] * (len(full) - n)]
        try:
            painting, guide = paint_working(self.compiled, full, self.weights, self.dtype, self.memory_format, work,
                                            padded)
        except NotBuilt:  # asked to use only what is built, and this frame size is not: eager, no fuss
            self.compiled = None
            return self._run(chunk, shifts)
        except Exception as exc:  # no C++ compiler, an inductor bug: eager paints the same pixels
            log.warning("torch.compile failed (%s: %s); running the network eagerly", type(exc).__name__,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            self.compiled = None
            return self._run(chunk, shifts)
        return painting[:n], guide[:n]


def catalog_reference_side(network: str) -> int:
    """The network's reference short side from styles.yaml."""
    from farm.styles.catalog import reference_side

    return reference_side(network)


def network_dtype(device: torch.device, precision: Precision) -> torch.dtype:
    """What the network computes in. ``auto``: the half precision the device runs natively, fp16 on a
    CUDA GPU, bf16 on a CPU with AMX tiles (Sapphire Rapids and later), else float32.

    On an AMX CPU bf16 runs the compiled 26-style network 2.3x faster than float32 (640x272, one thread:
    40.8 vs 95.0 ms/frame) and paints within 1.5 levels of 255 of it on average (PSNR 39.7 dB on bikes
    frames), far less than the yuv420p output itself discards (23.4 dB; bench/cpu_precision.py).
    Without AMX, bf16 is emulated or unmeasured, so float32 stays.
    """
    if precision == "float32":
        return torch.float32
    if device.type == "cuda":
        return torch.float16
    return torch.bfloat16 if cpu_has_amx() else torch.float32


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles, which oneDNN uses for bf16 convolutions."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def default_batch(device: torch.device) -> int:
    """Frames per network call: 1 on a CPU (140 ms/frame compiled at 640x272 on one thread vs 166-172 ms
    for batches of 2-8: cache locality wins), 4 on a GPU, where batches fill the device."""
    return 4 if device.type == "cuda" else 1


def compiled_network(net: torch.nn.Module, device: torch.device, weights_id: str, build: bool = True) -> Callable | None:
    """The network compiled by inductor for each input shape it meets, or None where that cannot work
    (CPU code needs a C++ compiler). On a CPU, ahead of time: packages built once per machine and
    loaded by each worker in milliseconds (:mod:`farm.styles.aot`; ``build`` off: only those already
    built); on a GPU, ``torch.compile`` (only when ``build``: nothing of it outlives the process)."""
    if device.type != "cpu" and not build:
        return None
    if device.type == "cpu" and not any(shutil.which(cc) for cc in ("c++", "g++", "clang++")):
        log.warning("no C++ compiler found; the network runs eagerly")
        return None
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
    if device.type == "cpu":
        return AotNetwork(net, weights_id, compile_cache_dir() / "aot", build=build)
    return torch.compile(net, dynamic=False)


def compile_cache_dir() -> Path:
    """Where compiled networks are kept between jobs: the user's cache, not torch's default under /tmp.

    A cold compile of the 26-style network costs about 33 s of CPU (its one package for every frame size,
    on an AMD EPYC, bench/aot_dynamic.py); /tmp is emptied at boot, so farm keeps its CPU packages
    (``aot/``) and inductor's caches here (``TORCHINDUCTOR_CACHE_DIR`` moves the latter).
    """
    from platformdirs import user_cache_path

    return user_cache_path("farm") / "torch-compile"


def fill_batch(chunk: torch.Tensor, size: int) -> torch.Tensor:
    """Pad a short batch to ``size`` by repeating its last frame (the extra outputs are dropped)."""
    if len(chunk) >= size:
        return chunk
    return torch.cat([chunk, chunk[-1:].expand(size - len(chunk), *chunk.shape[1:])])


def check_frames(frames: np.ndarray) -> None:
    """Fail early with a readable message rather than deep inside a convolution."""
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"expected uint8 frames of shape (N,H,W,3), got {got}")
    if min(frames.shape[1:3]) < MIN_SIDE:
        raise ValueError(f"frames must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {frames.shape[2]}x{frames.shape[1]}")
