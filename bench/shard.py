"""Sharding throughput: the same plan cut by 1, 2 (and 4) shard tasks (farm/shard.py), frames per second.

    python bench/shard.py [--clip bikes|bigbuckbunny] [--tasks 1 2] [--repeats 3] [--chunk-frames 25]
                          [--detect off on]

Each run cuts every chunk of the plan (warm-up frames included, as a job does)
into a fresh local store with farm's own LocalSharders and ShardFeeder, the
chunks taken (and their objects deleted, as workers do) as soon as they are
ready; the task processes are started, with farm's shard and cut modules
imported, before the clock starts. ``--detect on`` has the tasks look for hard
cuts too, as a job with coherence on does (farm/shots.py). Runs alternate
between task counts and detection; medians are reported: wall time, and the
CPU seconds (user + sys, from /proc) the shard processes spent per frame,
which shows how the work scales whatever else the machine runs. Results:
bench/results/shard.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import environment, load_note, median, sample, table, write_result


def _warm(_: int) -> None:
    import importlib

    for module in ("farm.shard", "farm.temporal.cuts"):
        importlib.import_module(module)

    time.sleep(0.5)  # long enough that every process of the pool takes one


def cpu_seconds(pids) -> float:
    """user + sys seconds of these processes so far."""
    tick, total = os.sysconf("SC_CLK_TCK"), 0.0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cut_all(clip: Path, tasks: int, chunk_frames: int, warmup: int, store_root: Path,
            detect: bool) -> tuple[float, float, int]:
    from farm import video
    from farm.plan import Layout, plan_chunks
    from farm.shard import LocalSharders, ShardFeeder, plan_spans, seek_table
    from farm.shots import ShotBook
    from farm.store import LocalStore

    info = video.probe(clip)
    chunks = plan_chunks(info.frames, chunk_frames, warmup)
    store, layout = LocalStore(store_root), Layout("bench")
    sharders = LocalSharders(tasks)
    try:
        list(sharders._pool.map(_warm, range(tasks)))  # processes started and warm, before the clock
        pids = list(sharders._pool._processes)
        cpu0, t0 = cpu_seconds(pids), time.perf_counter()
        feeder = ShardFeeder(sharders, plan_spans(chunks, seek_table(clip)), (str(clip), info, store.uri, "bench"),
                             depth=2 * tasks + 2, tasks=tasks, book=ShotBook() if detect else None)
        while not feeder.exhausted:
            if (chunk := feeder.take(timeout=1.0)) is not None:
                store.delete_prefix(layout.input(chunk.index, video.SEGMENT_EXT))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pids) - cpu0
    finally:
        sharders.close()
    return wall, cpu, sum(c.end - c.first for c in chunks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--detect", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--name", default="shard", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    env = environment()  # the CPU's model and flags included (bench/common.py)
    clip = sample(args.clip)
    runs = [(n, d) for n in args.tasks for d in args.detect]
    walls: dict[tuple, list[float]] = {r: [] for r in runs}
    cpus: dict[tuple, list[float]] = {r: [] for r in runs}
    frames = 0
    with tempfile.TemporaryDirectory(prefix="farm-bench-shard-") as tmp:
        for repeat in range(args.repeats):
            for n, d in runs:
                wall, cpu, frames = cut_all(clip, n, args.chunk_frames, args.warmup, Path(tmp) / f"{n}{d}-{repeat}",
                                            d == "on")
                walls[n, d].append(wall)
                cpus[n, d].append(cpu)
                print(f"repeat {repeat}: {n} task(s), cuts {d}: {wall:.2f} s, {1000 * cpu / frames:.2f} CPU ms/frame "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    rows = []
    for (n, d), w in walls.items():
        base = median(walls[args.tasks[0], d])
        rows.append([n, d, f"{median(w):.2f}", f"{frames / median(w):.1f}", f"{base / median(w):.2f}x",
                     f"{1000 * median(cpus[n, d]) / frames:.2f}", " ".join(f"{x:.2f}" for x in w)])
    print(table(["shard tasks", "cuts", "median s", "frames/s", "speed-up", "CPU ms/frame", "runs (s)"], rows,
                title=f"{args.clip}: {frames} frames cut (warm-up included), chunks of {args.chunk_frames}"))
    print(load_note(env))
    key = [f"{n} {d}" for n, d in runs]
    path = write_result(args.name, {"environment": env, "clip": args.clip, "frames_cut": frames,
                                  "chunk_frames": args.chunk_frames, "warmup": args.warmup,
                                  "runs_s": dict(zip(key, walls.values())),
                                  "cpu_s": dict(zip(key, cpus.values())),
                                  "median_s": {k: median(w) for k, w in zip(key, walls.values())},
                                  "cpu_ms_per_frame": {k: 1000 * median(c) / frames for k, c in zip(key, cpus.values())},
                                  "frames_per_s": {k: frames / median(w) for k, w in zip(key, walls.values())}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
