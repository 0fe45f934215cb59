"""Torch TV-L1 flow vs OpenCV DIS: flow accuracy, flicker of a full render, and the temporal pass's cost.

Run by hand (not in CI; ~10 min on 2 busy CPU cores, more with --sweep):

    .venv/bin/python bench/flow_quality.py                 # quality on the known-motion clips + timings
    .venv/bin/python bench/flow_quality.py --sweep         # also TV-L1 variants (quality and cost)
    .venv/bin/python bench/flow_quality.py --no-quality    # timings only

Quality, on the known-motion clips of tests/motion.py (pan, zoom+rotate, two
discs crossing with occlusion, fast pan; 48 frames of 320x240 each), for DIS
(medium, scale 0.5: farm's dis.Coherence) and the torch flow (tvl1, scale 0.5):

- EPE: mean endpoint error of the backward flow against the true motion, over
  the pixels visible in both frames;
- a full render through bench/flicker.py's machinery: the real network's
  per-frame stylization (style 19), then dis.Coherence and DeviceCoherence
  (batches of 8, as a worker would call it); E_warp with the *true* flow and
  visibility (so neither flow scores itself), its ratio to per-frame
  stylization's, and the low-frequency deviation (σ = 3 px) from the per-frame
  stylization (blur and ghosts lower E_warp too; this shows them).

Timing, at 1920x1080 and 640x272 on tests.clips.pattern frames (as bench/gpu.py
--flow-only): one dis.Coherence.step (2 DIS flows + mask + warp + blend) vs one
DeviceCoherence.step and a DeviceCoherence.step_batch of 4 frames per frame,
alternating, median of --reps; natively and, in a child process, with
ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2. All temporal maths is float32
(--precision concerns the network only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, environment, load_note, table, write_result  # noqa: E402

sys.path.insert(0, str(ROOT))
import flicker  # noqa: E402
import torch  # noqa: E402

from farm.config import TemporalOptions  # noqa: E402
from farm.temporal import dis, tvl1  # noqa: E402
from farm.temporal.device_coherence import DeviceCoherence  # noqa: E402
from tests.motion import CLIPS, endpoint_error  # noqa: E402

SIZES = {"1080p": (1920, 1080), "640x272": (640, 272)}
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
BATCH = 8


def tensor(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames))


def flow_epe(frames: list[np.ndarray], truth: list[tuple[np.ndarray, np.ndarray]], **tv) -> dict:
    """Mean EPE (px) of DIS and of tvl1 (with ``tv`` overrides) over the clip's pairs."""
    gray = [dis.to_gray(f) for f in frames]
    scale = tv.pop("scale", 0.5)
    bwd = tvl1.estimate_flow(tensor(frames[1:]), tensor(frames[:-1]), scale=scale, **tv).permute(0, 2, 3, 1).numpy()
    d = [endpoint_error(dis.estimate_flow(g, p, scale=0.5), f, m) for g, p, (f, m) in zip(gray[1:], gray, truth)]
    t = [endpoint_error(b, f, m) for b, (f, m) in zip(bwd, truth)]
    return {"epe_dis": float(np.mean(d)), "epe_torch": float(np.mean(t))}


def device_render(frames, stylized, options=None, **tv) -> list[np.ndarray]:
    """DeviceCoherence over the clip in batches of :data:`BATCH`, with tvl1 keyword overrides."""
    scale = tv.pop("scale", None)
    options = options or TemporalOptions(**({"flow_scale": scale} if scale else {}))
    flow = (lambda s, d, scale: tvl1.estimate_flow(s, d, scale=scale, **tv)) if tv else tvl1.estimate_flow
    coherence = DeviceCoherence(options, flow=flow)
    s = torch.from_numpy(np.stack(stylized)).permute(0, 3, 1, 2)
    f = tensor(frames)
    out = [coherence.step_batch(f[i:i + BATCH], s[i:i + BATCH]) for i in range(0, len(frames), BATCH)]
    return list(torch.cat(out).permute(0, 2, 3, 1).numpy())


