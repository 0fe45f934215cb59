"""Flow-guided temporal coherence, after Ruder, Dosovitskiy & Brox 2016,
"Artistic style transfer for videos" (arXiv 1604.08610).

The network paints every frame independently (batched, elsewhere); this
module makes the frames agree with each other. For frame t:

1. optical flow on the *input* frames t and t-1, both directions (OpenCV DIS,
   Kroeger et al. 2016, no weights to download) — :func:`estimate_flow`;
2. a reliability mask from the forward–backward check (Ruder et al. Sec. 3.2)
   and the frame's edge: occluded pixels, and pixels that just came into view,
   are repainted, not dragged along — :func:`reliability_mask` (Ruder's motion
   boundary test is kept for the metrics, not the blend: :data:`BOUNDARY_WEIGHT`);
3. out_t = m·s·warp(out_{t-1}) + (1 − m·s)·stylized_t — :func:`blend` — done
   separately for two bands (:func:`blend_bands`): the brush strokes (detail
   above a σ = 3 px Gaussian; 3 px of the *painting*, so f·3 px of a frame
   painted at a working size f times smaller, farm/paint.py ``band_sigma``)
   keep ``strength`` of their history, the colours
   and shapes under them at most :data:`BASE_STRENGTH`. Measured
   (bench/flicker.py): 96 % of per-frame flicker is in the strokes, and a
   long memory in the base layer only drags colours behind moving things.

Flow convention (used everywhere in farm): ``estimate_flow(src, dst)`` returns
``F`` of shape (H, W, 2), float32, (dx, dy) per pixel of ``src``, such that

    src[y, x] ≈ dst[y + F[y, x, 1], x + F[y, x, 0]]

i.e. for every pixel of ``src``, where that point is in ``dst``. ``warp(dst, F)``
pulls ``dst`` onto ``src``'s pixel grid. To bring the previous output into
frame t, take ``F = estimate_flow(frame_t, frame_{t-1})`` (Ruder's backward flow
ŵ) and ``warp(out_{t-1}, F)``.

Everything here except :class:`Coherence` is a pure function of numpy arrays.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import cv2
import numpy as np

from farm.config import TemporalOptions

#: DIS quality/speed preset: MEDIUM beat FAST at about the same cost (bench/flicker.py --sweep)
DIS_PRESET = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
#: interpolation used when warping images (bicubic measured no better than bilinear)
WARP_INTERPOLATION = cv2.INTER_LINEAR
#: σ (px) of the Gaussian splitting an image into a base layer (colours, shapes) and detail (strokes)
BASE_SIGMA = 3.0
#: the most history the base layer keeps: min(strength, BASE_STRENGTH). 0.4 with strength 0.9 (the strokes)
#: since issue 15's suite; it was 0.5 with 0.8 (bench/README, "flicker.py --suite")
BASE_STRENGTH = 0.4
#: how much of ``strength`` the blend keeps on a motion boundary that is not an occlusion (Ruder: 0).
#: A DIS flow upsampled from half size has gradients above Ruder's threshold in a band along every
#: moving edge; those pixels were repainted every frame and made half the flicker left on two discs
#: crossing (bench/README, "flicker.py --suite")
BOUNDARY_WEIGHT = 1.0


def to_gray(frame_rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H,W,3) → gray uint8 (H,W); a gray frame passes through."""
    if frame_rgb.ndim == 2:
        return frame_rgb
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)


def estimate_flow(src_gray: np.ndarray, dst_gray: np.ndarray, *, scale: float = 0.5,
                  preset: int = DIS_PRESET, engine: cv2.DISOpticalFlow | None = None) -> np.ndarray:
    """Dense flow from ``src`` to ``dst`` (uint8 gray, same shape) → float32 (H,W,2) as (dx, dy).

    ``src[y, x] ≈ dst[y + F[y,x,1], x + F[y,x,0]]``: for each pixel of ``src``,
    where it is in ``dst`` (see the module docstring). With ``scale < 1`` DIS
    runs on frames resized by ``scale`` and the flow is resized back, its
    vectors multiplied by the inverse factors (before the resize: a quarter of
    the pixels, and bit-identical for the power-of-two factors of scale 0.5).
    ``engine``, a DIS object of ``preset`` made by the caller, is reused instead of
    a new one (same flow, ~1 ms less per call at 320x180; one thread at a time).
    """
    src_gray, dst_gray = to_gray(src_gray), to_gray(dst_gray)
    h, w = src_gray.shape
    sw, sh = max(12, round(w * scale)), max(12, round(h * scale))  # DIS refuses images under 12 px
    if (sw, sh) != (w, h):
        src_gray = cv2.resize(src_gray, (sw, sh), interpolation=cv2.INTER_AREA)
        dst_gray = cv2.resize(dst_gray, (sw, sh), interpolation=cv2.INTER_AREA)
    flow = (engine if engine is not None else cv2.DISOpticalFlow_create(preset)).calc(src_gray, dst_gray, None)
    if (sw, sh) != (w, h):
        flow *= np.array([w / sw, h / sh], dtype=np.float32)
        flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    return flow


