"""A batch of decoded frames in, painted uint8 frames out: the network, then the temporal pass.

Two painters, one contract (``painter(rgb uint8 (N,H,W,3)) → uint8 (N,H,W,3)``,
history kept across calls, in frame order; ``reset()`` forgets it at a cut):

- :class:`DevicePainter`: the network, the torch optical flow, the masks, the
  warp and the blend all run on the worker's device; the frames go up once
  and only the uint8 result comes back. On a GPU nothing per-pixel waits on
  the CPU. Flows for the whole batch are computed at once; only the blend
  recursion is sequential (farm.temporal.device).
- :class:`HostPainter`: the network on its device, then OpenCV DIS flow and
  the numpy blend on the CPU, frame by frame (farm.temporal.dis).

Both paint in two steps (:meth:`~farm.styles.model.Stylizer.paint_working`, then
:meth:`~farm.styles.model.Stylizer.finish`), so that a painting brought up from a
working size gets its strokes' edges steepened less where the frame moves
(:func:`farm.styles.scale.motion_steepening`), along the backward flow the
temporal pass computes for its blend anyway: one flow per frame, used twice.
Painted at the frames' own size (k = 1) there is nothing to stretch, and the grid stays put.

With the temporal pass on, the same flow also moves the painting grid with the
picture (:mod:`farm.styles.grid`): each frame is painted shifted by the drift
accumulated so far, so that a pan's strokes stay on what they paint; and it
carries the light's change since the shot began (:mod:`farm.styles.light`),
which each frame is painted without and gets back afterwards.

:func:`painter_for` picks one from the job's ``flow`` and the device.
"""

from __future__ import annotations

import numpy as np
import torch

from farm.config import TemporalOptions
from farm.pipeline import Timer
from farm.styles.grid import GridPhase, Shift, drifts, period, steps, unfollowed
from farm.styles.light import LightTrack, flat
from farm.styles.model import check_frames, planar, to_tensor
from farm.styles.scale import Steep, motion_steepening
from farm.temporal import BASE_SIGMA, resolve_flow
from farm.video import to_uint8


def uint8_tensor(images: torch.Tensor) -> torch.Tensor:
    """Float in [0,1] → uint8, rounded, clipped: :func:`farm.video.to_uint8` on any device."""
    return (images.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8)


def upsampling(stylizer, height: int, width: int) -> float:
    """How many pixels of a ``height``×``width`` frame one pixel of its painting spans (1: painted at its size or
    larger)."""
    return max(1.0, min(height, width) / min(stylizer.working_size(height, width)))


def band_sigma(stylizer, height: int, width: int) -> float:
    """σ (px of the frame) of the temporal pass's band split for ``height``×``width`` frames: :data:`BASE_SIGMA`
    pixels of the painting. A painting made at a 360 side and shown at 1080p has strokes 3x as wide in the
    frame's pixels; split at 3 px, most of them would fall in the base band, which keeps half the history
    (bench/flicker_size.py). Frames painted at their own size or larger keep 3 px."""
    return BASE_SIGMA * upsampling(stylizer, height, width)


def steepening_map(motion: torch.Tensor, frames: int, k: float, pixel: float) -> torch.Tensor:
    """The strokes' stretch (``frames``,1,H,W) for a batch whose last frames moved on the network's grid by
    ``motion`` (M,2,H,W; :func:`~farm.styles.grid.unfollowed`): :func:`~farm.styles.scale.motion_steepening` of
    each; a frame without a flow (the first of a shot: nothing to move from) keeps ``k``."""
    ks = motion_steepening(motion, k, pixel)
    if len(ks) == frames:
        return ks
    return torch.cat((ks.new_full((frames - len(ks), 1, *ks.shape[-2:]), k), ks))


