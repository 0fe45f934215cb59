"""A change of the light reaches the network slowly, and until it has, the painting follows it linearly. Pure
torch functions, and :class:`LightTrack`, the one bit of state.

Painted at a working size, the network answers a local change of the light about twice as steeply as painted at
1080p (on the lighting clip, the light band's change per unit of the input's luma: 2.45 against 1.49), and a
light sweeping across a 1080p render flickered 65 % more than the native painting. The temporal pass cannot hold
that back: to it, a light change and redrawn strokes look the same, and holding the light back makes it trail
the patch it lights (bench/README, "The lighting change at 1080p"). The frames can tell them apart, though: the
light's change since the shot began is tracked along the backward flow the temporal pass computes anyway, as
the ratio of the luma's low-pass (σ = :data:`SIGMA` of the painting's short side) to the previous frame's, warped
along the flow, on a small map (:data:`MAP_SIDE` pixels on its short side). The network paints each frame divided
by that change (:func:`flat`), and the painting is multiplied by it again (:func:`relit`):

* a frame whose light has not changed is painted as before (on the suite's clips without a light change the
  painting moves by 0.02-0.03 levels of 255);
* a light that changes reaches the network at 1 − :data:`KEEP` a frame (over about 20 frames), and until then
  the painting follows it linearly, as a light falling on a finished canvas would;
* the change's global part is left out (divided by its mean): the network's instance norm takes a global gain
  out anyway;
* a frame-to-frame change within :data:`STILL` of none (in log) is taken as none: the flow's and the low-pass's
  own noise would otherwise add up over a shot;
* the low-pass averages the frame's own pixels only (normalized by how much of its window lies inside), and is
  trusted less where content that just came into view makes up much of it (:func:`trusted`): past the border a
  moving camera shows other content than the frame before, which is no change of the light.

The track restarts where the painting grid does (a shot's first frame, a chunk's regrid frames: farm/plan.py),
so that two workers painting the same frames agree.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from farm.temporal.device import to_gray, warp

#: σ of the light's low-pass, as a share of the painting's short side (64 px of a 360 painting, 192 of a 1080p
#: frame): the light's reach is the picture's, and it is wider than the strokes' bands
SIGMA = 64 / 360
#: the light map's short side (at most the painting's): 8 of its pixels to the low-pass's σ, 8 working pixels each
#: at the default working size (360)
MAP_SIDE = 45
#: how much of the tracked change is kept from one frame to the next (the rest returns to none)
KEEP = 0.95
#: a frame-to-frame change of the light within this much of none (in log) counts as none
STILL = 0.01
#: the largest change of the light one frame may bring (a factor either way)
LIMIT = 1.5
#: added to the low-pass before a ratio is taken (luma in [0,1]): black stays black
EPS = 0.02
#: the share of a low-pass's window that just came into view past which its ratio is not taken as the light's
#: (falling to that from 1 where none did)
NEW = 0.25


def map_size(work: tuple[int, int]) -> tuple[int, int]:
    """The light map's (height, width) for a painting of ``work`` (height, width): :data:`MAP_SIDE` on its short
    side, or the painting's own size if that is smaller."""
    scale = min(1.0, MAP_SIDE / min(work))
    return max(1, round(work[0] * scale)), max(1, round(work[1] * scale))


