"""The same look at any output size: the network paints at a working resolution, the result is resized
to the output guided by the full-resolution frame. Pure torch functions, on whatever device the frames are.

The networks paint strokes of a fixed size *in pixels* (their receptive field), so a 4K frame painted
as it is gets strokes a sixth as long, relative to the frame, as a 360p one. A style's look is therefore
defined at a reference short side (``configs/styles.yaml``, per network): every frame is painted with
its short side at ``reference / stroke_scale``, and the painting is brought to the output size.

Going up, plain interpolation would blur the painting, so the fine detail comes from the full-resolution
frame instead, scaled by how the painting follows the frame locally. This is the guided filter's local
linear model (He, Sun & Tang, ECCV 2010 / TPAMI 2013, "Guided image filtering"), computed at the working
size and upsampled as in the fast guided filter (He & Sun 2015, arXiv:1505.00996): per window,
``painting ≈ a·luma + b``. Unlike the guided filter's output ``ā·I + b̄``, which would smooth away the
strokes inside each window, only the detail the working size cannot hold is added to the interpolated
painting: ``up(P) + up(ā)·(I − up(I_low))``, so the strokes keep their texture, edges that the
painting follows get the frame's full-resolution sharpness, and texture the painting ignores (a ≈ 0)
does not leak through from the photo.

What the frame does not explain, the painting's own strokes (the offset ``b = P − ā·I_low``), would still
come out of interpolation with edges as wide as the upsampling factor: an upscaled preview, only as sharp.
Those edges are steepened as a toggle-contrast filter does (Kramer & Bruckner 1975, "Iterations of a
non-linear transformation for enhancement of digital images"; the shock filters of Osher & Rudin 1990
are its continuous form), but softly: each pixel's place between its neighbourhood's minimum and maximum
(3×3 working pixels, interpolated like the coefficients) is stretched by a factor k and clamped, so a ramp
f pixels wide becomes f/k wide and no pixel leaves the range its strokes already span (no halos, no new
colours). k grows with the upsampling factor f (1 at f = 1, :data:`STEEPEN_MAX` from f = 3 on): a 2x
upsampling needs less of it, and a stronger k would shorten the strokes of ``--stroke-scale 2``.

Where the network redraws its strokes, a steep edge flickers: each frame's edge is rebuilt from a working-size
painting drawn anew, and the steeper the edge the larger the jump (at 1080p, one k for the whole frame left a
24 px/frame pan flickering 30 % more than the native painting: bench/README, "The steepening weakened where the
frame moves, in farm"). It redraws wherever the picture moves on its grid: everywhere the frame moves, except
where the painting grid follows the move (farm/styles/grid.py: a pan). A render with a temporal pass therefore
hands in a per-pixel k (:func:`motion_steepening`): k where the picture stays put on the grid, falling towards 1
as it moves across it (1 + (k − 1)/e at :data:`MOTION_NETWORK_PX` of a network pixel a frame, within 1 % of 1
at twice that), from the backward flow the pass computes anyway, less the grid's move. Without a flow (the first
frame of a shot, a render without coherence, a still) k stays the scalar of :func:`steepening`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from farm.styles.grid import Shift, back, moves, shifted_each
from farm.styles.size import MAX_ASPECT, working_size  # noqa: F401 (re-exported: the working size lives torch-free)
from farm.temporal.device import to_gray as luma  # Rec. 601 luma, (N,3,H,W) → (N,1,H,W)

#: radius (working-size pixels) of the windows the local linear model is fitted on
RADIUS = 2
#: the guided filter's ε on [0,1] luma: windows whose luma varies less than about √ε = 0.03 get a ≈ 0
EPS = 1e-3
#: the strongest stretch of the strokes' edges (see :func:`steepening`), reached from an upsampling of 3x
STEEPEN_MAX = 1.5
#: how fast the stretch grows with the upsampling factor f: k = 1 + STEEPEN_SLOPE·(f − 1)
STEEPEN_SLOPE = 0.25
#: how fast the picture moves on the network's grid (in the network's pixels a frame) where the stretch has fallen
#: from k to 1 + (k − 1)/e (:func:`motion_steepening`): a third of a network pixel, 1 px a frame of a 1080p frame
#: painted at 360; 1.01 at twice that for k 1.5 (bench/README, "The stretch falls where the network redraws")
MOTION_NETWORK_PX = 1 / 3

#: the stretch of the strokes' edges: one k for the whole frame, or one per output pixel (N,1,H,W)
Steep = float | torch.Tensor


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N,C,H,W) float → (N,C,*size): antialiased bilinear (an area average going down), bilinear going up."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=down)


def resize_shifted(x: torch.Tensor, size: tuple[int, int], shifts: Sequence[Shift]) -> torch.Tensor:
    """:func:`resize` going up, each frame read ``shifts[i]`` pixels of the output further on (the borders
    reflected): output pixel X takes what :func:`resize` puts at X + shift, at the very same interpolation
    positions, so nothing is blurred more (farm/styles/grid.py)."""
    (h, w), (big_h, big_w) = x.shape[-2:], size
    grids = []
    for sx, sy in shifts:
        cols = (torch.arange(big_w, device=x.device, dtype=torch.float32) + (sx + 0.5)) * (2.0 / big_w) - 1.0
        rows = (torch.arange(big_h, device=x.device, dtype=torch.float32) + (sy + 0.5)) * (2.0 / big_h) - 1.0
        grids.append(torch.stack(torch.meshgrid(rows, cols, indexing="ij")[::-1], dim=-1))
    return F.grid_sample(x, torch.stack(grids).to(x.dtype), mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over (2r+1)² windows, shrunk at the borders (only pixels inside the frame count)."""
    return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)


