"""GPU throughput of the style network, against what the hardware allows, and whether the rest keeps up.

Run by hand on a CUDA node (not in CI; a few minutes on one H100):

    python bench/gpu.py                      # everything below; bench/results/gpu.json
    python bench/gpu.py --flops-only         # the analytic FLOP/byte count only (runs on CPU too)
    python bench/gpu.py --flow-only          # only the CPU optical-flow timings (runs on CPU too)
    python bench/gpu.py --no-pipeline        # skip the `farm submit` run

Without CUDA (and without --flops-only / --flow-only) it says so and exits 0.

1. Work per frame, counted analytically on ``farm.styles.multistyle.MultiStyleNet``
   run on the ``meta`` device (shapes only, no arithmetic): every conv layer's
   MACs = H_out·W_out·C_out·C_in·k·k (FLOPs = 2·MACs; the norms, ReLUs, pads
   and adds are under 1 % of the FLOPs and left out), and the bytes moved:
   "eager" = every aten op reading its tensor inputs and writing its outputs
   once (views excluded: what PyTorch's eager mode moves at best), and "fused"
   = each conv reading its input and writing its output once (pad, norm,
   ReLU, add, upsample folded into the convs: what a fully fused kernel
   chain would move). Bytes scale with the activation dtype (4 or 2 bytes).
2. Device peaks: a table keyed by device name (datasheet, dense) and measured
   here (an 8192³ matmul in fp32/TF32/fp16/bf16, a 1 GiB device copy).
3. Network frames/s at 720p, 1080p, 2160p × fp32 (cuDNN's TF32 allowed, as
   PyTorch's default), fp16 and bf16 autocast, and fp16 weights (what farm's
   Stylizer does on CUDA: ``.half()``), channels_last, batch 1/2/4/8/16; input
   already on the device; warm-up, then timed between torch.cuda.synchronize.
   Each row prints the roofline floor (max of FLOPs/peak and bytes/bandwidth,
   eager and fused) against the achieved time per frame.
4. OpenCV DIS flow (CPU, farm.temporal.estimate_flow, the preset farm uses)
   at 1080p with scale 1, 0.5 (farm's default) and 0.25, and one full
   ``Coherence.step``: does the temporal pass keep up with the GPU?
5. The pipeline: ``farm submit`` of a synthetic 1080p clip (tests/clips.py)
   with one GPU actor (``--workers 1``): frames/s end to end, and its stages;
   on a machine with several GPUs, the same with 1, 2, … N workers (scaling).
6. One worker, at 720p / 1080p / 2160p (``--worker-only`` runs just this;
   ``--device cpu`` smoke-tests it on a CPU): network-only frames/s (frames
   already on the device), temporal-only frames/s (farm's torch flow: two
   flows, mask, warp, two-band blend per frame), the whole worker's frames/s
   with coherence on (``StyleWorker.render`` of one chunk from a local store:
   decode, upload, network, temporal pass, download, encode, overlapped), the
   CPU core-seconds per frame the worker process spent meanwhile (user +
   system time of every thread), which encoder ``--codec auto`` chose, and the
   peak GPU memory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, environment, farm_submit, load_note, table, write_result  # noqa: E402

#: "small" only smoke-tests the script on a CPU (``--worker-only --device cpu --res small``)
RESOLUTIONS = {"small": (136, 240), "720p": (720, 1280), "1080p": (1080, 1920), "2160p": (2160, 3840)}
BATCHES = (1, 2, 4, 8, 16)
DEVICE = "cuda"  # a constant so the code paths can be smoke-tested on "cpu" with tiny sizes

#: datasheet peaks (dense, no sparsity): FLOP/s for fp32 (CUDA cores), tf32 and fp16/bf16 (tensor cores), bytes/s
PEAKS = {
    "H100 PCIe": {"fp32": 51.2e12, "tf32": 378e12, "fp16": 756e12, "bw": 2.0e12},
    "H100 NVL": {"fp32": 60e12, "tf32": 417e12, "fp16": 835e12, "bw": 3.9e12},
    "H100": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12, "bw": 3.35e12},  # SXM5 (HBM3)
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12, "bw": 4.8e12},
    "A10G": {"fp32": 31.2e12, "tf32": 62.5e12, "fp16": 125e12, "bw": 600e9},  # A10 datasheet; AWS's A10G is close
    "L4": {"fp32": 30.3e12, "tf32": 60e12, "fp16": 121e12, "bw": 300e9},
}


# ------------------------------------------------------------------ 1. work per frame


def count_work(height: int, width: int) -> dict:
    """FLOPs (conv MACs x 2) and bytes per frame (fp32 activations), from a meta-device run."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    from farm.styles.multistyle import MULTIPLE, ConvLayer, MultiStyleNet

    h, w = -(-height // MULTIPLE) * MULTIPLE, -(-width // MULTIPLE) * MULTIPLE  # farm reflect-pads to 4
    net = MultiStyleNet().to("meta")
    layers = []

    def hook(module, inputs, output, name):
        layers.append({"layer": name, "in": tuple(inputs[0].shape), "out": tuple(output.shape),
                       "k": module.w.shape[-1], "stride": module.stride})

    handles = [m.register_forward_hook(lambda mod, i, o, name=n: hook(mod, i, o, name))
               for n, m in net.named_modules() if isinstance(m, ConvLayer)]
    views = ("view", "detach", "alias", "unsqueeze", "squeeze", "expand", "empty", "t.default", "permute",
             "slice", "select", "_unsafe_view", "as_strided", "lift_fresh")

    class Bytes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.by_op: dict[str, int] = {}

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = str(func).removeprefix("aten.")
            if not any(name.startswith(v) or f".{v}" in name for v in views):
                tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
                self.by_op[name] = self.by_op.get(name, 0) + sum(t.numel() * t.element_size() for t in tensors)
            return out

    with Bytes() as mode:
        net(torch.empty(1, 3, h, w, device="meta"), torch.empty(26, device="meta"))
    for handle in handles:
        handle.remove()
    previous = None
    for layer in layers:
        _, cin, hi, wi = layer["in"]
        _, cout, ho, wo = layer["out"]
        layer["macs"] = ho * wo * cout * cin * layer["k"] ** 2
        # fused: read the previous conv's output (before any ×2 upsample: folded into the read), write this
        # one's output; the second conv of a residual block also reads the block's input (the skip)
        read = previous if previous is not None else cin * hi * wi
        skip = cout * ho * wo if layer["layer"].startswith("res.") and layer["layer"].endswith(".1") else 0
        layer["fused_bytes"] = 4 * (read + skip + cout * ho * wo)
        previous = cout * ho * wo
    macs = sum(layer["macs"] for layer in layers)
    fused = sum(layer["fused_bytes"] for layer in layers)
    eager = sum(mode.by_op.values())
    return {"height": height, "width": width, "padded": [h, w], "layers": layers, "macs": macs, "flops": 2 * macs,
            "eager_bytes_fp32": eager, "fused_bytes_fp32": fused, "eager_bytes_by_op": mode.by_op}


def print_work(works: dict[str, dict]) -> None:
    first = next(iter(works.values()))
    rows = [[layer["layer"], f"{layer['in'][1]}x{layer['in'][2]}x{layer['in'][3]}",
             f"{layer['out'][1]}x{layer['out'][2]}x{layer['out'][3]}", f"{layer['k']}x{layer['k']}/{layer['stride']}",
             layer["macs"] / 1e9, 100 * layer["macs"] / first["macs"]] for layer in first["layers"]]
    print(table(["conv layer", "in CxHxW", "out CxHxW", "kernel/stride", "GMACs", "% of MACs"], rows,
                f"conv layers at {first['width']}x{first['height']} (per frame)"))
    print()
    rows = [[name, f"{w['width']}x{w['height']}", w["macs"] / 1e9, w["flops"] / 1e9, w["eager_bytes_fp32"] / 1e9,
             w["fused_bytes_fp32"] / 1e9, w["eager_bytes_fp32"] / 2e9, w["flops"] / w["eager_bytes_fp32"],
             w["flops"] / w["fused_bytes_fp32"]]
            for name, w in works.items()]
    print(table(["res", "size", "GMACs", "GFLOPs", "GB eager fp32", "GB fused fp32", "GB eager fp16",
                 "FLOP/B eager fp32", "FLOP/B fused fp32"], rows, "work per frame (analytic)"))
    ref = works.get("1080p") or first
    total = ref["eager_bytes_fp32"]
    rows = sorted(ref["eager_bytes_by_op"].items(), key=lambda kv: kv[1], reverse=True)
    print()
    print(table(["aten op (eager)", "GB fp32", "share"], [[k, v / 1e9, f"{100 * v / total:.1f} %"] for k, v in rows],
                f"where the eager bytes go at {ref['width']}x{ref['height']}"))
    rows, bound = [], set()
    for device, p in PEAKS.items():
        row = [device]
        for size, peak in ((4, p["tf32"]), (2, p["fp16"])):
            for key in ("eager_bytes_fp32", "fused_bytes_fp32"):
                compute, memory = ref["flops"] / peak, ref[key] * size / 4 / p["bw"]
                bound.add("bandwidth" if memory >= compute else "compute")
                row.append(1 / max(compute, memory))
        rows.append(row)
    print()
    print(table(["device (datasheet)", "fp32/TF32 eager", "fp32/TF32 fused", "fp16 eager", "fp16 fused"], rows,
                f"roofline ceiling in frames/s at {ref['width']}x{ref['height']} "
                f"({' and '.join(sorted(bound))}-bound)"))


def table_peaks(device_name: str) -> tuple[str, dict] | tuple[None, None]:
    for key in sorted(PEAKS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key.lower() in device_name.lower():
            return key, PEAKS[key]
    return None, None


def measured_peaks() -> dict:
    import torch

    def best(fn, reps=10):
        fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times)

    out = {}
    n = 8192
    for name, dtype, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True),
                              ("fp16", torch.float16, False), ("bf16", torch.bfloat16, False)):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a, b = torch.randn(n, n, device=DEVICE, dtype=dtype), torch.randn(n, n, device=DEVICE, dtype=dtype)
        out[name] = 2 * n**3 / best(lambda: a @ b)
    torch.backends.cuda.matmul.allow_tf32 = False
    x = torch.empty(2**28, device=DEVICE, dtype=torch.float32)  # 1 GiB
    y = torch.empty_like(x)
    out["bw"] = 2 * x.numel() * 4 / best(lambda: y.copy_(x))
    return out


