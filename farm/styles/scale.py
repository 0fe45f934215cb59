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
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

#: radius (working-size pixels) of the windows the local linear model is fitted on
RADIUS = 2
#: the guided filter's ε on [0,1] luma: windows whose luma varies less than about √ε = 0.03 get a ≈ 0
EPS = 1e-3
#: a working size above the output's is capped at this many times the reference side on its long side,
#: so a thin frame (5x4000) is not blown up to a huge working size
MAX_ASPECT = 4.0
#: Rec. 601 luma weights, as yuv420p encodes
LUMA = (0.299, 0.587, 0.114)


def working_size(height: int, width: int, reference_side: int, stroke_scale: float = 1.0,
                 min_side: int = 5) -> tuple[int, int]:
    """The (height, width) the network paints a ``height``×``width`` frame at: the short side at
    ``reference_side / stroke_scale``, the aspect ratio kept (a thin frame: see :data:`MAX_ASPECT`)."""
    side = reference_side / stroke_scale
    factor = side / min(height, width)
    if factor > 1.0:  # enlarging: keep the long side within MAX_ASPECT short sides (or the frame's own)
        factor = max(1.0, min(factor, max(MAX_ASPECT * side, max(height, width)) / max(height, width)))
    return max(min_side, round(height * factor)), max(min_side, round(width * factor))


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N,C,H,W) float → (N,C,*size): antialiased bilinear (an area average going down), bilinear going up."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=down)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(N,3,H,W) → (N,1,H,W) Rec. 601 luma."""
    weights = torch.tensor(LUMA, dtype=rgb.dtype, device=rgb.device)
    return torch.einsum("nchw,c->nhw", rgb, weights).unsqueeze(1)


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


def guided_upsample(painting: torch.Tensor, guide_low: torch.Tensor, guide: torch.Tensor,
                    radius: int = RADIUS, eps: float = EPS) -> torch.Tensor:
    """A painting (N,3,h,w) of ``guide_low`` (N,3,h,w), brought to the size of ``guide`` (N,3,H,W):
    the interpolated painting plus the full-resolution frame's detail that the working size lost,
    scaled by the local gain (see the module docstring).

    Computed as ``up(ā)·I + up(P − ā·I_low)``: the fast guided filter's form (one interpolation of the
    coefficients, one multiply-add at full size), with a per-pixel offset instead of the window-averaged
    b̄ so that the painting's own texture survives; it equals ``up(P) + up(ā)·(I − up(I_low))`` up to
    the interpolation of a product, ā being smooth.
    """
    low = luma(guide_low)
    gain = local_gain(low, painting, radius, eps)
    coeffs = resize(torch.cat([gain, painting - gain * low], dim=1), tuple(guide.shape[-2:]))
    return torch.addcmul(coeffs[:, 3:], coeffs[:, :3], luma(guide))


def to_output(painting: torch.Tensor, frame_low: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
    """The working-size painting of ``frame_low`` at the size of ``frame`` (N,3,H,W): unchanged at the same
    size, area-averaged down, guided up."""
    size = tuple(frame.shape[-2:])
    if tuple(painting.shape[-2:]) == size:
        return painting
    if painting.shape[-2] >= size[0] and painting.shape[-1] >= size[1]:
        return resize(painting, size)
    return guided_upsample(painting, frame_low, frame)
