"""Where the flicker of a lighting change sits at 1080p, and temporal passes that follow the light
(issue 16, item 3: the working-size painting's lighting clip flickers more than the native painting's).

Run by hand (never in CI):

    .venv/bin/python bench/flicker_light.py --frames 10 --variants farm,"gain input"
    .venv/bin/python bench/flicker_light.py --clips "lighting,pan" --paintings default

The clip (tests/motion.py ``lighting`` at 1920x1080, as bench/flicker_size.py makes it) is painted natively
(the network at 1080p, farm before issue 16) and at farm's default (the 360 working side, guided upsampling,
steepened edges); the paintings come from flicker_size.py's cache. Each painting goes through the temporal
variants of :data:`VARIANTS` (the native painting splits at 3 px, the working-size one at 9 px: farm's
``band_sigma``) and is scored with the exact flow and visibility.

Besides E_warp, the render's residual r = out_t − warp(out_{t−1}) over the visible pixels is cut into:

* bands: ``light`` (a Gaussian of σ = 27 px: the light and the largest shapes), ``base`` (9 → 27 px),
  ``mid`` (3 → 9 px: the working-size painting's strokes), ``fine`` (below 3 px: the native strokes);
  each band's share is its mean square over E_warp (the bands are not orthogonal, so the shares need
  not sum to 1);
* ``e_warp_strokes``: the residual without its light band (E_warp of everything finer than σ = 27 px);
* regions: the pixels where the clip's light changed most between the two frames (the top quarter of
  |Δ log gain|: the sweeping patch) against the rest; each as its mean square (an E_warp over that region).

Per painting, how strongly it follows the light (:func:`light_response`): the light band's change per RGB
channel regressed on the input luma's, the slope and the share of the change it explains.

``gain`` is the clip's true light (``Lit.gain``) so the regions do not depend on any estimate.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import flicker_size  # noqa: E402
import suite  # noqa: E402
from common import environment, load_note, table, write_result  # noqa: E402

from farm.config import TemporalOptions  # noqa: E402
from farm.metrics import lowfreq_deviation  # noqa: E402
from farm.temporal import BASE_SIGMA, Coherence  # noqa: E402
from farm.temporal.dis import lowpass, warp  # noqa: E402

SIZE = flicker_size.SIZE
#: σ (px of the 1080p frame) between the bands of the residual
BAND_EDGES = (3.0, 9.0, 27.0)


def clip_of(name: str, frames: int) -> suite.Clip:
    """flicker_size.py's 1080p clip (the real ones scored with Farneback flow); ``unlit``: the lighting clip's camera and texture without its light (the
    control: what the paintings do when only the camera moves)."""
    if name in ("bikes", "bigbuckbunny"):
        return flicker_size.real_clip(name, frames)
    if name != "unlit":
        return flicker_size.known_clip(name, frames)
    from tests.motion import MotionClip, lighting

    lit = lighting(frames=frames, width=SIZE[0], height=SIZE[1])
    plain = MotionClip("unlit", frames, SIZE[0], SIZE[1], lit.cam, seed=lit.seed)
    return suite.Clip("unlit", plain.all_frames(), plain.all_flows(), "exact")


def light_of(name: str, frames: int) -> list[np.ndarray] | None:
    """The clip's true per-pixel light (H,W) per frame, where the clip has one."""
    from tests.motion import SUITE, Lit

    if name not in SUITE:
        return None
    clip = SUITE[name](frames=frames, width=SIZE[0], height=SIZE[1])
    return [clip.gain(t)[..., 0].astype(np.float32) for t in range(frames)] if isinstance(clip, Lit) else None


def bands(r: np.ndarray) -> dict[str, np.ndarray]:
    """The residual split at :data:`BAND_EDGES`: fine, mid, base, light (they sum to ``r``)."""
    lows = [lowpass(r, s) for s in BAND_EDGES]
    return {"fine": r - lows[0], "mid": lows[0] - lows[1], "base": lows[1] - lows[2], "light": lows[2]}