# ------------------------------------------------------------------ 3. network frames/s


def time_network(net, shape: tuple[int, ...], weights, in_dtype, autocast, iters: int) -> float:
    """Seconds per frame of ``net`` on a random batch already on the GPU (3 warm-up calls, then ``iters``)."""
    import torch

    from farm.styles.multistyle import pad_to_multiple

    x, _, _ = pad_to_multiple(torch.rand(*shape, device=DEVICE, dtype=in_dtype))
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode(), torch.autocast(DEVICE, dtype=autocast or torch.float16, enabled=autocast is not None):
        for _ in range(3):
            net(x, weights)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(iters):
            net(x, weights)
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / (iters * shape[0])


def network_fps(works: dict[str, dict], peaks: dict, iters: int, resolutions: list[str],
                batches: tuple[int, ...]) -> list[dict]:
    import torch

    from farm.styles.catalog import load_catalog
    from farm.styles.multistyle import load_multistyle

    torch.backends.cudnn.benchmark = True
    style = torch.tensor(load_catalog().resolve("vangogh").weights, device=DEVICE)
    base = load_multistyle().to(DEVICE).to(memory_format=torch.channels_last)
    half = load_multistyle().to(DEVICE).half().to(memory_format=torch.channels_last)
    modes = {"fp32 (TF32 convs)": (base, None, torch.float32),
             "fp16 autocast": (base, torch.float16, torch.float32),
             "bf16 autocast": (base, torch.bfloat16, torch.float32),
             "fp16 weights (.half)": (half, None, torch.float16)}
    rows = []
    for res in resolutions:
        h, w = RESOLUTIONS[res]
        work = works[res]
        for mode, (net, autocast, in_dtype) in modes.items():
            for batch in batches:
                row = {"res": res, "mode": mode, "batch": batch}
                try:
                    seconds = time_network(net, (batch, 3, h, w), style.to(in_dtype), in_dtype, autocast, iters)
                except torch.cuda.OutOfMemoryError:
                    row["error"] = "out of memory"
                    torch.cuda.empty_cache()
                    rows.append(row)
                    continue
                size = 4 if mode.startswith("fp32") else 2
                flops_peak = peaks["tf32"] if mode.startswith("fp32") else peaks["fp16"]
                row.update(ms_per_frame=1000 * seconds, fps=1 / seconds,
                           floor_ms_eager=1000 * max(work["flops"] / flops_peak,
                                                     work["eager_bytes_fp32"] * size / 4 / peaks["bw"]),
                           floor_ms_fused=1000 * max(work["flops"] / flops_peak,
                                                     work["fused_bytes_fp32"] * size / 4 / peaks["bw"]),
                           peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30)
                row["achieved_tflops"] = work["flops"] / seconds / 1e12
                row["achieved_gbps_eager"] = work["eager_bytes_fp32"] * size / 4 / seconds / 1e9
                torch.cuda.reset_peak_memory_stats()
                rows.append(row)
                print(f"  {res} {mode} batch {batch}: {row['fps']:.1f} fps", file=sys.stderr, flush=True)
    return rows


