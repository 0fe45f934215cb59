"""Peak memory of the driver (the `farm submit` process) for a short and a ten-times-longer clip.

Run by hand (not in CI; about 10 minutes on 2 shared CPU cores with the defaults):

    .venv/bin/python bench/memory.py                          # 300 and 3000 frames, table + bench/results/memory.json
    .venv/bin/python bench/memory.py --frames 300,3000,6000 --size 128x80
    .venv/bin/python bench/memory.py --temporal               # with the temporal pass (slower)

The driver decodes the source as a stream and shards it into input chunks
while the actors render, with a bounded queue in between (README: "driver
memory does not grow with the film"); this checks it. Each clip is
generated with tests/clips.py ``make_clip`` (the moving test pattern; default
160x96, 24 fps, no audio) and rendered with the real CLI:

    farm submit CLIP --json --no-gif --no-temporal --store <fresh temp dir> --job-id mem-<frames>

``--no-temporal`` by default to keep the 3,000-frame render affordable (it
also drops the 12 warm-up frames per chunk); the driver does the same work
either way (the temporal pass runs in the actors). ``--temporal`` turns it on.

What is measured: the driver process's own peak resident set (VmHWM in
/proc/<pid>/status, the kernel's high-water mark, sampled every 50 ms until
exit), not its worker processes (nor, on a cluster, Ray's raylet and GCS), which are separate pids.
Also printed: its RSS at 25/50/75 % of the run and the growth from the short
to the long clip (should be ~0: noise of a few MiB is allocator slack).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, environment, farm_submit, load_note, mib, table, write_result  # noqa: E402


def make(path: Path, frames: int, width: int, height: int) -> Path:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.clips import make_clip

    return make_clip(path, frames=frames, width=width, height=height)


def rss_at(timeline: list[tuple[float, int]], fraction: float) -> int:
    if not timeline:
        return 0
    end = timeline[-1][0]
    return next((rss for t, rss in timeline if t >= fraction * end), timeline[-1][1])


def one(frames: int, width: int, height: int, temporal: bool, tmp: Path) -> dict:
    clip = make(tmp / f"pattern_{frames}.mp4", frames, width, height)
    extra = [] if temporal else ["--no-temporal"]
    result = farm_submit(clip, tmp / f"work-{frames}", job_id=f"mem-{frames}", extra=extra, rss=True)
    timeline = result["rss_timeline"]
    return {"frames": frames, "size": [width, height], "temporal": temporal, "wall_s": result["wall_s"],
            "chunks": result["json"]["chunks"], "peak_rss": result["peak_rss"],
            "rss_25": rss_at(timeline, 0.25), "rss_50": rss_at(timeline, 0.5), "rss_75": rss_at(timeline, 0.75),
            "rss_last": timeline[-1][1] if timeline else 0, "samples": len(timeline),
            "timeline_every_s": [(t, r) for i, (t, r) in enumerate(timeline) if i % 20 == 0],
            "stages": result["json"]["stages"], "cmd": result["cmd"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="300,3000", help="comma-separated clip lengths")
    parser.add_argument("--size", default="160x96", help="WIDTHxHEIGHT of the synthetic clips")
    parser.add_argument("--temporal", action="store_true", help="keep the temporal pass on")
    args = parser.parse_args()
    width, height = map(int, args.size.lower().split("x"))
    env = environment()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        for frames in map(int, args.frames.split(",")):
            print(f"  rendering {frames} frames ...", file=sys.stderr, flush=True)
            runs.append(one(frames, width, height, args.temporal, Path(tmp)))
    rows = [[f"{r['frames']} frames {width}x{height}", r["chunks"], r["wall_s"], mib(r["rss_25"]), mib(r["rss_50"]),
             mib(r["rss_75"]), mib(r["peak_rss"])] for r in runs]
    print(table(["clip", "chunks", "wall s", "RSS @25% MiB", "RSS @50% MiB", "RSS @75% MiB", "peak RSS MiB"], rows,
                "driver process (farm submit) resident memory, worker processes excluded"
                + ("" if args.temporal else "; --no-temporal")))
    growth = runs[-1]["peak_rss"] - runs[0]["peak_rss"]
    ratio = runs[-1]["frames"] / runs[0]["frames"]
    print()
    print(f"peak growth from {runs[0]['frames']} to {runs[-1]['frames']} frames ({ratio:.0f}x longer): "
          f"{mib(growth):+.1f} MiB ({100 * growth / runs[0]['peak_rss']:+.1f} %)")
    print(load_note(env))
    path = write_result("memory", {"environment": env, "args": vars(args), "runs": runs,
                                   "peak_growth_bytes": growth, "cmdline": sys.argv})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