def where(render: list[np.ndarray], clip: suite.Clip, light: list[np.ndarray] | None) -> dict[str, float]:
    """E_warp of ``render`` cut by band and by region (module docstring), means over the pairs."""
    out: dict[str, list[float]] = {}
    for t, (flow, mask) in enumerate(clip.pairs):
        if mask.sum() == 0:  # a cut: nothing seen in both frames (left out, as bench/suite.py does)
            continue
        r = render[t + 1] - warp(render[t], flow)
        weight = mask[..., None]
        total = float((r**2 * weight).sum() / (3 * mask.sum()))
        out.setdefault("e_warp", []).append(total)
        for band, part in bands(r).items():
            out.setdefault(f"share_{band}", []).append(float((part**2 * weight).sum() / (3 * mask.sum())) / total)
        strokes = r - lowpass(r, BAND_EDGES[-1])  # everything but the light band
        out.setdefault("e_warp_strokes", []).append(float((strokes**2 * weight).sum() / (3 * mask.sum())))
        mean_rgb = (r * weight).sum((0, 1)) / mask.sum()  # the global part: one offset per channel
        out.setdefault("share_global", []).append(float((mean_rgb**2).mean()) / total)
        if light is not None:
            change = np.abs(np.log(light[t + 1]) - np.log(warp(light[t], flow)))
            patch = (change >= np.quantile(change[mask > 0], 0.75)) & (mask > 0)
            rest = (~patch) & (mask > 0)
            sq = (r**2).mean(-1)
            out.setdefault("e_warp_patch", []).append(float(sq[patch].mean()))
            out.setdefault("e_warp_rest", []).append(float(sq[rest].mean()))
    return {k: float(np.mean(v)) for k, v in out.items()}


def light_response(images: list[np.ndarray], clip: suite.Clip) -> dict[str, float]:
    """How strongly ``images`` follow the input's light: per pair, the light band's change (σ = 27 px) of each
    RGB channel regressed on the input luma's (with an intercept: the networks' instance norm takes out a
    global change); the slope per channel and the share of the change the fit explains, means over pairs."""
    sigma = BAND_EDGES[-1]
    gray = [lowpass(f.astype(np.float32).mean(-1) / 255, sigma) for f in clip.frames]
    light = [lowpass(np.ascontiguousarray(i, dtype=np.float32), sigma) for i in images]
    slopes, explained = [], []
    for t, (flow, mask) in enumerate(clip.pairs):
        seen = mask > 0
        if not seen.any():
            continue
        rp = (light[t + 1] - warp(light[t], flow))[seen]
        ri = (gray[t + 1] - warp(gray[t], flow))[seen]
        x = np.stack([ri, np.ones_like(ri)], 1)
        coef, *_ = np.linalg.lstsq(x, rp, rcond=None)
        slopes.append(coef[0])
        explained.append(1.0 - float(((rp - x @ coef) ** 2).sum() / (rp**2).sum()))
    slope = np.mean(slopes, 0)
    return {"light_slope_r": float(slope[0]), "light_slope_g": float(slope[1]), "light_slope_b": float(slope[2]),
            "light_explained": float(np.mean(explained))}


#: σ (px of the 1080p frame) of the light :func:`flattened` divides out: larger than the strokes' bands
FLAT_SIGMA = 64.0


def flattened(frames: list[np.ndarray], precision: str, sigma: float = FLAT_SIGMA) -> list[np.ndarray]:
    """An intrinsic split at the painting (tried, not in farm): the network paints each frame divided by its
    relative light ℓ = lowpass(luma, ``sigma``) / its mean (the global part left to instance norm),
    and the painting is multiplied by ℓ again, so it follows a local light change linearly instead of with
    the network's own slope. It changes the look of every unevenly lit frame, still or not."""
    from farm.temporal.dis import base_layer

    net = flicker_size.stylizer("default", precision)
    out = []
    for frame in frames:
        luma = frame.astype(np.float32).mean(-1) / 255
        light = base_layer(luma, sigma)
        light = np.clip(light / light.mean(), 0.25, 4.0)[..., None]
        flat = np.clip(frame.astype(np.float32) / light + 0.5, 0, 255).astype(np.uint8)
        out.append(np.clip(net(flat[None])[0] * light, 0.0, 1.0))
    return out


# ---------------------------------------------------------------- variants of the temporal pass