def print_fps(rows: list[dict]) -> None:
    out = []
    for r in rows:
        if "error" in r:
            out.append([r["res"], r["mode"], r["batch"], r["error"], "-", "-", "-", "-", "-"])
            continue
        out.append([r["res"], r["mode"], r["batch"], r["fps"], r["ms_per_frame"], r["floor_ms_eager"],
                     r["floor_ms_fused"], f"{100 * r['floor_ms_eager'] / r['ms_per_frame']:.0f} %",
                     r["achieved_gbps_eager"]])
    print(table(["res", "precision", "batch", "frames/s", "ms/frame", "floor ms (eager bytes)", "floor ms (fused)",
                 "of eager roofline", "GB/s (eager bytes)"], out,
                "network only, channels_last, input on the device (floor = max(FLOPs/peak, bytes/bandwidth))"))


def stylizer_fps(resolutions: list[str], frames: int = 16) -> dict[str, float]:
    """farm's own Stylizer on CUDA, host to host: uint8 frames in, float32 frames out (what a worker calls)."""
    import numpy as np
    import torch

    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    stylizer = Stylizer(load_catalog().resolve("vangogh"), device=DEVICE)
    out = {}
    for res in resolutions:
        h, w = RESOLUTIONS[res]
        batch = np.random.default_rng(0).integers(0, 256, (frames, h, w, 3), dtype=np.uint8)
        stylizer(batch[: stylizer.batch])
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        stylizer(batch)
        torch.cuda.synchronize()
        out[res] = frames / (time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------ 4. optical flow on the CPU


def flow_timings(reps: int) -> dict:
    import cv2
    import numpy as np

    from farm import temporal
    from farm.config import TemporalOptions
    from tests.clips import pattern

    h, w = RESOLUTIONS["1080p"]
    a, b = pattern(0, w, h), pattern(1, w, h)
    ga, gb = temporal.to_gray(a), temporal.to_gray(b)
    out = {"cv2_threads": cv2.getNumThreads(), "preset": int(temporal.DIS_PRESET)}

    def best(fn):
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    for scale in (1.0, 0.5, 0.25):
        out[f"flow_ms_scale_{scale}"] = 1000 * best(lambda: temporal.estimate_flow(ga, gb, scale=scale))
    styled = np.random.default_rng(0).random((h, w, 3), dtype=np.float32)

    def step():
        coherence = temporal.Coherence(TemporalOptions())
        coherence.step(a, styled)
        t0 = time.perf_counter()
        coherence.step(b, styled)
        return time.perf_counter() - t0

    step()
    out["coherence_step_ms"] = 1000 * min(step() for _ in range(reps))
    out["default_flow_scale"] = TemporalOptions().flow_scale
    return out


def print_flow(flow: dict, best_fps: float | None) -> None:
    rows = [[f"DIS flow, scale {s}", flow[f"flow_ms_scale_{s}"], 1000 / flow[f"flow_ms_scale_{s}"] / 2]
            for s in (1.0, 0.5, 0.25)]
    rows.append([f"Coherence.step (2 flows at {flow['default_flow_scale']} + mask + warp + blend)",
                 flow["coherence_step_ms"], 1000 / flow["coherence_step_ms"]])
    title = f"temporal pass at 1920x1080 on the CPU ({flow['cv2_threads']} OpenCV threads)"
    print(table(["step", "ms", "frames/s it allows (2 flows/frame)"], rows, title))
    if best_fps:
        print(f"best network rate at 1080p above: {best_fps:.0f} frames/s; one CPU temporal pass allows "
              f"{1000 / flow['coherence_step_ms']:.1f} frames/s per worker process")


# ------------------------------------------------------------------ 5. the pipeline


def pipeline(frames: int) -> dict:
    from tests.clips import make_clip

    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "synthetic1080.mp4", frames=frames, width=1920, height=1080)
        result = farm_submit(clip, tmp / "work", job_id="bench-gpu", extra=["--workers", "1"])
    return {"frames": frames, "wall_s": result["wall_s"], "fps": frames / result["wall_s"],
            "json": result["json"]}


