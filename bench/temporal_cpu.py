"""What the host temporal pass (farm/temporal/dis.py ``Coherence.step``) costs per frame in CPU time, and
whether another revision's pass gives the same pixels.

One thread (``cv2.setNumThreads(1)``, as a 1-CPU worker sets it), frames of bigbuckbunny.mp4 scaled to
``--size``, a fixed noisy "painting" per frame. Each step is timed with ``time.thread_time`` (CPU
seconds of this thread: on a shared machine the wall clock includes waiting for a core), and so is each
part of it (the two flows, the mask, the warp, the two-band blend). With ``--against DIR`` (a checkout of
another revision, e.g. ``/work/main``) that revision's dis.py is loaded from its file and run on the same
frames, the two taking turns each round; the outputs are compared bit for bit.

    PYTHONPATH=$PWD .venv/bin/python bench/temporal_cpu.py --against /work/main --name temporal_cpu

With ``--painter`` it times farm's whole ``HostPainter`` call per frame instead (the upsampling from the working
size and the temporal pass; the network's paintings are made beforehand, bench/suite.py ``Painted``), with one
stretch k (farm before the stretch by motion) and with k by motion, taking turns each round:

    PYTHONPATH=$PWD .venv/bin/python bench/temporal_cpu.py --painter --size 1920x1080 --frames 12 --name painter_cpu
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, load_note, median, sample, table, write_result  # noqa: E402


def frames(count: int, size: tuple[int, int]):
    import av
    import numpy as np

    out = []
    with av.open(str(sample("bigbuckbunny"))) as container:
        for frame in container.decode(video=0):
            out.append(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
            if len(out) == count:
                break
    rng = np.random.default_rng(0)
    painted = [np.clip(f.astype(np.float32) / 255 + rng.normal(0, 0.05, f.shape).astype(np.float32), 0, 1)
               for f in out]
    return out, painted


def load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def steps(dis, rgb, painted) -> tuple[list[float], list]:
    """CPU seconds of each ``Coherence.step`` after the first, and the outputs."""
    coherence, cpu, outs = dis.Coherence(), [], []
    for f, s in zip(rgb, painted):
        t = time.thread_time()
        outs.append(coherence.step(f, s.copy()))
        cpu.append(time.thread_time() - t)
    return cpu[1:], outs


def parts(dis, rgb, painted) -> dict[str, float]:
    """Median CPU ms of each part of the step, as ``Coherence._blend`` calls them (this revision's API)."""
    import numpy as np

    coherence = dis.Coherence()
    engine = getattr(coherence, "engine", None)
    kw = {"engine": engine} if engine is not None else {}
    times: dict[str, list[float]] = {}
    prev_gray, prev_out = dis.to_gray(rgb[0]), painted[0]
    for f, s in zip(rgb[1:], painted[1:]):
        clock = [time.thread_time()]

        def tick(name: str) -> None:
            clock.append(time.thread_time())
            times.setdefault(name, []).append(clock[-1] - clock[-2])

        gray = dis.to_gray(f)
        bwd = dis.estimate_flow(gray, prev_gray, **kw)
        tick("flow t→t-1")
        fwd = dis.estimate_flow(prev_gray, gray, **kw)
        tick("flow t-1→t")
        mask = dis.reliability_mask(fwd, bwd, boundary_weight=dis.BOUNDARY_WEIGHT, entered=True)
        tick("mask")
        warped = dis.warp(prev_out, bwd)
        tick("warp")
        out = dis.blend_bands(s, warped, mask, coherence.options.strength, coherence.base_strength)
        np.clip(out, 0.0, 1.0, out=out)
        tick("two-band blend")
        prev_gray, prev_out = gray, out
    return {k: 1000 * median(v) for k, v in times.items()}


def painter_cpu(rgb, rounds: int) -> dict[str, list[float]]:
    """Median CPU ms (this thread) of farm's HostPainter per frame after the first, per round: one k, k by motion."""
    import torch

    import suite
    from farm.config import TemporalOptions
    from farm.paint import painter_for
    from farm.pipeline import Timer
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer, planar

    net = Stylizer(load_catalog().resolve("vangogh"), device="cpu", threads=1)
    cache: dict = {}
    with torch.inference_mode():
        for f in rgb:  # the network once, outside the timing
            suite.Painted(net, cache).paint_working(planar(torch.from_numpy(f[None])))
    cpu: dict[str, list[float]] = {"one k": [], "k by motion": []}
    for _ in range(rounds):
        for name in cpu:
            painter = painter_for(suite.Painted(net, cache, one_k=name == "one k"), TemporalOptions(), Timer())
            seconds = []
            for f in rgb:
                t = time.thread_time()
                painter(f[None])
                seconds.append(time.thread_time() - t)
            cpu[name].append(1000 * median(seconds[1:]))
    return cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout whose farm/temporal/dis.py to compare")
    parser.add_argument("--name", default="temporal_cpu")
    parser.add_argument("--painter", action="store_true", help="farm's HostPainter call: one k vs k by motion")
    args = parser.parse_args()
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    env = environment()
    size = tuple(int(v) for v in args.size.split("x"))
    rgb, painted = frames(args.frames, size)
    if args.painter:
        cpu = painter_cpu(rgb, args.rounds)
        result = {"environment": env, "size": args.size, "frames": args.frames, "rounds": args.rounds,
                  "painter_cpu_ms": cpu, "painter_cpu_ms_median": {k: median(v) for k, v in cpu.items()}}
        print(table(["painter", "median CPU ms per frame", "rounds (median of each)"],
                    [[name, median(v), " ".join(f"{x:.1f}" for x in v)] for name, v in cpu.items()],
                    f"farm's HostPainter at {args.size} (upsampling + temporal pass), one thread, {args.frames - 1} "
                    "frames per round"))
        print(load_note(env))
        print(write_result(args.name, result))
        return 0
    from farm.temporal import dis as this

    revisions = {"this": this}
    if args.against:
        revisions["against"] = load(args.against / "farm" / "temporal" / "dis.py", "against_dis")
    cpu: dict[str, list[float]] = {name: [] for name in revisions}
    outs = {}
    for _ in range(args.rounds):
        for name, dis in revisions.items():
            seconds, outs[name] = steps(dis, rgb, painted)
            cpu[name].append(1000 * median(seconds))
    result = {"environment": env, "size": args.size, "frames": args.frames, "rounds": args.rounds,
              "step_cpu_ms": cpu, "step_cpu_ms_median": {k: median(v) for k, v in cpu.items()},
              "parts_cpu_ms": parts(this, rgb, painted)}
    if args.against:
        result["against"] = str(args.against)
        result["identical"] = all(np.array_equal(a, b) for a, b in zip(outs["this"], outs["against"]))
        result["max_abs_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(outs["this"], outs["against"]))
    rows = [[name, result["step_cpu_ms_median"][name], " ".join(f"{v:.1f}" for v in cpu[name])] for name in cpu]
    print(table(["revision", "median step CPU ms", "rounds (median of each)"], rows,
                f"Coherence.step at {args.size}, one thread, {args.frames - 1} steps per round"))
    print(table(["part", "CPU ms"], list(result["parts_cpu_ms"].items()), "this revision's parts"))
    if args.against:
        print(f"outputs identical to {args.against}: {result['identical']} (max |diff| {result['max_abs_diff']})")
    print(load_note(env))
    print(write_result(args.name, result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
