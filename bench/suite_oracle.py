"""Where the suite's remaining flicker comes from: farm's blend with its own flow and mask, and with the
exact flow and/or the exact mask of the known-motion clips swapped in (bench/README, "flicker.py --suite").

    .venv/bin/python bench/suite_oracle.py [CLIP,CLIP...]

Per clip it prints: per-frame E_warp; farm's ratio and lowfreq deviation; the share of visible pixels
farm's blend mask drops and the share of the render's E_warp they hold; then ratio / lowfreq with the
exact flow and mask, with the exact flow and farm's mask, and with farm's flow and the exact mask.
Uses the suite's cached network output (run flicker.py --suite first).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flicker  # noqa: E402
import suite  # noqa: E402

from farm.config import TemporalOptions  # noqa: E402
from farm.metrics import lowfreq_deviation  # noqa: E402
from farm.temporal import blend_bands, estimate_flow, reliability_mask, to_gray, warp  # noqa: E402
from farm.temporal.dis import BASE_STRENGTH, BOUNDARY_WEIGHT  # noqa: E402


def farm_mask(g0: np.ndarray, g1: np.ndarray) -> np.ndarray:
    return reliability_mask(estimate_flow(g0, g1), estimate_flow(g1, g0), boundary_weight=BOUNDARY_WEIGHT,
                            entered=True)


def render(clip: suite.Clip, stylized: list[np.ndarray], exact_flow: bool, exact_mask: bool) -> list[np.ndarray]:
    options = TemporalOptions()
    out = [stylized[0]]
    for t in range(1, len(stylized)):
        flow, mask = clip.pairs[t - 1]
        g1, g0 = to_gray(clip.frames[t]), to_gray(clip.frames[t - 1])
        flow = flow if exact_flow else estimate_flow(g1, g0)
        mask = mask if exact_mask else farm_mask(g0, g1)
        blended = blend_bands(stylized[t], warp(out[-1], flow.astype(np.float32)), mask.astype(np.float32),
                              options.strength, min(options.strength, BASE_STRENGTH))
        out.append(np.clip(blended, 0, 1))
    return out


def main() -> None:
    names = sys.argv[1].split(",") if len(sys.argv) > 1 else None
    for clip in suite.known_clips(suite.FRAMES, names):
        stylized = suite.stylize(flicker.stylizer_for, clip.frames)
        per_frame = suite.mean(suite.pair_terms(stylized, clip.pairs))
        ours = render(clip, stylized, False, False)
        dropped, held, total = [], 0.0, 0.0
        for t in range(1, len(ours)):
            flow, visible = clip.pairs[t - 1]
            mask = farm_mask(to_gray(clip.frames[t - 1]), to_gray(clip.frames[t]))
            err = ((ours[t] - warp(ours[t - 1], flow)) ** 2).mean(-1) * visible
            held, total = held + float((err * (mask == 0)).sum()), total + float(err.sum())
            dropped.append(float(((mask == 0) * visible).sum() / max(visible.sum(), 1)))
        cells = [f"{per_frame:.4f}", f"{suite.mean(suite.pair_terms(ours, clip.pairs)) / per_frame:.4f}",
                 f"{lowfreq_deviation(ours, stylized):.4f}", f"{np.mean(dropped):.4f}", f"{held / total:.3f}"]
        for exact_flow, exact_mask in ((True, True), (True, False), (False, True)):
            out = render(clip, stylized, exact_flow, exact_mask)
            cells += [f"{suite.mean(suite.pair_terms(out, clip.pairs)) / per_frame:.4f}",
                      f"{lowfreq_deviation(out, stylized):.4f}"]
        print(clip.name, *cells, flush=True)


if __name__ == "__main__":
    main()
