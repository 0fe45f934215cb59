"""A whole job with stream-copied input chunks against lossless x264 ones (issue 17/18: cheaper input chunks).

    python bench/copy_submit.py [--clips bikes bbb360] [--repeats 3] [--frames-360 150]

Each run is ``farm submit CLIP --json --no-gif`` into a fresh store, as on a machine with no cluster (its own
worker processes, Ray hidden), with or without ``--no-stream-copy``, the two taking turns; medians of the
wall time (start-up, shard, render, reduce, all of it) and of the stages farm reports. bbb360 is
bigbuckbunny scaled to 640x360 with a sound track (bench/common.py: lossless x264 with x264's default
keyframe interval, so one GOP). Results: bench/results/copy_submit.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import environment, farm_submit, load_note, median, sample, scaled_clip_with_sound, table, write_result

MODES = {"copy": (), "x264": ("--no-stream-copy",)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", nargs="+", default=["bikes", "bbb360"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames-360", type=int, default=150)
    parser.add_argument("--extra", nargs="*", default=[], help="more farm submit options, e.g. --precision float32")
    parser.add_argument("--name", default="copy_submit", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    env = environment()
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="farm-bench-copy-") as tmp:
        clips = {"bikes": sample("bikes")} if "bikes" in args.clips else {}
        if "bbb360" in args.clips:
            clips["bbb360"] = scaled_clip_with_sound(sample("bigbuckbunny"), Path(tmp) / "bbb360.mp4", 640, 360,
                                                     args.frames_360)
        for repeat in range(args.repeats):
            for clip, path in clips.items():
                for mode, extra in MODES.items():
                    tag = f"{clip}-{mode}-{repeat}"
                    run = farm_submit(path, Path(tmp) / tag, job_id=tag, extra=[*extra, *args.extra],
                                      env={"RAY_TMPDIR": str(Path(tmp) / "no-ray")})
                    one = {"wall_s": run["wall_s"], "stages": run["json"]["stages"],
                           "chunks": run["json"]["chunks"], "load": os.getloadavg()[0]}
                    results.setdefault(clip, {}).setdefault(mode, []).append(one)
                    print(f"repeat {repeat}: {clip} {mode}: {one['wall_s']:.1f} s, stages {one['stages']} "
                          f"(load {one['load']:.1f})", flush=True)
    rows = []
    for clip, modes in results.items():
        for mode, runs in modes.items():
            stages = sorted({k for r in runs for k in r["stages"]})
            rows.append([clip, mode, f"{median(r['wall_s'] for r in runs):.1f}",
                         " ".join(f"{r['wall_s']:.1f}" for r in runs),
                         ", ".join(f"{k} {median(r['stages'].get(k, 0.0) for r in runs):.2f}" for k in stages)])
    print(table(["clip", "input chunks", "median wall s", "runs (s)", "median stages (s)"], rows))
    print(load_note(env))
    print(f"wrote {write_result(args.name, {'environment': env, 'extra': args.extra, 'runs': results})}")


if __name__ == "__main__":
    main()