def scaling(frames: int, gpus: int) -> list[dict]:
    """``farm submit`` of one synthetic 1080p clip with 1, 2, 4, … ``gpus`` workers (one GPU each)."""
    from tests.clips import make_clip

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "synthetic1080.mp4", frames=frames, width=1920, height=1080)
        for n in sorted({2**k for k in range(gpus.bit_length()) if 2**k <= gpus} | {gpus}):
            result = farm_submit(clip, tmp / f"work{n}", job_id=f"bench-gpu-{n}", extra=["--workers", str(n)])
            rows.append({"workers": n, "wall_s": result["wall_s"], "fps": frames / result["wall_s"]})
    return rows


# ------------------------------------------------------------------ 6. one worker, stage by stage


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def rate(fn, frames: int, device: str, reps: int) -> float:
    """Frames/s of ``fn`` (which processes ``frames`` frames), best of ``reps`` after one warm-up call."""
    fn()
    synchronize(device)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return frames / best


def worker_stages(res: str, device: str, frames: int, reps: int) -> dict:
    """Network-only, temporal-only and whole-worker frames/s at one resolution, CPU seconds per frame."""
    import resource

    import torch

    from farm import video
    from farm.codecs import resolve_codec
    from farm.config import RenderOptions, TemporalOptions
    from farm.plan import Chunk, Layout
    from farm.shard import shard
    from farm.store import LocalStore
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer
    from farm.temporal.device_coherence import DeviceCoherence
    from farm.worker import JobContext, StyleWorker
    from tests.clips import make_clip, pattern

    h, w = RESOLUTIONS[res]
    style = load_catalog().resolve("vangogh")
    stylizer = Stylizer(style, device=device)
    dev, batch = stylizer.device, stylizer.batch
    on_device = torch.stack([torch.from_numpy(pattern(i, w, h)) for i in range(batch)]).to(dev)
    network_fps = rate(lambda: stylizer.paint(on_device), batch, device, reps)
    styled = stylizer.paint(on_device).permute(0, 3, 1, 2).contiguous()
    coherence = DeviceCoherence(TemporalOptions(flow="torch"))

    def temporal():
        with torch.inference_mode():
            coherence.step_batch(on_device, styled)

    temporal_fps = rate(temporal, batch, device, reps)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        tmp = Path(tmp)
        clip = make_clip(tmp / "clip.mp4", frames=frames, width=w, height=h)
        info = video.probe(clip)
        store, chunk = LocalStore(tmp / "store"), Chunk(index=0, start=0, end=frames)
        list(shard(clip, info, [chunk], store, Layout("bench")))
        options = RenderOptions(style=style, temporal=TemporalOptions(flow="torch"))
        job = JobContext(job_id="bench", store_uri=store.uri, render=options, width=info.out_width,
                         height=info.out_height, time_base=info.time_base)
        worker = StyleWorker(device=device)
        worker.prepare(job)
        worker.render(job, chunk)  # warm: cuDNN's algorithm choice, the encoder's first open
        cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        receipt = worker.render(job, chunk)
        wall, cpu1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    out = {"res": res, "device": str(dev), "batch": batch, "precision": str(stylizer.dtype),
           "network_fps": network_fps, "temporal_fps": temporal_fps, "worker_fps": frames / wall,
           "worker_vs_network": frames / wall / network_fps, "cpu_ms_per_frame": 1000 * cpu / frames,
           "codec": resolve_codec("auto", dev.type), "stages_s": receipt.seconds}
    if dev.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def print_worker(rows: list[dict]) -> None:
    print(table(["res", "network f/s", "temporal f/s", "worker f/s", "worker/network", "CPU ms/frame", "codec",
                 "peak GPU MiB"],
                [[r["res"], r["network_fps"], r["temporal_fps"], r["worker_fps"], r["worker_vs_network"],
                  r["cpu_ms_per_frame"], r["codec"], r.get("peak_gpu_mib", "-")] for r in rows],
                f"one worker on {rows[0]['device']} ({rows[0]['precision']}, batch {rows[0]['batch']}), "
                "coherence on, torch flow"))