def grid_shifts(grid: GridPhase, stylizer, size: tuple[int, int], moved: list[tuple[float, float] | None]
                ) -> tuple[list[Shift], list[tuple[float, float]]]:
    """Each frame's shift on the painting grid (farm/styles/grid.py), from how far it ``moved`` since the frame
    before (:func:`~farm.styles.grid.drifts`; None: the first of a shot, the grid stays where it is), and how
    far the grid moved for it (:func:`~farm.styles.grid.steps`)."""
    periods = period(size, stylizer.working_size(*size))
    before = grid.painted
    shifts = [grid.follow(motion, periods) for motion in moved]
    return shifts, steps(before, shifts, periods)


def by_motion(coherence, k: float) -> bool:
    """Whether the strokes' stretch follows the motion: a painting brought up from a working size (k ≠ 1)
    with the temporal pass on, whose flow it reuses (either painter's ``coherence``)."""
    return coherence is not None and coherence.active and k != 1.0


class HostPainter:
    """Network on its device, then DIS flow and the numpy two-band blend on the host, per frame."""

    def __init__(self, stylizer, temporal: TemporalOptions, timer: Timer):
        from farm.temporal.dis import Coherence

        self.stylizer, self.timer = stylizer, timer
        self.coherence = Coherence(temporal) if temporal.enabled else None
        self.grid, self.light = GridPhase(), LightTrack()

    def reset(self) -> None:
        """A new shot starts with the next frame: no history from the previous one."""
        self.regrid()
        if self.coherence is not None:
            self.coherence.reset()

    def regrid(self) -> None:
        """The next frame is painted where it is and in the light it has: the grid and the light's track start
        over (``Chunk.regrid``), the history stays."""
        self.grid.reset()
        self.light.reset()

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        check_frames(rgb)
        size = rgb.shape[1:3]
        if self.coherence is not None:
            self.coherence.base_sigma = band_sigma(self.stylizer, *size)
        k = self.stylizer.steepening(*size)
        with torch.inference_mode():
            motions, flows, shifts, moved, light = None, None, None, None, None
            if self.coherence is not None and self.coherence.active:  # the flows first: they place the grid
                with self.timer.stage("temporal"):
                    motions = self.coherence.motions(rgb)
                    # each DIS flow (H,W,2) as (1,2,H,W): its drift read on the host, then on the stylizer's device
                    flows = [None if m.backward is None else torch.from_numpy(m.backward).permute(2, 0, 1)[None]
                             for m in motions]
                    shifts, moved = grid_shifts(self.grid, self.stylizer, size,
                                                [None if f is None else drifts(f)[0] for f in flows])
                    flows = [None if f is None else f.to(self.stylizer.device) for f in flows]
            with self.timer.stage("network"):
                x = planar(to_tensor(rgb).to(self.stylizer.device, non_blocking=True))
                if flows is not None:  # painted without the light's change, which finish puts back
                    light = self.light.lights(x, flows, self.stylizer.working_size(*size))
                    x = flat(x, light)
                painting, guide = self.stylizer.paint_working(x, shifts)
                if not by_motion(self.coherence, k):  # the whole batch at once (the GPU's batch, one sync)
                    styled = self.stylizer.finish(painting, guide, x, k, shifts, light).cpu().numpy()
            out = np.empty(rgb.shape, dtype=np.uint8)
            for i, frame in enumerate(rgb):
                motion = None if motions is None else motions[i]
                if by_motion(self.coherence, k):  # each frame's stretch follows its flow
                    assert flows is not None and shifts is not None and moved is not None
                    with self.timer.stage("network"):
                        flow = flows[i]
                        steep: Steep = k if flow is None else motion_steepening(
                            unfollowed(flow, moved[i:i + 1]), k, upsampling(self.stylizer, *size))
                        painted = self.stylizer.finish(painting[i:i + 1], guide[i:i + 1], x[i:i + 1], steep,
                                                       shifts[i:i + 1], None if light is None else light[i:i + 1])
                        painted = painted[0].cpu().numpy()
                else:
                    painted = styled[i]
                if self.coherence is not None:
                    with self.timer.stage("temporal"):
                        painted = self.coherence.step(frame, painted, motion)
                out[i] = to_uint8(painted)
        return out


