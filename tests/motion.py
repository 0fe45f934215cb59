"""Clips with exactly known motion, for flow and flicker measurements (tests and bench/).

Each clip is a textured background seen through a camera that pans, zooms and
rotates, with textured discs moving on top of it in paint order. Every frame is
sampled from the same band-limited textures, so the true backward flow of each
pixel and whether it was visible in the previous frame are known exactly:

- background: frame_t(x) = B(q_t(x)) with q_t(x) = R(a_t)(x − c)/s_t + c + cam_t,
  so a pixel x of frame t was at p = c + s_{t−1}R(−a_{t−1})(q_t(x) − c − cam_{t−1}) in t−1;
- disc j: frame_t(x) = F_j(x − o_j,t), so it moved by o_j,t − o_j,t−1.

``flow(t)`` is the flow convention of farm.temporal (``frame_t[y,x] ≈
frame_{t-1}[y+fy, x+fx]``); its mask is 1 where the pixel belongs wholly to the
same layer in both frames, off anti-aliased rims, inside the frame (eroded by
one pixel so bilinear sampling never reads across an occlusion edge).

``CLIPS`` names the standard set (bench/flow_quality.py, tests/test_temporal_torch.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


def texture(h: int, w: int, seed: int) -> np.ndarray:
    """Photo-like float32 RGB in [0,1]: multi-octave colour noise plus hard-edged shapes, band-limited."""
    rng = np.random.default_rng(seed)
    image = np.zeros((h, w, 3), np.float32)
    for cell, amp in [(64, 0.5), (24, 0.25), (8, 0.15), (3, 0.1)]:
        coarse = rng.random((h // cell + 2, w // cell + 2, 3)).astype(np.float32)
        image += amp * cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    image = (image - image.min()) / (image.max() - image.min())
    for _ in range(max(4, h * w // 3000)):  # edges and corners, like objects in a photo
        colour = tuple(float(c) for c in rng.random(3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(image, (x, y), int(rng.integers(4, 30)), colour, -1, cv2.LINE_AA)
        else:
            cv2.rectangle(image, (x, y), (x + int(rng.integers(6, 50)), y + int(rng.integers(6, 50))), colour, -1,
                          cv2.LINE_AA)
    # band-limited so that sub-pixel resampling is faithful (the true motion is then exact)
    return cv2.GaussianBlur(np.clip(image, 0, 1), (0, 0), 0.7)


def _sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return cv2.remap(image, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)


@dataclass
class Disc:
    """A textured disc of ``radius`` px whose centre is at ``path[t]`` (x, y) in frame t."""

    radius: float
    path: np.ndarray  # (frames, 2)
    seed: int

    def alpha(self, t: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Coverage of the points (xs, ys) in frame t (anti-aliased rim one pixel wide)."""
        cx, cy = self.path[t]
        return np.clip(self.radius + 0.5 - np.hypot(xs - cx, ys - cy), 0.0, 1.0)