# ------------------------------------------------------------------ main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flops-only", action="store_true", help="only the analytic work count (no GPU needed)")
    parser.add_argument("--flow-only", action="store_true", help="only the CPU flow timings (no GPU needed)")
    parser.add_argument("--no-pipeline", action="store_true", help="skip the farm submit run")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per (res, precision, batch)")
    parser.add_argument("--res", default="720p,1080p,2160p")
    parser.add_argument("--pipeline-frames", type=int, default=240)
    parser.add_argument("--worker-only", action="store_true", help="only section 6, one worker stage by stage")
    parser.add_argument("--worker-frames", type=int, default=96, help="frames of the chunk section 6 renders")
    parser.add_argument("--device", default=DEVICE, help="section 6's device (cpu: a smoke test without a GPU)")
    args = parser.parse_args()
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import torch

    env = environment()
    resolutions = args.res.split(",")
    result: dict = {"environment": env, "args": vars(args), "cmdline": sys.argv}
    works = {res: count_work(*RESOLUTIONS[res]) for res in resolutions}
    result["work"] = works
    if args.flops_only:
        print_work(works)
        print(f"wrote {write_result('gpu_flops', result)}", file=sys.stderr)
        return
    if args.flow_only:
        result["flow"] = flow_timings(5)
        print_flow(result["flow"], None)
        print()
        print(load_note(env))
        print(f"wrote {write_result('gpu_flow', result)}", file=sys.stderr)
        return
    if args.worker_only:
        result["worker"] = [worker_stages(res, args.device, args.worker_frames, 3) for res in resolutions]
        print_worker(result["worker"])
        print()
        print(load_note(env))
        print(f"wrote {write_result('gpu_worker' if args.device == DEVICE else 'gpu_worker_' + args.device, result)}",
              file=sys.stderr)
        return
    if not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); "
              "--flops-only and --flow-only run without one")
        return
    name = torch.cuda.get_device_name()
    key, nominal = table_peaks(name)
    measured = measured_peaks()
    env["gpu"] = name
    result["peaks"] = {"table_key": key, "table": nominal, "measured": measured}
    # the roofline uses the datasheet when the device is in the table, else what was measured
    peaks = nominal or {"fp32": measured["fp32"], "tf32": measured["tf32"], "fp16": measured["fp16"],
                        "bw": measured["bw"]}
    print_work(works)
    print()
    print(table(["peak", "datasheet" + (f" ({key})" if key else " (not in table)"), "measured"],
                [[k, f"{nominal[k] / 1e12:.1f} T" if nominal else "-", f"{measured[k] / 1e12:.1f} T"]
                 for k in ("fp32", "tf32", "fp16", "bw")] + [["bf16", "-", f"{measured['bf16'] / 1e12:.1f} T"]],
                f"{name}: FLOP/s (matmul 8192^3) and bytes/s (1 GiB copy, read + write)"))
    print()
    rows = network_fps(works, peaks, args.iters, resolutions, BATCHES)
    result["network"] = rows
    print_fps(rows)
    print()
    result["stylizer_fps"] = stylizer_fps(resolutions)
    print(table(["res", "frames/s"], [[k, v] for k, v in result["stylizer_fps"].items()],
                "farm's Stylizer on CUDA, host uint8 in -> host float32 out (its default batch and precision)"))
    print()
    result["flow"] = flow_timings(5)
    best = max((r["fps"] for r in rows if r["res"] == "1080p" and "fps" in r), default=None)
    print_flow(result["flow"], best)
    if not args.no_pipeline:
        print()
        result["pipeline"] = pipeline(args.pipeline_frames)
        p = result["pipeline"]
        print(table(["stage", "s"], [[k, v] for k, v in p["json"]["stages"].items()] + [["wall", p["wall_s"]]],
                    f"farm submit, synthetic 1920x1080, {p['frames']} frames, --workers 1: {p['fps']:.2f} frames/s"))
        if torch.cuda.device_count() > 1:
            result["scaling"] = scaling(args.pipeline_frames, torch.cuda.device_count())
            print(table(["workers", "wall s", "frames/s"], [[r["workers"], r["wall_s"], r["fps"]]
                                                            for r in result["scaling"]], "scaling over GPUs"))
    print()
    result["worker"] = [worker_stages(res, DEVICE, args.worker_frames, 3) for res in resolutions]
    print_worker(result["worker"])
    print()
    print(load_note(env))
    print(f"wrote {write_result('gpu', result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