def light_gain(current: np.ndarray, previous: np.ndarray, sigma: float, eps: float = 0.02,
               limit: float = 2.0) -> np.ndarray:
    """How much brighter ``current`` is than ``previous`` (float gray (H,W) in [0,1], on one grid), per pixel:
    the ratio of their Gaussian low-passes, clipped to [1/limit, limit]."""
    ratio = (lowpass(current, sigma) + eps) / (lowpass(previous, sigma) + eps)
    return np.clip(ratio, 1.0 / limit, limit)


class Lit(Coherence):
    """farm's blend with the warped history relit before it: multiplied by the change of the light between
    the warped previous frame and this one (:func:`light_gain` of the input's luma, or of the per-frame
    painting's), so the history's colours follow the light instead of lagging it. ``base``: the base band's
    strength (farm: 0.4); ``light``: with ``light_strength``, a third band below σ = ``light`` keeps that
    much history (none: the base band's)."""

    def __init__(self, options, *, base_sigma, source="input", light_sigma=27.0, base=None, light=None,
                 light_strength=0.0, local=False):
        super().__init__(options, base_sigma=base_sigma,
                         base_strength=base if base is not None else 0.4)
        self.source, self.light_sigma, self.light, self.light_strength = source, light_sigma, light, light_strength
        #: the gain's global part taken off (the network's instance norm undoes a global change of light)
        self.local = local

    def reset(self):
        super().reset()
        self.prev_stylized = None

    def step(self, frame_rgb, stylized):
        out = super().step(frame_rgb, stylized)
        self.prev_stylized = np.asarray(stylized, dtype=np.float32)
        return out

    def _blend(self, gray, stylized):
        import cv2

        from farm.temporal.dis import BOUNDARY_WEIGHT, base_layer, estimate_flow, reliability_mask

        scale = self.options.flow_scale
        bwd = estimate_flow(gray, self.prev_gray, scale=scale, engine=self.engine)
        fwd = estimate_flow(self.prev_gray, gray, scale=scale, engine=self.engine)
        mask = reliability_mask(fwd, bwd, boundary_weight=BOUNDARY_WEIGHT, entered=True)
        warped = warp(self.prev_out, bwd)
        if self.source is not None:
            if self.source == "input":
                cur, prev = gray.astype(np.float32) / 255, self.prev_gray.astype(np.float32) / 255
            else:
                cur = cv2.cvtColor(stylized, cv2.COLOR_RGB2GRAY)
                prev = cv2.cvtColor(self.prev_stylized, cv2.COLOR_RGB2GRAY)
            gain = light_gain(cur * mask, warp(prev, bwd) * mask, self.light_sigma)
            if self.local:
                gain /= (gain * mask).sum() / max(mask.sum(), 1.0)
            warped *= gain[..., None]
        s, b = self.options.strength, self.base_strength
        d = warped - stylized
        change = s * d - (s - b) * base_layer(d, self.base_sigma)
        if self.light is not None:
            change -= (b - self.light_strength) * base_layer(d, self.light)
        return stylized + mask[..., None] * change


#: name → (options, σ of the split) → a Coherence-like object with ``step``
VARIANTS = {
    "farm": lambda options, sigma: Coherence(options, base_sigma=sigma),
    "gain input": lambda o, sigma: Lit(o, base_sigma=sigma, light_sigma=3 * sigma),
    "gain input σ1x": lambda o, sigma: Lit(o, base_sigma=sigma, light_sigma=sigma),
    "gain input base 0.6": lambda o, sigma: Lit(o, base_sigma=sigma, light_sigma=3 * sigma, base=0.6),
    "gain input base 0.8": lambda o, sigma: Lit(o, base_sigma=sigma, light_sigma=3 * sigma, base=0.8),
    "gain painting": lambda o, sigma: Lit(o, base_sigma=sigma, source="painting", light_sigma=3 * sigma),
    "gain painting base 0.6": lambda o, sigma: Lit(o, base_sigma=sigma, source="painting", light_sigma=3 * sigma,
                                                   base=0.6),
    "3 bands 0.7/0.4": lambda o, sigma: Lit(o, base_sigma=sigma, source=None, base=0.7, light=3 * sigma,
                                            light_strength=0.4),
    "3 bands 0.7/0": lambda o, sigma: Lit(o, base_sigma=sigma, source=None, base=0.7, light=3 * sigma),
    "3 bands 0.4/0": lambda o, sigma: Lit(o, base_sigma=sigma, source=None, base=0.4, light=3 * sigma),
    "3 bands 0.4/0.7": lambda o, sigma: Lit(o, base_sigma=sigma, source=None, base=0.4, light=3 * sigma,
                                            light_strength=0.7),
    "3 bands 0.7/0.7": lambda o, sigma: Lit(o, base_sigma=sigma, source=None, base=0.7, light=3 * sigma,
                                            light_strength=0.7),
    **{f"gain local base {b}": (lambda o, sigma, b=b: Lit(o, base_sigma=sigma, light_sigma=3 * sigma, base=b,
                                                          local=True)) for b in (0.4, 0.6, 0.8)},
    **{f"gain local light {v}": (lambda o, sigma, v=v: Lit(o, base_sigma=sigma, light_sigma=3 * sigma, light=3 * sigma,
                                                           light_strength=v, local=True)) for v in (0.7, 0.9)},
}