@dataclass
class MotionClip:
    """Frames, true backward flows and validity masks of one known-motion clip."""

    name: str
    frames: int
    width: int
    height: int
    #: camera per frame: x, y offset (px), zoom factor s, angle (radians)
    cam: np.ndarray
    discs: list[Disc] = field(default_factory=list)
    seed: int = 7

    def __post_init__(self):
        self.ys, self.xs = np.indices((self.height, self.width), dtype=np.float64)
        self.centre = np.array([(self.width - 1) / 2, (self.height - 1) / 2])
        lo = self.cam[:, :2].min(0) - np.hypot(self.width, self.height)
        hi = self.cam[:, :2].max(0) + np.hypot(self.width, self.height)
        self.origin = lo  # texture pixel (0,0) sits at camera coordinate lo
        self.bg = texture(int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1, self.seed)
        self.fg = [texture(int(2 * d.radius) + 8, int(2 * d.radius) + 8, d.seed) for d in self.discs]

    def _bg_coords(self, t: int, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """q_t(x): camera coordinates of frame t's points (xs, ys)."""
        ox, oy, s, a = self.cam[t]
        dx, dy = (xs - self.centre[0]) / s, (ys - self.centre[1]) / s
        c, n = np.cos(a), np.sin(a)
        return c * dx - n * dy + self.centre[0] + ox, n * dx + c * dy + self.centre[1] + oy

    def _bg_inverse(self, t: int, qx: np.ndarray, qy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The point of frame t that shows camera coordinate (qx, qy)."""
        ox, oy, s, a = self.cam[t]
        dx, dy = qx - self.centre[0] - ox, qy - self.centre[1] - oy
        c, n = np.cos(a), np.sin(a)
        return s * (c * dx + n * dy) + self.centre[0], s * (-n * dx + c * dy) + self.centre[1]

    def frame(self, t: int) -> np.ndarray:
        """Frame t as RGB uint8 (H, W, 3)."""
        qx, qy = self._bg_coords(t, self.xs, self.ys)
        image = _sample(self.bg, qx - self.origin[0], qy - self.origin[1])
        for disc, fg in zip(self.discs, self.fg):
            c = fg.shape[0] / 2
            inside = _sample(fg, self.xs - disc.path[t, 0] + c, self.ys - disc.path[t, 1] + c)
            a = disc.alpha(t, self.xs, self.ys)[..., None]
            image = a * inside + (1 - a) * image
        return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)

    def _layers(self, t: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        """Which layer wholly owns each point in frame t: 0 background, j+1 disc j, −1 a mixed rim."""
        owner = np.zeros(xs.shape, np.int64)
        for j, disc in enumerate(self.discs):
            a = disc.alpha(t, xs, ys)
            owner = np.where(a >= 1.0, j + 1, np.where(a > 0.0, -1, owner))
        return owner

    def flow(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Pair (t−1, t): the backward flow on frame t's grid, float32 (H,W,2), and its validity mask (H,W)."""
        owner = self._layers(t, self.xs, self.ys)
        px, py = self._bg_inverse(t - 1, *self._bg_coords(t, self.xs, self.ys))
        for j, disc in enumerate(self.discs):
            step = disc.path[t] - disc.path[t - 1]
            px = np.where(owner == j + 1, self.xs - step[0], px)
            py = np.where(owner == j + 1, self.ys - step[1], py)
        flow = np.stack([px - self.xs, py - self.ys], axis=-1).astype(np.float32)
        inside = (px >= 0) & (px <= self.width - 1) & (py >= 0) & (py <= self.height - 1)
        valid = inside & (owner >= 0) & (self._layers(t - 1, px, py) == owner)
        valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        return flow, valid.astype(np.float32)

    def all_frames(self) -> list[np.ndarray]:
        return [self.frame(t) for t in range(self.frames)]

    def all_flows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.flow(t) for t in range(1, self.frames)]


def _camera(frames: int, vx, vy=None, zoom: float = 1.0, spin: float = 0.0) -> np.ndarray:
    """Camera path from per-frame velocities (arrays or constants), zoom per frame, spin (rad/frame)."""
    t = np.arange(frames, dtype=np.float64)
    vx = np.broadcast_to(vx, t.shape)
    vy = np.broadcast_to(0.0 if vy is None else vy, t.shape)
    return np.stack([np.cumsum(vx) - vx[0], np.cumsum(vy) - vy[0], zoom**t, spin * t], axis=1)


def pan(frames: int = 48, width: int = 320, height: int = 240, speed: float = 1.0, name: str = "pan") -> MotionClip:
    """A camera panning at a varying, sub-pixel speed (0.4–2.0 px/frame in x, 0.45 in y), times ``speed``."""
    t = np.arange(frames)
    vx = speed * (1.2 + 0.8 * np.sin(2 * np.pi * t / frames))
    return MotionClip(name, frames, width, height,
                      _camera(frames, vx, speed * 0.45))


def zoom_rotate(frames: int = 48, width: int = 320, height: int = 240) -> MotionClip:
    """Zooming in 0.5 %/frame while turning 0.3°/frame and drifting: up to ~1.3 px/frame at the corners."""
    return MotionClip("zoom+rotate", frames, width, height,
                      _camera(frames, 0.3, -0.2, zoom=1.005, spin=np.radians(0.3)), seed=11)


def crossing(frames: int = 48, width: int = 320, height: int = 240) -> MotionClip:
    """Two discs crossing each other (the second passes in front) over a slowly panning background."""
    t = np.arange(frames, dtype=np.float64)
    a = Disc(34.0, np.stack([width * 0.15 + 3.1 * t, height * 0.45 + 0.4 * t], 1), seed=21)
    b = Disc(28.0, np.stack([width * 0.85 - 2.6 * t, height * 0.55 - 0.3 * t], 1), seed=22)
    return MotionClip("crossing", frames, width, height, _camera(frames, 0.6, 0.2), [a, b], seed=13)


#: the standard set: name → factory (each call draws the same clip)
CLIPS = {
    "pan": pan,
    "zoom+rotate": zoom_rotate,
    "crossing": crossing,
    "fast pan": lambda frames=48, width=320, height=240: pan(frames, width, height, 5.0, "fast pan"),
}


def endpoint_error(flow: np.ndarray, truth: np.ndarray, valid: np.ndarray) -> float:
    """Mean endpoint error |flow − truth| (px) over the valid pixels."""
    err = np.linalg.norm(flow - truth, axis=-1)
    return float((err * valid).sum() / max(valid.sum(), 1.0))


class Deforming(MotionClip):
    """A non-rigid deformation on top of the camera: frame_t(x) = B(q_t(x + d_t(x))), with d_t a smooth
    travelling wave of ``amplitude`` px (like cloth or water). The inverse of x ↦ x + d_t(x) is found by
    fixed-point iteration (a contraction while amplitude·2π/wavelength < 1)."""

    def __init__(self, *args, amplitude: float = 4.0, wavelength: float = 140.0, omega: float = 0.15, **kwargs):
        self.amplitude, self.k, self.omega = amplitude, 2 * np.pi / wavelength, omega
        super().__init__(*args, **kwargs)

    def _wave(self, t: int, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        phase = self.omega * t
        return (self.amplitude * np.sin(self.k * ys + phase), self.amplitude * np.cos(self.k * xs - 0.7 * phase))

    def _bg_coords(self, t, xs, ys):
        dx, dy = self._wave(t, xs, ys)
        return super()._bg_coords(t, xs + dx, ys + dy)

    def _bg_inverse(self, t, qx, qy):
        ux, uy = super()._bg_inverse(t, qx, qy)  # = x + d_t(x): solve for x
        x, y = ux.copy(), uy.copy()
        for _ in range(30):
            dx, dy = self._wave(t, x, y)
            x, y = ux - dx, uy - dy
        return x, y


class Lit(MotionClip):
    """A clip whose lighting changes: every frame is multiplied by a gain that dims to ``low`` and back, with
    a light patch sweeping across; the motion (and so the flow and masks) are the camera's."""

    def __init__(self, *args, low: float = 0.55, **kwargs):
        self.low = low
        super().__init__(*args, **kwargs)

    def gain(self, t: int) -> np.ndarray:
        u = t / max(self.frames - 1, 1)
        overall = 1.0 - (1.0 - self.low) * np.sin(np.pi * u) ** 2
        spot_x = self.width * (-0.2 + 1.4 * u)
        r2 = (self.xs - spot_x) ** 2 + (self.ys - self.height / 2) ** 2
        spot = 0.35 * np.exp(-r2 / (2 * (self.width / 5) ** 2))
        return (overall + spot)[..., None]

    def frame(self, t: int) -> np.ndarray:
        image = super().frame(t).astype(np.float32) * self.gain(t)
        return np.clip(image + 0.5, 0, 255).astype(np.uint8)


class HardCut:
    """Two clips back to back: ``first``'s frames before ``cut``, then ``second``'s from its frame 0.
    The pair (cut−1, cut) has nothing in common: its mask is all zeros."""

    def __init__(self, name: str, first: MotionClip, second: MotionClip, cut: int):
        self.name, self.first, self.second, self.cut = name, first, second, cut
        self.frames, self.width, self.height = first.frames, first.width, first.height
        self.cuts = [cut]

    def frame(self, t: int) -> np.ndarray:
        return self.first.frame(t) if t < self.cut else self.second.frame(t - self.cut)

    def flow(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        if t == self.cut:
            return np.zeros((self.height, self.width, 2), np.float32), np.zeros((self.height, self.width), np.float32)
        return self.first.flow(t) if t < self.cut else self.second.flow(t - self.cut)

    def all_frames(self) -> list[np.ndarray]:
        return [self.frame(t) for t in range(self.frames)]

    def all_flows(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.flow(t) for t in range(1, self.frames)]


def deforming(frames: int = 48, width: int = 320, height: int = 240) -> Deforming:
    """A travelling wave of 4 px over a slow pan: each pixel moves differently (up to ~2.5 px/frame)."""
    return Deforming("deform", frames, width, height, _camera(frames, 0.5, 0.15), seed=17)


def lighting(frames: int = 48, width: int = 320, height: int = 240) -> Lit:
    """A pan whose light dims to 55 % and back while a bright patch sweeps across."""
    t = np.arange(frames)
    return Lit("lighting", frames, width, height, _camera(frames, 1.0 + 0.5 * np.sin(2 * np.pi * t / frames), 0.3),
               seed=19)


def hard_cut(frames: int = 48, width: int = 320, height: int = 240, cut: int | None = None) -> HardCut:
    """A pan, then at frame ``cut`` (default: the middle, off any 30-frame chunk boundary) a zooming other shot."""
    cut = frames // 2 + 3 if cut is None else cut
    first = MotionClip("shot a", frames, width, height, _camera(frames, 1.4, 0.3), seed=23)
    second = MotionClip("shot b", frames, width, height, _camera(frames, -0.8, 0.2, zoom=1.004), seed=29)
    return HardCut("cut", first, second, cut)


def fast(frames: int = 48, width: int = 320, height: int = 240) -> MotionClip:
    """The pan at 12× speed: 4.8–24 px/frame in x, 5.4 in y."""
    return pan(frames, width, height, 12.0, "fast 24px")


#: the benchmark suite (bench/flicker.py --suite): the standard set, the kinds it lacks, faster motion
SUITE = {
    "pan": pan,
    "zoom+rotate": zoom_rotate,
    "crossing": crossing,
    "deform": deforming,
    "fast 24px": fast,
    "lighting": lighting,
    "cut": hard_cut,
}