def quality(clip_names: list[str], frames_n: int, variants: dict[str, dict]) -> list[dict]:
    rows = []
    for name in clip_names:
        clip = CLIPS[name](frames=frames_n)
        frames, truth = clip.all_frames(), clip.all_flows()
        stylized, network_s = flicker.stylize_all(frames)
        per_frame, _ = flicker.measure("per-frame", lambda: stylized, stylized, truth, network_s)
        modes = [("DIS medium 0.5", {}, lambda: flicker.farm_coherence(frames, stylized, TemporalOptions()))]
        modes += [(f"torch {v}", kw, lambda kw=kw: device_render(frames, stylized, **dict(kw)))
                  for v, kw in variants.items()]
        for mode, kw, run in modes:
            row, _ = flicker.measure(mode, run, stylized, truth, network_s)
            epe = flow_epe(frames, truth, **dict(kw))
            rows.append({"clip": name, "mode": mode, "params": kw, "e_warp": row["e_warp"],
                         "ratio": row["e_warp"] / per_frame["e_warp"], "lowfreq_deviation": row["lowfreq_deviation"],
                         "epe": epe["epe_dis"] if mode.startswith("DIS") else epe["epe_torch"],
                         "temporal_seconds": row["temporal_seconds"], "e_warp_per_frame": per_frame["e_warp"]})
            print(f"{name:<12} {mode:<28} EPE {rows[-1]['epe']:.3f}  E_warp ratio {rows[-1]['ratio']:.3f}  "
                  f"lowfreq dev {rows[-1]['lowfreq_deviation']:.4f}  {row['temporal_seconds']:.1f} s", flush=True)
    return rows


def timings(reps: int, batch: int = 4) -> dict:
    """ms per frame of the temporal pass, DIS vs torch, at each size; runs alternate, medians reported."""
    from tests.clips import pattern

    import cv2

    out = {"torch_threads": torch.get_num_threads(), "cv2_threads": cv2.getNumThreads(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability()}
    for label, (w, h) in SIZES.items():
        frames = [pattern(i, w, h) for i in range(batch + 1)]
        styled = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)
        styled_t = torch.from_numpy(styled).permute(2, 0, 1)

        def dis_step():
            c = dis.Coherence(TemporalOptions())
            c.step(frames[0], styled)
            t0 = time.perf_counter()
            c.step(frames[1], styled)
            return time.perf_counter() - t0

        def torch_step():
            c = DeviceCoherence(TemporalOptions())
            c.step(torch.from_numpy(frames[0]), styled_t)
            t0 = time.perf_counter()
            c.step(torch.from_numpy(frames[1]), styled_t)
            return time.perf_counter() - t0

        def torch_batch():
            c = DeviceCoherence(TemporalOptions())
            c.step(torch.from_numpy(frames[0]), styled_t)
            f, s = tensor(frames[1:]), styled_t[None].expand(batch, -1, -1, -1)
            t0 = time.perf_counter()
            c.step_batch(f, s)
            return (time.perf_counter() - t0) / batch

        with torch.inference_mode():
            fns = {"dis_step_ms": dis_step, "torch_step_ms": torch_step, f"torch_batch{batch}_ms_per_frame": torch_batch}
            for fn in fns.values():  # warm-up
                fn()
            times = {k: [] for k in fns}
            for _ in range(reps):
                for key, fn in fns.items():
                    times[key].append(1000 * fn())
        out[label] = {k: {"median": statistics.median(v), "runs": v} for k, v in times.items()}
        print(f"{label}: " + ", ".join(f"{k} {statistics.median(v):.0f}" for k, v in times.items()), flush=True)
    return out


