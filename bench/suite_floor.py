"""What the suite's Farneback scoring allows: how far the real clips' ratios (bikes, bigbuckbunny) are from
what a render could reach when the metric's own flow is what it is (bench/README, "flicker.py --suite").

    .venv/bin/python bench/suite_floor.py [--tag T]

Per clip, every ratio over the per-frame stylization's E_warp on the same pairs and scoring:

- ``input``: the input frames' own E_warp (RGB in [0, 1]) — what footage that is consistent under its true
  motion, up to noise, compression and lighting, scores;
- on the known-motion clips, also scored with Farneback as the real clips are: ``consistent`` — a render
  that is consistent under the *exact* motion (out_t = warp(out_{t−1}) along the exact flow where visible,
  the per-frame stylization where not; exact ratio ≈ 0 up to bilinear resampling) — is the metric's floor
  from Farneback's own errors; and farm's render (the ``cuts`` variant) under both scorings, so the
  Farneback/exact factor on clips where both are known.

Uses the suite's cached network output (run flicker.py --suite first); results in
bench/results/suite_floor[_T].json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import flicker  # noqa: E402
import suite  # noqa: E402
from common import environment, load_note, table, write_result  # noqa: E402

from farm.temporal import warp  # noqa: E402
from farm.temporal.cuts import detect_cuts  # noqa: E402


def consistent(stylized: list[np.ndarray], pairs: suite.Pairs) -> list[np.ndarray]:
    """Consistent under the given (exact) motion: visible pixels carried along the flow, the rest repainted."""
    out = [stylized[0]]
    for t in range(1, len(stylized)):
        flow, visible = pairs[t - 1]
        m = (visible > 0)[..., None]
        out.append(np.where(m, warp(out[-1], flow.astype(np.float32)), stylized[t]))
    return out


def farneback_scoring(frames: list[np.ndarray]) -> suite.Pairs:
    """The real clips' scoring (Farneback, forward–backward, entering pixels out, pairs across a cut empty)."""
    cuts = detect_cuts(frames)
    return [(f, np.zeros_like(m) if t + 1 in cuts else m) for t, (f, m) in enumerate(suite.farneback_pairs(frames))]


def ratio(outputs: list[np.ndarray], stylized: list[np.ndarray], pairs: suite.Pairs) -> float:
    return suite.mean(suite.pair_terms(outputs, pairs)) / suite.mean(suite.pair_terms(stylized, pairs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tag", default="")
    parser.add_argument("--frames", type=int, default=suite.FRAMES)
    args = parser.parse_args()
    env = environment()
    farm = suite.VARIANTS["cuts"]()
    rows = []
    for clip in suite.known_clips(args.frames) + suite.real_clips(args.frames):
        stylized = suite.stylize(flicker.stylizer_for, clip.frames)
        inputs = [f.astype(np.float32) / 255 for f in clip.frames]
        ours = farm.sequential(clip.frames, stylized, clip.cuts)
        row = {"clip": clip.name, "truth": clip.truth, "input": ratio(inputs, stylized, clip.pairs),
               "farm": ratio(ours, stylized, clip.pairs)}
        if clip.truth == "exact":
            fb = farneback_scoring(clip.frames)
            row.update({"input_farneback": ratio(inputs, stylized, fb),
                        "consistent_exact": ratio(consistent(stylized, clip.pairs), stylized, clip.pairs),
                        "consistent_farneback": ratio(consistent(stylized, clip.pairs), stylized, fb),
                        "farm_farneback": ratio(ours, stylized, fb)})
        rows.append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    cols = ["input", "farm", "input_farneback", "consistent_exact", "consistent_farneback", "farm_farneback"]
    print(table(["clip", "scored with", *cols], [[r["clip"], r["truth"], *[r.get(c, "-") for c in cols]] for r in rows],
                "\nE_warp / per-frame stylization's (the clip's own scoring; then the known-motion clips under Farneback)"))
    print(load_note(env))
    name = "suite_floor" + (f"_{args.tag}" if args.tag else "")
    print(f"wrote {write_result(name, {'environment': env, 'frames': args.frames, 'rows': rows})}")


if __name__ == "__main__":
    main()
