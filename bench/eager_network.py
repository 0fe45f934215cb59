"""The 26-style network run eagerly on one CPU thread (what a machine without an AOT package runs): ways to
write it, their speed and how far their pixels stray from farm's network as it was (issue 18, lever 3).

Run by hand (never in CI):

    .venv/bin/python bench/eager_network.py --size 640x360 --rounds 5 --calls 2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/eager_network.py --name eager_network_avx2

Each variant paints the same random 640x360 frame in float32, batch 1, under ``torch.inference_mode``,
rounds interleaved; the median ms/frame over rounds is reported, with the largest difference from the
reference variant (the plain graph) in levels of 255 over a bikes.mp4 frame.

Variants (farm's own network module, weights as ``Stylizer`` holds them on a CPU):

- ``graph (NCHW, instance norm)``: ``MultiStyleNet.graph``, what farm ran eagerly before issue 18 and
  what torch.export still traces for the AOT packages: ``F.instance_norm`` without affine, ``* gamma +
  beta``, ``relu``, ``F.pad`` reflect, all NCHW;
- ``cpu_eager (NHWC)``: ``MultiStyleNet.forward`` on a CPU now (``farm/styles/multistyle.py:
  cpu_eager``): channels-last activations, a channels-last reflect pad, one batch-norm pass per norm
  with the style's scale and shift as its affine, in-place ReLU, residual adds and sigmoid;
- ``onnxruntime``: the per-frame tool's engine on the same weights file, one thread (it ignores the AVX2
  variables: it keeps AVX-512 in both runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, load_note, median, sample, table, write_result  # noqa: E402

from farm import video  # noqa: E402
from farm.styles import multistyle  # noqa: E402
from farm.styles.catalog import load_catalog  # noqa: E402


def network(graph: bool):
    """Farm's network, its plain graph or its CPU eager formulation."""
    net = multistyle.load_multistyle()
    return net.graph if graph else net


def ort_network():
    import onnxruntime as ort

    from farm.styles.identity import onnx_path

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
    session = ort.InferenceSession(str(onnx_path()), opts, providers=["CPUExecutionProvider"])
    return lambda x, w: torch.from_numpy(session.run(None, {"image": x.numpy(), "style_weights": w.numpy()})[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--no-ort", dest="ort", action="store_false")
    parser.add_argument("--name", default="eager_network")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = environment()
    width, height = (int(v) for v in args.size.split("x"))
    variants = {"graph (NCHW, instance norm)": network(True), "cpu_eager (NHWC)": network(False)}
    if args.ort:
        variants["onnxruntime"] = ort_network()
    weights = torch.tensor(load_catalog().resolve("vangogh").weights, dtype=torch.float32)
    clip = sample("bikes")
    frame = next(iter(video.iter_frames(clip, video.probe(clip)))).rgb
    real = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)[None].float().div(255)
    real = multistyle.pad_to_multiple(real)[0]
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    times: dict[str, list[float]] = {name: [] for name in variants}
    with torch.inference_mode():
        outputs = {name: (net(real, weights) * 255).round() for name, net in variants.items()}
        for _ in range(args.rounds):
            for name, net in variants.items():
                t = time.perf_counter()
                for _ in range(args.calls):
                    net(x, weights)
                times[name].append((time.perf_counter() - t) / args.calls)
    reference = outputs["graph (NCHW, instance norm)"]
    rows = [{"variant": name, "ms_per_frame": 1000 * median(times[name]), "ms_rounds": [1000 * t for t in times[name]],
             "max_levels_vs_graph": float((outputs[name] - reference).abs().max()),
             "mean_levels_vs_graph": float((outputs[name] - reference).abs().mean())} for name in variants]
    print(table(["variant", "ms/frame", "max |diff| levels", "mean |diff| levels"],
                [[r["variant"], r["ms_per_frame"], r["max_levels_vs_graph"], r["mean_levels_vs_graph"]]
                 for r in rows],
                title=f"26-style network eager, one thread, {args.size}, median of {args.rounds} rounds x {args.calls}"))
    print(load_note(env))
    print(write_result(args.name, {"environment": env, "args": vars(args), "rows": rows,
                                   "cmdline": sys.argv}))


if __name__ == "__main__":
    main()