def low_light(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """:func:`~farm.styles.model.planar` frames (N,3,H,W) → their luma's low-pass at the map's ``size``,
    (N,1,h,w), over the frame's own pixels only, :data:`EPS` added."""
    small = F.interpolate(to_gray(frames), size=size, mode="bilinear", align_corners=False, antialias=True)
    return average_inside(small, SIGMA * min(size)) + EPS


def average_inside(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A Gaussian average of (N,1,h,w) over the map's own pixels: :func:`blur_inside` of ``x`` over that of
    ones (how much of each window lies inside)."""
    return blur_inside(x, sigma) / blur_inside(torch.ones_like(x[:1]), sigma)


def blur_inside(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian of (N,1,h,w), nothing beyond the borders (zeros)."""
    r = max(1, round(3 * sigma))
    taps = torch.arange(-r, r + 1, device=x.device, dtype=x.dtype)
    k = (-0.5 * (taps / sigma) ** 2).exp()
    k = k / k.sum()
    x = F.conv2d(x, k.view(1, 1, 1, -1), padding=(0, r))
    return F.conv2d(x, k.view(1, 1, -1, 1), padding=(r, 0))


def map_flow(backward: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A backward flow (N,2,H,W), px of the frame → the same at the map's ``size``, in its pixels."""
    h, w = backward.shape[-2:]
    small = F.interpolate(backward.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    scale = torch.tensor([size[1] / w, size[0] / h], device=small.device).view(1, 2, 1, 1)
    return small * scale


def settled(step: torch.Tensor) -> torch.Tensor:
    """A frame-to-frame ratio of the light → the log of the part taken as a change: :data:`STILL` less, at most
    :data:`LIMIT` either way."""
    log = step.clamp(1 / LIMIT, LIMIT).log()
    return log.sign() * (log.abs() - STILL).clamp_min(0.0)


def trusted(flow: torch.Tensor, sigma: float) -> torch.Tensor:
    """How far a ratio of the low-passes can be taken as the light's (1,1,h,w; 0 to 1): not where content that
    just came into view (where the flow (1,2,h,w) leads past the previous map's border: a pixel's share of it
    by how far) makes up more than :data:`NEW` of the low-pass's window, which the frame before never saw."""
    h, w = flow.shape[-2:]
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, 1, w) + flow[:, 0:1]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, 1, h, 1) + flow[:, 1:2]
    # how much of each pixel lies past the previous map's border, where its flow leads
    entered = torch.maximum(torch.maximum(-xs, xs - (w - 1)), torch.maximum(-ys, ys - (h - 1))).clamp_(0.0, 1.0)
    return (1.0 - average_inside(entered, sigma) / NEW).clamp_(0.0, 1.0)


class LightTrack:
    """The change of the light since the track started, frame after frame (module docstring)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Start over: the next frame's light is the one its painting is made for."""
        self.low: torch.Tensor | None = None
        self.change: torch.Tensor | None = None

    def follow(self, low: torch.Tensor, flow: torch.Tensor | None) -> torch.Tensor:
        """The change for the next frame, whose light map is ``low`` (1,1,h,w; :func:`low_light`) and which came
        from the last one along ``flow`` (1,2,h,w; :func:`map_flow`; None: the first of a shot) → (1,1,h,w)."""
        if flow is None or self.low is None or self.change is None or self.low.shape != low.shape:
            change = torch.ones_like(low)
        else:
            step = settled(low / warp(self.low, flow)) * trusted(flow, SIGMA * min(low.shape[-2:]))
            change = 1.0 + KEEP * (warp(self.change, flow) * step.exp() - 1.0)
            change = change / change.mean()
        self.low, self.change = low, change
        return change

    def lights(self, frames: torch.Tensor, flows: list[torch.Tensor | None], work: tuple[int, int]
               ) -> torch.Tensor | None:
        """Each of a batch's :func:`~farm.styles.model.planar` frames (N,3,H,W), in order, painted at ``work``
        (height, width) and come from the frame before along its backward flow (``flows[i]``, (1,2,H,W) px of
        the frame; None: the first of a shot) → the change of its light (N,1,H,W), or None where no frame's
        light changed (then the frames are painted as they are)."""
        assert len(flows) == len(frames), "one flow (or None) per frame"
        size = map_size(work)
        lows = low_light(frames, size)
        changes = torch.cat([self.follow(lows[i:i + 1], None if flow is None else map_flow(flow, size))
                             for i, flow in enumerate(flows)])
        if bool((changes == 1.0).all()):
            return None
        return F.interpolate(changes, size=tuple(frames.shape[-2:]), mode="bilinear", align_corners=False)


def flat(frames: torch.Tensor, light: torch.Tensor | None) -> torch.Tensor:
    """Planar frames (N,3,H,W) with their light's change taken out: what the network paints."""
    return frames if light is None else (frames / light).clamp_(0.0, 1.0)


def relit(painted: torch.Tensor, light: torch.Tensor | None) -> torch.Tensor:
    """A painting (N,3,H,W) of :func:`flat` frames with the change put back (not clamped)."""
    return painted if light is None else painted * light
