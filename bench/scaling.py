"""Frames per second with one 2-thread style worker and with two 1-thread workers, and where the time goes.

Run by hand (never in CI):

    .venv/bin/python bench/scaling.py [--frames 96] [--size 320x240] [--chunk 24] [--repeats 3]

Each render is the real CLI (`farm submit --json --workers N`) with a fresh store, on a machine with no
cluster (farm's own worker processes), so start-up counts. On 2 CPUs `--workers 1` gives its worker both
threads and `--workers 2` one each (farm/schedule.py): this is the measurement behind farm's default of
1-thread workers on small machines. The two take turns in each repeat; medians. Writes
bench/results/scaling.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, environment, farm_submit, load_note, median, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))

from tests.clips import make_clip  # noqa: E402

WORKERS = (1, 2)


def render(clip: Path, workers: int, chunk: int, scratch: Path, run: int) -> dict:
    """One `farm submit` with ``workers`` style workers: wall seconds, frames/s and the summed stage seconds."""
    job = f"scaling-w{workers}-r{run}"
    result = farm_submit(clip, scratch / job, job_id=job,
                         extra=["--workers", str(workers), "--chunk-frames", str(chunk)])
    report = result["json"]
    return {"workers": workers, "run": run, "wall_s": result["wall_s"],
            "fps": report["frames"] / result["wall_s"], "stages": report["stages"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--size", default="320x240")
    parser.add_argument("--chunk", type=int, default=24)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    env = environment()
    width, height = map(int, args.size.split("x"))
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-scaling-") as tmp:
        clip = make_clip(Path(tmp) / "clip.mp4", frames=args.frames, width=width, height=height)
        for run in range(args.repeats):
            order = WORKERS if run % 2 == 0 else WORKERS[::-1]  # take turns: neither always runs first
            for workers in order:
                runs.append(render(clip, workers, args.chunk, Path(tmp), run))
                print(f"run {run}: {workers} worker(s) {runs[-1]['wall_s']:.1f} s", flush=True)
    rows = []
    for workers in WORKERS:
        mine = [r for r in runs if r["workers"] == workers]
        stages = sorted({s for r in mine for s in r["stages"]})
        rows.append({"workers": workers, "wall_s": median(r["wall_s"] for r in mine),
                     "fps": median(r["fps"] for r in mine),
                     "stages": {s: median(r["stages"].get(s, 0.0) for r in mine) for s in stages}})
    stages = sorted({s for row in rows for s in row["stages"]})
    print(table(["workers", "wall s", "frames/s", *stages],
                [[r["workers"], r["wall_s"], r["fps"], *(r["stages"].get(s, 0.0) for s in stages)] for r in rows],
                f"\n{args.frames} frames {width}x{height}, chunks of {args.chunk}, medians of {args.repeats}; "
                "stage seconds are summed over workers"))
    print(load_note(env))
    print(f"wrote {write_result('scaling', {'environment': env, 'args': vars(args), 'rows': rows, 'runs': runs})}")


if __name__ == "__main__":
    main()