class DevicePainter:
    """Everything per-pixel on the stylizer's device; one upload and one uint8 download per batch.

    On CUDA the upload goes through a pinned host buffer, reused batch after
    batch (each call ends with the download, which waits for the device, so
    the buffer is free again when the next batch is copied in).
    """

    def __init__(self, stylizer, temporal: TemporalOptions, timer: Timer):
        from farm.temporal.device_coherence import DeviceCoherence

        self.stylizer, self.timer, self.device = stylizer, timer, stylizer.device
        self.coherence = DeviceCoherence(temporal) if temporal.enabled else None
        self.grid, self.light = GridPhase(), LightTrack()
        self._pinned: torch.Tensor | None = None

    def reset(self) -> None:
        """A new shot starts with the next frame: no history from the previous one."""
        self.regrid()
        if self.coherence is not None:
            self.coherence.reset()

    def regrid(self) -> None:
        """The next frame is painted where it is and in the light it has: the grid and the light's track start
        over (``Chunk.regrid``), the history stays."""
        self.grid.reset()
        self.light.reset()

    def upload(self, rgb: np.ndarray) -> torch.Tensor:
        host = torch.from_numpy(np.ascontiguousarray(rgb))
        if self.device.type != "cuda":
            return host.to(self.device)
        if self._pinned is None or self._pinned.shape[1:] != host.shape[1:] or len(self._pinned) < len(host):
            self._pinned = torch.empty(host.shape, dtype=torch.uint8).pin_memory()
        staged = self._pinned[: len(host)]
        staged.copy_(host)
        return staged.to(self.device, non_blocking=True)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        k = self.stylizer.steepening(*rgb.shape[1:3])
        if self.coherence is not None:
            self.coherence.base_sigma = band_sigma(self.stylizer, *rgb.shape[1:3])
        with torch.inference_mode():
            frames = self.upload(rgb)
            motion, flows, steep, shifts, light = None, None, None, None, None
            if self.coherence is not None and self.coherence.active:  # the flows first: they place the grid
                with self.timer.stage("temporal"):
                    motion = self.coherence.motion(frames)
                    unlinked = len(rgb) - len(motion.backward)  # the first frame of a shot has no flow
                    flows = [None] * unlinked + [f[None] for f in motion.backward]
                    moved = drifts(motion.backward) if len(motion.backward) else []
                    shifts, steps_ = grid_shifts(self.grid, self.stylizer, rgb.shape[1:3], [None] * unlinked + moved)
                    if by_motion(self.coherence, k):
                        steep = steepening_map(unfollowed(motion.backward, steps_[unlinked:]), len(rgb), k,
                                               upsampling(self.stylizer, *rgb.shape[1:3]))
            with self.timer.stage("network"):
                x = planar(frames)
                if flows is not None:  # painted without the light's change, which finish puts back
                    light = self.light.lights(x, flows, self.stylizer.working_size(*rgb.shape[1:3]))
                    x = flat(x, light)
                painting, guide = self.stylizer.paint_working(x, shifts)
                styled = self.stylizer.finish(painting, guide, x, steep, shifts, light).permute(0, 3, 1, 2)
            if self.coherence is not None:
                with self.timer.stage("temporal"):
                    styled = self.coherence.step_batch(frames, styled, motion)
            with self.timer.stage("download"):  # on CUDA this also waits for the device's queued work
                return uint8_tensor(styled).permute(0, 2, 3, 1).contiguous().cpu().numpy()


def painter_for(stylizer, temporal: TemporalOptions, timer: Timer) -> HostPainter | DevicePainter:
    """DIS flow runs on the host; the torch flow (and a render without coherence) on the device."""
    if temporal.enabled and resolve_flow(temporal.flow, stylizer.device.type) == "dis":
        return HostPainter(stylizer, temporal, timer)
    return DevicePainter(stylizer, temporal, timer)