@lru_cache(maxsize=8)
def _grid(h: int, w: int) -> np.ndarray:
    """Pixel coordinates as a float32 (H,W,2) map of (x, y), cached per frame size (read-only)."""
    grid = np.dstack(np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32)))
    grid.setflags(write=False)
    return grid


def warp(image: np.ndarray, flow: np.ndarray, *, interpolation: int = WARP_INTERPOLATION) -> np.ndarray:
    """Sample ``image`` at ``(x, y) + flow``: ``out[y, x] = image[y + fy, x + fx]``, borders replicated.

    With ``flow = estimate_flow(a, b)``, ``warp(b, flow)`` is ``b`` seen on ``a``'s grid.
    """
    coords = _grid(*flow.shape[:2]) + flow
    return cv2.remap(image, coords, None, interpolation, borderMode=cv2.BORDER_REPLICATE)


def _sq_norm(flow: np.ndarray) -> np.ndarray:
    return flow[..., 0] ** 2 + flow[..., 1] ** 2


def reliability_mask(flow_fwd: np.ndarray, flow_bwd: np.ndarray, *, boundary_weight: float = 0.0,
                     entered: bool = False) -> np.ndarray:
    """Where the previous frame can be trusted in frame t: float32 (H,W) in [0,1] on frame t's grid.

    ``flow_fwd`` = estimate_flow(frame_{t-1}, frame_t) (Ruder's w, on t-1's grid),
    ``flow_bwd`` = estimate_flow(frame_t, frame_{t-1}) (ŵ, on t's grid).
    Ruder et al. 2016, Sec. 3.2: with w̃(x) = w(x + ŵ(x)) the forward flow
    brought to frame t, a pixel is disoccluded when
    |w̃ + ŵ|² > 0.01(|w̃|² + |ŵ|²) + 0.5, and on a motion boundary when
    |∇û|² + |∇v̂|² > 0.01|ŵ|² + 0.002. Disoccluded pixels get 0, boundary
    pixels ``boundary_weight`` (Ruder's 0 by default; the blend uses
    :data:`BOUNDARY_WEIGHT`), the rest 1. With ``entered``, a pixel whose flow leads
    out of frame t-1 gets 0 too: it has just come into view, and the forward–backward
    check passes there because both flows read the same replicated border.
    """
    w_tilde = warp(flow_fwd, flow_bwd, interpolation=cv2.INTER_LINEAR)
    occluded = _sq_norm(w_tilde + flow_bwd) > 0.01 * (_sq_norm(w_tilde) + _sq_norm(flow_bwd)) + 0.5
    if entered:
        occluded |= _outside(flow_bwd)
    mask = np.ones(flow_bwd.shape[:2], dtype=np.float32)
    if boundary_weight != 1.0:  # at 1 (the blend's weight) the boundary test changes nothing: skip its gradients
        du_dy, du_dx = np.gradient(flow_bwd[..., 0])
        dv_dy, dv_dx = np.gradient(flow_bwd[..., 1])
        mask[du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > 0.01 * _sq_norm(flow_bwd) + 0.002] = boundary_weight
    mask[occluded] = 0.0
    return mask


def _outside(flow: np.ndarray) -> np.ndarray:
    """Pixels whose flow lands outside the frame (beyond the outermost pixel centres)."""
    h, w = flow.shape[:2]
    at = _grid(h, w) + flow
    return (at[..., 0] < 0) | (at[..., 0] > w - 1) | (at[..., 1] < 0) | (at[..., 1] > h - 1)