def local_gain(guide: torch.Tensor, painting: torch.Tensor, radius: int = RADIUS, eps: float = EPS) -> torch.Tensor:
    """The guided filter's window-averaged slope ā of ``painting ≈ a·guide + b`` per channel (He et al. 2013).

    ``guide`` (N,1,h,w), ``painting`` (N,C,h,w) → (N,C,h,w). The radius must fit the frame: it is cut
    to the frame's smaller side's half.
    """
    radius = max(0, min(radius, (min(guide.shape[-2:]) - 1) // 2))
    if radius == 0:
        return torch.zeros_like(painting)
    mean_i, mean_p = box(guide, radius), box(painting, radius)
    cov = box(guide * painting, radius) - mean_i * mean_p
    var = box(guide * guide, radius) - mean_i * mean_i
    return box(cov / (var.clamp_min(0.0) + eps), radius)


def steepening(factor: float) -> float:
    """The stretch k applied to the strokes' edges for an upsampling by ``factor`` (1: none)."""
    return min(STEEPEN_MAX, 1.0 + STEEPEN_SLOPE * max(0.0, factor - 1.0))


def motion_steepening(flow: torch.Tensor, k: float, pixel: float) -> torch.Tensor:
    """The stretch per output pixel where the network redraws: ``1 + (k − 1)·exp(−(|flow| / speed)²)``, with
    ``speed`` :data:`MOTION_NETWORK_PX` network pixels of ``pixel`` output pixels each (the upsampling factor).

    ``flow`` (N,2,H,W): each pixel's motion on the network's grid since the previous frame, in pixels of the
    output (the temporal pass's backward flow less the grid's own move: :func:`farm.styles.grid.unfollowed`).
    A pixel still on the grid keeps ``k``; one moving ``speed`` pixels a frame gets 1 + (k − 1)/e, twice that
    1.01: a steep edge the network redraws elsewhere flickers more than it sharpens (module docstring).
    → float32 (N,1,H,W) in [1, k]."""
    speed = MOTION_NETWORK_PX * pixel
    speed2 = flow.float().square().sum(dim=1, keepdim=True)
    return speed2.mul_(-1.0 / speed**2).exp_().mul_(k - 1.0).add_(1.0)


def is_one(k: Steep) -> bool:
    """Whether ``k`` stretches nothing (a scalar 1): the steepening can be skipped."""
    return not isinstance(k, torch.Tensor) and k == 1.0


def local_range(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel minimum and maximum over 3×3 windows (shrunk at the borders), each as two passes of 3 taps:
    on the CPU, ``max_pool2d`` (which also finds the indices) took 11x as long."""
    return (three_taps(three_taps(x, torch.minimum, -1), torch.minimum, -2),
            three_taps(three_taps(x, torch.maximum, -1), torch.maximum, -2))


def three_taps(x: torch.Tensor, pick, dim: int) -> torch.Tensor:
    """``pick`` (``torch.minimum`` or ``torch.maximum``) of each element and its two neighbours along ``dim``
    (one at the ends)."""
    n, out = x.shape[dim], x.clone()
    if n > 1:
        pick(out.narrow(dim, 1, n - 1), x.narrow(dim, 0, n - 1), out=out.narrow(dim, 1, n - 1))
        pick(out.narrow(dim, 0, n - 1), x.narrow(dim, 1, n - 1), out=out.narrow(dim, 0, n - 1))
    return out


def steepen(x: torch.Tensor, low: torch.Tensor, high: torch.Tensor, k: Steep) -> torch.Tensor:
    """Stretch each pixel's place between its local ``low`` and ``high`` by ``k`` about their middle,
    clamped to them: edges k times steeper, flat parts and the extremes unchanged. Continuous in ``x``
    (a soft toggle filter), so small changes between frames stay small. ``k``: a scalar, or (N,1,H,W)
    per pixel (:func:`motion_steepening`).

    All three are overwritten (in place: at 4K each is 100 MB); the result is ``x``.
    """
    if is_one(k):
        return x
    half = high.sub_(low).mul_(0.5).clamp_min_(1e-6)
    mid = low.add_(half)
    place = x.sub_(mid).div_(half).clamp_(-1.0, 1.0).mul_(k).clamp_(-1.0, 1.0)
    return place.mul_(half).add_(mid)


def guided_upsample(painting: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor,
                    radius: int = RADIUS, eps: float = EPS, steep: Steep | None = None,
                    shifts: Sequence[Shift] | None = None) -> torch.Tensor:
    """A painting (N,3,h,w) of ``guide_low`` (N,3,h,w), brought to the size of ``guide`` (N,3,H,W):
    the interpolated painting plus the full-resolution frame's detail that the working size lost,
    scaled by the local gain, with the strokes' own edges steepened (see the module docstring).

    Computed as ``up(ā)·I + steepen(up(P − ā·I_low))``: the fast guided filter's form (one interpolation
    of the coefficients, one multiply-add at full size), with a per-pixel offset instead of the
    window-averaged b̄ so that the painting's own texture survives; without steepening it equals
    ``up(P) + up(ā)·(I − up(I_low))`` up to the interpolation of a product, ā being smooth. ``steep``:
    the stretch k, a scalar or a (N,1,H,W) map at the output size (None: :func:`steepening` of the short
    sides' ratio). ``shifts``: per frame, how far (pixels of ``guide``) the frame was moved before it was
    painted (farm/styles/grid.py): the painting and ``guide_low`` show it moved, the result and ``guide`` do not.
    """
    size = tuple(guide.shape[-2:])
    k = steepening(upsampling_factor(painting, guide)) if steep is None else steep
    low = luma(guide_low)
    gain = local_gain(low, painting, radius, eps)
    offset = painting - gain * low
    parts = [gain, offset] if is_one(k) else [gain, offset, *local_range(offset)]
    parts = torch.cat(parts, dim=1)
    coeffs = resize_shifted(parts, size, shifts) if moves(shifts) else resize(parts, size)
    strokes = coeffs[:, 3:6] if is_one(k) else steepen(coeffs[:, 3:6], coeffs[:, 6:9], coeffs[:, 9:12], k)
    return torch.addcmul(strokes, coeffs[:, :3], luma(guide))


def upsampling_factor(painting: torch.Tensor, frame: torch.Tensor) -> float:
    """How many times larger ``frame``'s short side is than ``painting``'s (what :func:`steepening` takes)."""
    return min(frame.shape[-2:]) / min(painting.shape[-2:])


def upsampled(painting: torch.Tensor, frame: torch.Tensor) -> bool:
    """Whether :func:`to_output` brings ``painting`` up to ``frame``'s size (guided), rather than leaving it
    or averaging it down."""
    return not (painting.shape[-2] >= frame.shape[-2] and painting.shape[-1] >= frame.shape[-1])


def to_output(painting: torch.Tensor, frame_low: torch.Tensor, frame: torch.Tensor,
              steep: Steep | None = None, shifts: Sequence[Shift] | None = None) -> torch.Tensor:
    """The working-size painting of ``frame_low`` at the size of ``frame`` (N,3,H,W): unchanged at the same
    size, area-averaged down, guided up (``steep``: the strokes' stretch, ``shifts``: how far the frames were
    moved before painting, see :func:`guided_upsample`). Moved frames are moved back: guided up, as they are
    resampled; otherwise by whole pixels after the resize."""
    size = tuple(frame.shape[-2:])
    if not upsampled(painting, frame):
        return shifted_each(resize(painting, size), back(shifts))
    return guided_upsample(painting, frame_low, frame, steep=steep, shifts=shifts)
