"""The painting grid follows the picture: each frame is painted shifted so that what moved since the last one
lands where it was on the network's grid. Pure torch functions, and :class:`GridPhase`, the one bit of state.

The networks contract by 4 (two stride-2 convolutions, :data:`~farm.styles.multistyle.MULTIPLE`), so their
painting is the same picture moved along only for moves of a multiple of 4 of their pixels; moved by 1 or 2,
the strokes are redrawn: on a textured frame the painting changes by 0.11 of full scale per pixel (mean
absolute), against 0.002 for a move of 4 (bench/README, "The painting grid follows the picture"). A camera pan
therefore repaints every stroke every frame, and the temporal pass, which keeps 0.9 of the history, can only
average the redrawn strokes into a blur. Painted on a grid that moves with the picture, a pan's strokes stay
put on what they paint.

How: the frame's drift since the previous one (:func:`drifts`, the median of the backward flow the temporal pass
computes anyway) is added to an offset, kept modulo the network's period (4 of its pixels, in pixels of the frame;
where the frame's pixels are coarse, only whole pixels of a motion of 1 pixel a frame or more, and painted at more
than half the frame's size, nothing: :meth:`GridPhase.follow`); the frame is painted moved by that offset rounded
to whole pixels of the frame (:func:`shifted`), and the painting is read back moved the other way: in the guided
upsampling by sampling its coefficients there (:func:`farm.styles.scale.resize_shifted`: the same interpolation
positions, so no extra blur), and a painting made at the frame's own size by moving it back whole pixels. Only
global translation is followed: a zoom or a roll moves each part of the frame differently, and is painted as
before.

The offset starts at 0 on the first frame a painter paints and after each :meth:`GridPhase.reset`. A chunk's
worker starts its painter at the chunk's first warm-up frame, and the worker of the chunk before resets the
offset at that same frame (``Chunk.regrid``, farm/plan.py), so both paint the frames they share on the same
grid. The restart changes the earlier chunk's grid: its history fades from the old strokes to the new ones
over the warm-up, and a seam stands out a little more against the calmer frames around it (bench/README).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from farm.styles.multistyle import MULTIPLE

#: how far the frame is moved before painting (x, y), in whole pixels of the frame: the content at (X, Y)
#: is painted at (X + x, Y + y)
Shift = tuple[int, int]
NO_SHIFT: Shift = (0, 0)
#: the network's period in pixels of the frame from which the grid follows the whole drift (a frame pixel at
#: most a third of the network's: painted at a third of the output's size or less), see :meth:`GridPhase.follow`
FINE_PERIOD = 3 * MULTIPLE
#: the period below which the grid stays put (painted at more than half the frame's size)
COARSE_PERIOD = 2 * MULTIPLE
#: every how many flow vectors (each way) the drift's median is taken: 1/64 of a frame is plenty for a median
DRIFT_STRIDE = 8


def period(frame: tuple[int, int], work: tuple[int, int]) -> tuple[float, float]:
    """The network's period in pixels of a ``frame`` (height, width) painted at ``work`` (height, width):
    (x, y), :data:`MULTIPLE` working pixels each."""
    return MULTIPLE * frame[1] / work[1], MULTIPLE * frame[0] / work[0]


def drifts(backward: torch.Tensor) -> list[tuple[float, float]]:
    """Each frame's global motion since the one before, (x, y) in pixels: the median of its backward flow
    (B,2,H,W) (``frame_t[y,x] ≈ frame_{t−1}[y+fy, x+fx]``), sampled every :data:`DRIFT_STRIDE` pixels; one
    transfer from the device for the whole batch."""
    sample = backward[:, :, ::DRIFT_STRIDE, ::DRIFT_STRIDE].reshape(len(backward), 2, -1).float()
    return [(float(x), float(y)) for x, y in sample.median(dim=2).values.cpu().tolist()]


class GridPhase:
    """Where the painting grid sits relative to the picture, frame after frame (module docstring)."""

    def __init__(self) -> None:
        #: the shift the last frame was painted at (kept through :meth:`reset`: the next frame's step starts there)
        self.painted: Shift = NO_SHIFT
        self.reset()

    def reset(self) -> None:
        """Start over: the next frame is painted where it is, whatever its motion (as the first frame a
        painter paints, which has none)."""
        self.offset = (0.0, 0.0)
        self.fresh = True

    def follow(self, motion: tuple[float, float] | None, periods: tuple[float, float]) -> Shift:
        """The shift for the next frame, which moved by ``motion`` (:func:`drifts`; None: unknown, the first of a
        shot, the grid stays) on a network of ``periods`` (:func:`period`).

        Where a pixel of the frame is at most a third of the network's (``periods`` of :data:`FINE_PERIOD` or
        more) the grid follows the whole drift, rounded: the picture stays within half a pixel of where it was
        painted. Where the pixels are coarser, a one-pixel snap of the grid is a large move for the network and
        costs more than a slow drift across the grid: the grid follows only each frame's motion in whole
        pixels, axis by axis from 1 pixel a frame on. Painted at more than half the frame's size (``periods``
        under :data:`COARSE_PERIOD`) the grid stays put: there a pixel of the frame is most of a network pixel,
        and on the suite's bikes.mp4 (painted at 0.9 of its size) following it cost 2 % more flicker
        (bench/README, "The painting grid follows the picture")."""
        if motion is not None and not self.fresh and min(periods) >= COARSE_PERIOD:
            fine = min(periods) >= FINE_PERIOD
            step = motion if fine else tuple(round(m) if abs(m) >= 1.0 else 0.0 for m in motion)
            moved = (wrap(o + m, p) for o, m, p in zip(self.offset, step, periods))
            self.offset = tuple(moved)  # type: ignore[assignment]
        self.fresh = False
        self.painted = round(self.offset[0]), round(self.offset[1])
        return self.painted


def wrap(offset: float, period: float) -> float:
    """``offset`` brought within half a ``period`` of 0 (moving the grid a whole period paints the same)."""
    return offset - period * round(offset / period)


def steps(before: Shift, shifts: Sequence[Shift], periods: tuple[float, float]) -> list[tuple[float, float]]:
    """How far the grid moved for each of a batch's frames (``shifts``, the first following a frame painted at
    ``before``), each brought within half a period of 0 (a whole period paints the same)."""
    out, prev = [], before
    for shift in shifts:
        out.append((wrap(shift[0] - prev[0], periods[0]), wrap(shift[1] - prev[1], periods[1])))
        prev = shift
    return out


def unfollowed(backward: torch.Tensor, moved: Sequence[tuple[float, float]]) -> torch.Tensor:
    """The motion the network sees on its grid: each frame's backward flow (B,2,H,W), px of the frame, less how
    far the grid moved with it (:func:`steps`). A pan the grid follows is still there; a zoom is not."""
    step = torch.tensor(moved, dtype=backward.dtype, device=backward.device).reshape(len(moved), 2, 1, 1)
    return backward - step


def shifted(x: torch.Tensor, shift: Shift) -> torch.Tensor:
    """(N,C,H,W) moved by whole pixels: ``out[..., Y, X] = x[..., Y − y, X − x]``, the borders that come in
    reflected (as the network pads). A shift of at least the frame's size is cut to one pixel less."""
    sx, sy = shift
    if sx == 0 and sy == 0:
        return x
    sx = max(-(x.shape[-1] - 1), min(sx, x.shape[-1] - 1))
    sy = max(-(x.shape[-2] - 1), min(sy, x.shape[-2] - 1))
    a, b = abs(sx), abs(sy)
    padded = F.pad(x, (a, a, b, b), mode="reflect")
    return padded[..., b - sy:b - sy + x.shape[-2], a - sx:a - sx + x.shape[-1]]


def shifted_each(x: torch.Tensor, shifts: Sequence[Shift] | None) -> torch.Tensor:
    """:func:`shifted` per frame of a batch (None, or every shift 0: ``x`` itself)."""
    if not moves(shifts):
        return x
    assert shifts is not None
    return torch.cat([shifted(x[i:i + 1], s) for i, s in enumerate(shifts)])


def moves(shifts: Sequence[Shift] | None) -> bool:
    """Whether any frame of a batch is moved."""
    return shifts is not None and any(s != NO_SHIFT for s in shifts)


def back(shifts: Sequence[Shift] | None) -> list[Shift] | None:
    """The shifts that undo ``shifts``."""
    return None if shifts is None else [(-x, -y) for x, y in shifts]