def blend(stylized: np.ndarray, warped_prev: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Ruder et al.'s initialisation as a blend: weight·warped_prev + (1 − weight)·stylized, per pixel."""
    return stylized + weight[..., None] * (warped_prev - stylized)


def lowpass(image: np.ndarray, sigma: float = BASE_SIGMA) -> np.ndarray:
    """Gaussian base layer of a float image (reflected borders)."""
    return cv2.GaussianBlur(image, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def base_layer(image: np.ndarray, sigma: float = BASE_SIGMA) -> np.ndarray:
    """:func:`lowpass` for the blend. A wide one (σ ≥ 2·:data:`BASE_SIGMA`: strokes painted at a working size
    and shown f times larger) is blurred at 1/f of the size and brought back bilinearly, as a Gaussian pyramid
    does: the exact blur's cost grows with σ (at 4K, σ = 18 cost 5x σ = 3). The area average and the
    interpolation add a variance of about f²/4, taken off the small blur's; the result is within 2 levels
    of 255 of the exact blur (tests/test_temporal.py)."""
    f = int(sigma // BASE_SIGMA)
    if f < 2 or min(image.shape[:2]) < 4 * f:
        return lowpass(image, sigma)
    h, w = image.shape[:2]
    small = cv2.resize(image, (round(w / f), round(h / f)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), (sigma**2 - f**2 / 4) ** 0.5 / f, borderType=cv2.BORDER_REFLECT)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def blend_bands(stylized: np.ndarray, warped_prev: np.ndarray, mask: np.ndarray, strength: float,
                base_strength: float, sigma: float = BASE_SIGMA) -> np.ndarray:
    """:func:`blend` with weight ``mask·strength`` for the detail (image − lowpass) and
    ``mask·base_strength`` for the base layer (lowpass); equal strengths give :func:`blend`.

    The blur is linear, so one blur of the difference d = warped_prev − stylized does:
    out = stylized + mask·(strength·d − (strength − base_strength)·lowpass(d)).
    """
    d = warped_prev - stylized
    base = base_layer(d, sigma)
    # in place on the two temporaries: at 1080p each whole-frame numpy op costs ~10 ms
    d *= strength
    base *= strength - base_strength
    d -= base
    d *= mask[..., None]
    d += stylized
    return d


class Motion(NamedTuple):
    """A frame's gray and the backward flow its blend follows, from :meth:`Coherence.motions`: computed once,
    for the painting grid and the steepening by motion (farm/paint.py) and for the blend (:meth:`Coherence.step`)."""

    gray: np.ndarray
    #: ŵ, float32 (H,W,2), px of the frame; None where the step passes the frame through (first of a shot,
    #: another size, the pass off)
    backward: np.ndarray | None


class Coherence:
    """The sequential part: keeps the previous input and output, blends each new frame.

    ``step`` is called in frame order; the first frame (and the first after
    ``reset``) passes through. A chunked render calls ``step`` for the warm-up
    frames first and discards their outputs, so its history matches a
    sequential run (the difference decays like ``strength**warmup``).
    """

    def __init__(self, options: TemporalOptions | None = None, *, preset: int = DIS_PRESET,
                 base_strength: float = BASE_STRENGTH, base_sigma: float = BASE_SIGMA):
        self.options = options or TemporalOptions()
        self.preset = preset
        self.base_strength = min(self.options.strength, base_strength)
        #: σ (px of the frames) of the band split: strokes painted larger than the frame's pixels need it larger
        self.base_sigma = base_sigma
        #: one DIS object for every flow of this instance (calls in one thread, in frame order)
        self.engine = cv2.DISOpticalFlow_create(preset)
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next frame passes through."""
        self.prev_gray: np.ndarray | None = None
        self.prev_out: np.ndarray | None = None

    @property
    def active(self) -> bool:
        """Whether frames are blended at all (``enabled`` and a ``strength`` above 0)."""
        return self.options.enabled and self.options.strength > 0

    def _linked(self, gray: np.ndarray, prev: np.ndarray | None) -> bool:
        """Whether a frame of ``gray`` that follows one of ``prev`` is blended with the history (else it passes
        through)."""
        return self.active and prev is not None and prev.shape == gray.shape

    def motions(self, frames_rgb: np.ndarray) -> list[Motion]:
        """The gray and backward flow each of a batch of frames (N,H,W,3) is blended along by the next
        :meth:`step` calls, in order (each frame's flow from the one before it, the first's from the history's
        last), for a caller that needs the motion before it has the stylizations (the painting grid and the
        steepening by motion, farm/paint.py); hand each back to :meth:`step` so that neither is computed twice."""
        out, prev = [], self.prev_gray
        for frame in frames_rgb:
            gray = to_gray(frame)
            out.append(Motion(gray, estimate_flow(gray, prev, scale=self.options.flow_scale, engine=self.engine)
                              if self._linked(gray, prev) else None))
            prev = gray
        return out

    def step(self, frame_rgb: np.ndarray, stylized: np.ndarray, motion: Motion | None = None) -> np.ndarray:
        """Input frame uint8 (H,W,3) and its per-frame stylization float32 (H,W,3) in [0,1] → output
        float32 (H,W,3) in [0,1]. A frame of another size than the last starts afresh; with
        ``enabled=False`` or ``strength=0`` every frame passes through. ``motion``: this frame's
        :meth:`motions` entry, when the caller has it already (None: computed here)."""
        gray = to_gray(frame_rgb) if motion is None else motion.gray
        out = np.asarray(stylized, dtype=np.float32)
        if self._linked(gray, self.prev_gray):
            # the two-band blend is not a convex combination per pixel: keep the output (and history) in range
            out = self._blend(gray, out, None if motion is None else motion.backward)
            np.clip(out, 0.0, 1.0, out=out)
        self.prev_gray, self.prev_out = gray, out
        return out

    def _blend(self, gray: np.ndarray, stylized: np.ndarray, bwd: np.ndarray | None = None) -> np.ndarray:
        scale = self.options.flow_scale
        if bwd is None:
            bwd = estimate_flow(gray, self.prev_gray, scale=scale, engine=self.engine)
        fwd = estimate_flow(self.prev_gray, gray, scale=scale, engine=self.engine)
        mask = reliability_mask(fwd, bwd, boundary_weight=BOUNDARY_WEIGHT, entered=True)
        return blend_bands(stylized, warp(self.prev_out, bwd), mask, self.options.strength, self.base_strength,
                           self.base_sigma)