def child_timings(reps: int, env: dict) -> dict:
    """:func:`timings` in a fresh interpreter with ``env`` (the ISA is fixed when torch loads)."""
    cmd = [sys.executable, __file__, "--timings-child", "--reps", str(reps), "--threads", str(torch.get_num_threads())]
    result = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


SWEEP = {
    "w2 i10": {"warps": 2, "iterations": 10},
    "w3 i10": {"warps": 3, "iterations": 10},
    "w5 i30": {"warps": 5, "iterations": 30},
    "lambda 0.08": {"lam": 0.08},
    "lambda 0.3": {"lam": 0.3},
    "no median": {"median": False},
    "scale 0.25": {"scale": 0.25},
    "scale 1.0": {"scale": 1.0},
}


def summary(rows: list[dict]) -> list[list]:
    """Per torch variant: worst and mean of (E_warp ratio / DIS's) over the clips, mean EPE."""
    dis_ratio = {r["clip"]: r["ratio"] for r in rows if r["mode"].startswith("DIS")}
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        mine = [r for r in rows if r["mode"] == mode]
        rel = [r["ratio"] / dis_ratio[r["clip"]] for r in mine]
        out.append([mode, max(rel), float(np.mean(rel)), float(np.mean([r["epe"] for r in mine])),
                    max(r["epe"] for r in mine), float(np.mean([r["lowfreq_deviation"] for r in mine]))])
    return out


def results_name(args) -> str:
    """flow_quality.json for a full run; a partial run writes beside it, never over it."""
    if args.no_quality:
        return f"flow_quality_timings_t{torch.get_num_threads()}"
    return "flow_quality" + ("_sweep" if args.sweep else "") + ("_no_timings" if args.no_timings else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sweep", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--no-timings", action="store_true")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch and OpenCV threads (default: theirs); on a loaded machine 2 OpenMP threads "
                             "can be 20x slower than 1 (measured: a 10-pair flow 1.0 s vs 20-34 s at load 9)")
    parser.add_argument("--timings-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        import cv2

        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
    if args.timings_child:
        print(json.dumps(timings(args.reps)))
        return
    env = environment()
    result: dict = {"environment": env, "tvl1": {k: getattr(tvl1, k) for k in
                                                   ("LAMBDA", "THETA", "TAU", "WARPS", "ITERATIONS", "MAX_LEVELS")}}
    if not args.no_quality:
        variants = {"tvl1 (defaults)": {}, **(SWEEP if args.sweep else {})}
        rows = quality(args.clips.split(","), args.frames, variants)
        result["quality"] = rows
        print(table(["clip", "flow", "EPE px", "E_warp", "/ per-frame", "lowfreq dev"],
                    [[r["clip"], r["mode"], r["epe"], r["e_warp"], r["ratio"], r["lowfreq_deviation"]] for r in rows],
                    f"\nknown-motion clips, {args.frames} frames 320x240, E_warp with the true motion"))
        result["summary"] = summary(rows)
        print(table(["flow", "worst ratio/DIS", "mean ratio/DIS", "mean EPE", "worst EPE", "mean lowfreq dev"],
                    result["summary"], "\nover all clips (E_warp ratio relative to DIS's on the same clip)"))
    if not args.no_timings:
        result["timings"] = {"native": timings(args.reps), "avx2": child_timings(args.reps, AVX2)}
        rows = [[label, isa, t["dis_step_ms"]["median"], t["torch_step_ms"]["median"], t["torch_batch4_ms_per_frame"]["median"]]
                for isa, by_size in result["timings"].items() for label, t in by_size.items() if label in SIZES]
        print(table(["size", "ISA", "DIS Coherence.step ms", "torch step ms", "torch step_batch(4) ms/frame"], rows,
                    f"\ntemporal pass per frame on the CPU ({env['torch_threads']} torch threads, median of {args.reps})"))
    print(load_note(env))
    print(f"wrote {write_result(results_name(args), result)}")


if __name__ == "__main__":
    main()
