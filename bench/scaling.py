"""Frames per second with 1 and 2 style workers on this machine, and where the time goes.

Run by hand (never in CI):  .venv/bin/python bench/scaling.py [--frames 96] [--size 320x240]
Each run is the real CLI (`farm submit --json`) with a fresh store, so Ray start-up counts.
Writes bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.clips import make_clip  # noqa: E402


def render(clip: Path, workers: int, chunk: int, scratch: Path) -> dict:
    out = scratch / f"w{workers}"
    cmd = [sys.executable, "-m", "farm.cli", "submit", str(clip), "--json", "--no-gif", "--workers", str(workers),
           "--chunk-frames", str(chunk), "--store", str(out / "store"), "-o", str(out / "out.mp4")]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    report = json.loads(done.stdout)
    report["wall_s"] = time.perf_counter() - t0
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--chunk", type=int, default=24)
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", frames=args.frames, width=width, height=height)
        for workers in (1, 2):
            report = render(clip, workers, args.chunk, Path(tmp))
            rows.append({"workers": workers, "wall_s": round(report["wall_s"], 2),
                         "fps": round(args.frames / report["wall_s"], 3), "stages": report["stages"]})
    stages = sorted({s for row in rows for s in row["stages"]})
    print(f"{args.frames} frames {width}x{height}, chunks of {args.chunk}; stage seconds are summed over actors")
    print(f"{'workers':>7} {'wall s':>8} {'fps':>7} " + " ".join(f"{s:>9}" for s in stages))
    for row in rows:
        print(f"{row['workers']:>7} {row['wall_s']:>8.1f} {row['fps']:>7.3f} "
              + " ".join(f"{row['stages'].get(s, 0.0):>9.2f}" for s in stages))
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "scaling.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
