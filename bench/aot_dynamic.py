"""One AOT package for every frame size? The 26-style network's package built with a static input shape
(what farm builds: one per machine, network and working size) against one built with dynamic height and
width (``torch.export`` ``Dim``s, multiples of 4 as the network needs), and the eager network (issue 18,
lever 1).

Run by hand (never in CI); each build is timed from nothing (a fresh inductor cache), then the variants
paint the same frame on one thread, batch 1, rounds interleaved:

    .venv/bin/python bench/aot_dynamic.py --size 640x360 --rounds 5 --calls 2
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/aot_dynamic.py --name aot_dynamic_avx2

``--also`` times the dynamic package at more sizes (it is built once; a static one would need a build each).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, load_note, median, table, write_result  # noqa: E402

from farm.styles.aot import build_package, load_package  # noqa: E402
from farm.styles.catalog import load_catalog  # noqa: E402
from farm.styles.multistyle import MULTIPLE, load_multistyle  # noqa: E402


def build_dynamic(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor, path: Path) -> None:
    """The package for any height and width that are multiples of :data:`MULTIPLE` (up to 4096)."""
    rows, cols = torch.export.Dim("rows", min=2, max=1024), torch.export.Dim("cols", min=2, max=1024)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.export.export(net, (x, weights),
                                      dynamic_shapes=({2: MULTIPLE * rows, 3: MULTIPLE * cols}, None))
        torch._inductor.aoti_compile_and_package(program, package_path=str(path))


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--also", default="848x360", help="more sizes for the dynamic package (comma-separated)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--name", default="aot_dynamic")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = environment()
    width, height = (int(v) for v in args.size.split("x"))
    net = load_multistyle()
    weights = torch.tensor(load_catalog().resolve("vangogh").weights, dtype=torch.float32)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="aot-dynamic-") as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")  # every build from nothing
        builds = {"static": timed(lambda: build_package(net, x, weights, Path(tmp) / "static.pt2")),
                  "dynamic": timed(lambda: build_dynamic(net, x, weights, Path(tmp) / "dynamic.pt2"))}
        runners = {name: load_package(Path(tmp) / f"{name}.pt2") for name in builds}
        variants = {"eager (cpu_eager)": lambda a: net(a, weights),
                    "static package": lambda a: runners["static"].boxed_run([a, weights])[0],
                    "dynamic package": lambda a: runners["dynamic"].boxed_run([a, weights])[0]}
        times: dict[str, list[float]] = {name: [] for name in variants}
        with torch.inference_mode():
            reference = net.graph(x, weights)
            diffs = {name: float((fn(x) - reference).abs().max() * 255) for name, fn in variants.items()}
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    times[name].append(timed(lambda: [fn(x) for _ in range(args.calls)]) / args.calls)
            others = []
            for size in [s for s in args.also.split(",") if s]:
                w, h = (int(v) for v in size.split("x"))
                other = torch.rand(1, 3, h, w)
                pair = {"eager (cpu_eager)": [], "dynamic package": []}
                for _ in range(args.rounds):
                    for name in pair:
                        pair[name].append(timed(lambda: [variants[name](other) for _ in range(args.calls)]) / args.calls)
                others.append({"size": size, **{f"{k} ms": 1000 * median(v) for k, v in pair.items()},
                               "max_levels_dynamic_vs_graph":
                                   float((variants["dynamic package"](other) - net.graph(other, weights)).abs().max() * 255)})
    rows = [{"variant": name, "ms_per_frame": 1000 * median(times[name]), "ms_rounds": [1000 * t for t in times[name]],
             "build_s": builds.get(name.split()[0]), "max_levels_vs_graph": diffs[name]} for name in variants]
    print(table(["variant", "ms/frame", "build s", "max |diff| levels"],
                [[r["variant"], r["ms_per_frame"], r["build_s"] if r["build_s"] is not None else "-",
                  r["max_levels_vs_graph"]] for r in rows],
                title=f"26-style network, one thread, {args.size}, median of {args.rounds} rounds x {args.calls}"))
    if others:
        print(table(["size", "eager ms", "dynamic package ms", "max |diff| levels"],
                    [[o["size"], o["eager (cpu_eager) ms"], o["dynamic package ms"], o["max_levels_dynamic_vs_graph"]]
                     for o in others], title="the same dynamic package at other sizes"))
    print(load_note(env))
    print(write_result(args.name, {"environment": env, "args": vars(args), "rows": rows, "other_sizes": others,
                                   "cmdline": sys.argv}))


if __name__ == "__main__":
    main()