def render(clip: suite.Clip, stylized: list[np.ndarray], variant: str, sigma: float) -> tuple[list[np.ndarray], float]:
    make = lambda options: VARIANTS[variant](options, sigma)  # noqa: E731
    t = time.process_time()
    seq = suite.sequential(TemporalOptions(), make)(clip.frames, stylized, clip.cuts)
    return seq, (time.process_time() - t) / len(clip.frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="lighting")
    parser.add_argument("--frames", type=int, default=10)
    parser.add_argument("--paintings", default="native,default")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"))
    parser.add_argument("--name", default="flicker_light")
    args = parser.parse_args()
    env = environment()
    rows = []
    for name in args.clips.split(","):
        clip = clip_of(name, args.frames)
        light = light_of(name, args.frames)
        rows.append({"clip": name, "painting": "input", "variant": "-",
                     **where([f.astype(np.float32) / 255 for f in clip.frames], clip, light)})
        for painting in args.paintings.split(","):
            stylized = (flattened(clip.frames, args.precision, float(painting.split()[1]))
                        if painting.startswith("flattened") else
                        flicker_size.paint(painting, clip.frames, args.precision)[0])
            sigma = BASE_SIGMA if painting == "native" else BASE_SIGMA * min(SIZE) / 360
            rows.append({"clip": name, "painting": painting, "variant": "per-frame", **where(stylized, clip, light),
                         **(light_response(stylized, clip) if light is not None else {})})
            if painting.startswith("flattened"):  # how far the look moved: against farm's per-frame painting, 0-255
                today = flicker_size.paint("default", clip.frames, args.precision)[0]
                rows[-1]["lowpass_levels_vs_default"] = 255 * lowfreq_deviation(stylized, today, 9.0)
            for variant in args.variants.split(","):
                seq, cpu = render(clip, stylized, variant, sigma)
                rows.append({"clip": name, "painting": painting, "variant": variant, **where(seq, clip, light),
                             "lowfreq_deviation": lowfreq_deviation(seq, stylized),
                             "lowfreq_deviation_9px": lowfreq_deviation(seq, stylized, 9.0),
                             "temporal_cpu_s_per_frame": cpu})
                print({k: (round(v, 6) if isinstance(v, float) else v) for k, v in rows[-1].items()}, flush=True)
            write_result(args.name, {"environment": env, "size": SIZE, "frames": args.frames, "rows": rows})
    keys = ["e_warp", "e_warp_strokes", "share_fine", "share_mid", "share_base", "share_light", "share_global",
            "e_warp_patch", "e_warp_rest", "lowfreq_deviation_9px", "temporal_cpu_s_per_frame", "light_slope_r",
            "light_slope_g", "light_explained", "lowpass_levels_vs_default"]
    print(table(["clip", "painting", "variant", *keys],
                [[r["clip"], r["painting"], r["variant"], *(f"{r[k]:.6f}" if k in r else "-" for k in keys)]
                 for r in rows], f"\n{SIZE[0]}x{SIZE[1]}, {args.frames} frames"))
    print(load_note(env))
    print(f"wrote {write_result(args.name, {'environment': env, 'size': SIZE, 'frames': args.frames, 'rows': rows})}")


if __name__ == "__main__":
    main()
