"""One AOT package for every frame size, and what its build costs (issue 18, lever 1).

The 26-style network's package built for one input shape against farm's any-size package (height and
width symbolic ``torch.export`` dims, farm/styles/aot.py), optional build variants (inductor options),
and the eager network. Every build runs in a fresh process with an empty inductor cache, as a new
user's first worker does (imports, header precompilation and all), timed in wall and CPU seconds;
then the variants paint the same frame on one thread, batch 1, rounds interleaved.

Run by hand (never in CI):

    .venv/bin/python bench/aot_dynamic.py --size 640x360 --rounds 5 --calls 2 --name aot_dynamic_epyc_native
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/aot_dynamic.py --name aot_dynamic_avx2
    .venv/bin/python bench/aot_dynamic.py --no-static \\
        --variant wrapper_O0:aot_inductor.compile_wrapper_opt_level=O0 --variant freezing:freezing=True

``--also`` times the any-size package at more sizes (it is built once; a static one would need a build each).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, load_note, median, table, write_result  # noqa: E402

from farm.styles.aot import build_package, load_package  # noqa: E402
from farm.styles.catalog import load_catalog  # noqa: E402
from farm.styles.multistyle import load_multistyle  # noqa: E402


def inputs(size: str, dtype: str = "float32") -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The network, a frame and vangogh's style vector, in ``dtype`` (bfloat16: what farm runs on an AMX CPU)."""
    width, height = (int(v) for v in size.split("x"))
    kind = getattr(torch, dtype)
    weights = torch.tensor(load_catalog().resolve("vangogh").weights, dtype=kind)
    x = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)).to(kind)
    return load_multistyle().to(kind), x, weights


def parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"True": True, "False": False, "None": None}.get(text, text)


def build_here(size: str, path: str, any_size: bool, options: list[str], dtype: str) -> None:
    """The child process: set the inductor options, build the package (farm's own build_package)."""
    import torch._inductor.config as config

    for option in options:
        name, value = option.split("=", 1)
        *parents, leaf = name.split(".")
        target = config
        for part in parents:
            target = getattr(target, part)
        assert hasattr(target, leaf), f"no inductor option {name}"
        setattr(target, leaf, parse_value(value))
    net, x, weights = inputs(size, dtype)
    build_package(net, x, weights, Path(path), any_size)


def build_fresh(size: str, path: Path, any_size: bool, options: list[str], tmp: Path, dtype: str) -> tuple[float, float]:
    """Wall and CPU seconds (the child's, all its threads and compiler processes) of one build from nothing."""
    cache = tempfile.mkdtemp(prefix="inductor-", dir=tmp)
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache}
    command = [sys.executable, __file__, "--build-here", str(path), "--size", size,
               *(["--any-size"] if any_size else []), *[f"--option={o}" for o in options], f"--dtype={dtype}"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--also", default="848x360", help="more sizes for the any-size package (comma-separated)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--name", default="aot_dynamic")
    parser.add_argument("--no-static", action="store_true", help="skip the one-shape package")
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:option=value,option=value: an any-size package built with these inductor options")
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                        help="bfloat16: the network as --precision auto runs it on a CPU with AMX")
    parser.add_argument("--build-here", help=argparse.SUPPRESS)
    parser.add_argument("--any-size", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--option", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_here:
        return build_here(args.size, args.build_here, args.any_size, args.option, args.dtype)
    torch.set_num_threads(1)
    env = environment()
    net, x, weights = inputs(args.size, args.dtype)
    recipes = {**({} if args.no_static else {"static": (False, [])}), "any-size": (True, [])}
    for spec in args.variant:
        name, _, options = spec.partition(":")
        recipes[name] = (True, [o for o in options.split(",") if o])
    with tempfile.TemporaryDirectory(prefix="aot-dynamic-") as tmp:
        builds = {name: build_fresh(args.size, Path(tmp) / f"{name}.pt2", any_size, options, Path(tmp), args.dtype)
                  for name, (any_size, options) in recipes.items()}
        runners = {name: load_package(Path(tmp) / f"{name}.pt2") for name in builds}
        variants = {"eager (cpu_eager)": lambda a: net(a, weights),
                    **{f"{name} package": (lambda r: lambda a: r.boxed_run([a, weights])[0])(runner)
                       for name, runner in runners.items()}}
        times: dict[str, list[float]] = {name: [] for name in variants}
        with torch.inference_mode():
            reference = net.graph(x, weights)
            diffs = {name: float((fn(x) - reference).abs().max() * 255) for name, fn in variants.items()}
            for _ in range(args.rounds):
                for name, fn in variants.items():
                    times[name].append(timed(lambda: [fn(x) for _ in range(args.calls)]) / args.calls)
            others = []
            any_size = [name for name in variants if name != "eager (cpu_eager)" and name != "static package"]
            for size in [s for s in args.also.split(",") if s]:
                w, h = (int(v) for v in size.split("x"))
                other = torch.rand(1, 3, h, w).to(x.dtype)
                pair: dict[str, list[float]] = {name: [] for name in ["eager (cpu_eager)", *any_size]}
                for _ in range(args.rounds):
                    for name in pair:
                        pair[name].append(timed(lambda: [variants[name](other) for _ in range(args.calls)]) / args.calls)
                others.append({"size": size, **{f"{k} ms": 1000 * median(v) for k, v in pair.items()},
                               "max_levels_vs_graph": {name: float((variants[name](other) - net.graph(other, weights))
                                                                   .abs().max() * 255) for name in any_size}})
    rows = [{"variant": name, "ms_per_frame": 1000 * median(times[name]), "ms_rounds": [1000 * t for t in times[name]],
             "build_s": builds.get(name.removesuffix(" package"), (None, None))[0],
             "build_cpu_s": builds.get(name.removesuffix(" package"), (None, None))[1],
             "options": recipes.get(name.removesuffix(" package"), (None, []))[1],
             "max_levels_vs_graph": diffs[name]} for name in variants]
    print(table(["variant", "ms/frame", "build s", "build CPU s", "max |diff| levels"],
                [[r["variant"], r["ms_per_frame"], r["build_s"] if r["build_s"] is not None else "-",
                  r["build_cpu_s"] if r["build_cpu_s"] is not None else "-", r["max_levels_vs_graph"]] for r in rows],
                title=f"26-style network, one thread, {args.size}, median of {args.rounds} rounds x {args.calls}; "
                      "each build in a fresh process from an empty inductor cache"))
    if others:
        print(table(["size", "ms/frame"],
                    [[o["size"], ", ".join(f"{k.removesuffix(' ms')} {v:.1f}" for k, v in o.items() if k.endswith(" ms"))]
                     for o in others], title="the any-size packages at other sizes"))
    print(load_note(env))
    print(write_result(args.name, {"environment": env, "args": vars(args), "rows": rows, "other_sizes": others,
                                   "cmdline": sys.argv}))


if __name__ == "__main__":
    main()
