"""Sharding throughput: the same plan cut by 1, 2 (and 4) shard tasks (farm/shard.py), frames per second.

    python bench/shard.py [--clip bikes|bigbuckbunny] [--tasks 1 2] [--repeats 3] [--chunk-frames 25]
                          [--detect off on] [--copy off on]

Each run cuts every chunk of the plan (warm-up frames included, as a job does)
into a fresh local store with farm's own LocalSharders and ShardFeeder, the
chunks taken (and their objects deleted, as workers do) as soon as they are
ready; the task processes are started, with farm's shard and cut modules
imported, before the clock starts. ``--detect on`` has the tasks look for hard
cuts too, as a job with coherence on does (farm/shots.py). ``--copy on`` lets
the tasks stream-copy the chunks that allow it (farm/video/remux.py), ``off``
cuts every chunk losslessly (``farm submit --no-stream-copy``). Runs alternate
between task counts, detection and copy; medians are reported: wall time, and
the CPU seconds (user + sys, from /proc) the shard processes spent per frame,
which shows how the work scales whatever else the machine runs. After the
clock stops, every input object is read back as a worker reads it (one
decoder thread, CPU time of this process) and its bytes counted: the worker's
decode per frame, its lead and warm-up included, per frame cut. Results:
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
            detect: bool, copy: bool) -> tuple[float, float, int, float, int, int]:
    """wall s, shard CPU s, frames cut; worker read CPU s, input bytes, chunks copied."""
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
                             depth=2 * tasks + 2, tasks=tasks, book=ShotBook() if detect else None, copy=copy)
        taken = []
        while not feeder.exhausted:
            if (chunk := feeder.take(timeout=1.0)) is not None:
                taken.append(chunk)  # kept, and read after the clock: a worker's decode
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pids) - cpu0
    finally:
        sharders.close()
    read0, size = time.process_time(), 0
    for chunk in taken:
        path = store.local_path(layout.input(chunk.index, video.SEGMENT_EXT))
        size += path.stat().st_size
        frames = (video.read_segment(path, threads=1) if chunk.lead is None
                  else video.read_copied(path, info, chunk.lead, chunk.end - chunk.first, threads=1))
        for _ in frames:
            pass
        path.unlink()
    read = time.process_time() - read0
    return wall, cpu, sum(c.end - c.first for c in chunks), read, size, sum(c.lead is not None for c in taken)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=12)
    parser.add_argument("--detect", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--copy", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--name", default="shard", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    env = environment()  # the CPU's model and flags included (bench/common.py)
    clip = sample(args.clip)
    runs = [(n, d, c) for n in args.tasks for d in args.detect for c in args.copy]
    walls: dict[tuple, list[float]] = {r: [] for r in runs}
    cpus: dict[tuple, list[float]] = {r: [] for r in runs}
    reads: dict[tuple, list[float]] = {r: [] for r in runs}
    sizes: dict[tuple, int] = {}
    copied: dict[tuple, int] = {}
    frames = 0
    with tempfile.TemporaryDirectory(prefix="farm-bench-shard-") as tmp:
        for repeat in range(args.repeats):
            for n, d, c in runs:
                wall, cpu, frames, read, sizes[n, d, c], copied[n, d, c] = cut_all(
                    clip, n, args.chunk_frames, args.warmup, Path(tmp) / f"{n}{d}{c}-{repeat}", d == "on", c == "on")
                walls[n, d, c].append(wall)
                cpus[n, d, c].append(cpu)
                reads[n, d, c].append(read)
                print(f"repeat {repeat}: {n} task(s), cuts {d}, copy {c}: {wall:.2f} s, {1000 * cpu / frames:.2f} "
                      f"CPU ms/frame, read {1000 * read / frames:.2f} ms/frame, {copied[n, d, c]} chunks copied "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    rows = []
    for (n, d, c), w in walls.items():
        base = median(walls[args.tasks[0], d, c])
        rows.append([n, d, c, f"{median(w):.2f}", f"{frames / median(w):.1f}", f"{base / median(w):.2f}x",
                     f"{1000 * median(cpus[n, d, c]) / frames:.2f}", f"{1000 * median(reads[n, d, c]) / frames:.2f}",
                     f"{sizes[n, d, c] / 1024 / frames:.1f}", copied[n, d, c], " ".join(f"{x:.2f}" for x in w)])
    print(table(["shard tasks", "cuts", "copy", "median s", "frames/s", "speed-up", "CPU ms/frame",
                 "read ms/frame", "KiB/frame", "chunks copied", "runs (s)"], rows,
                title=f"{args.clip}: {frames} frames cut (warm-up included), chunks of {args.chunk_frames}"))
    print(load_note(env))
    key = [f"{n} {d} copy {c}" for n, d, c in runs]
    path = write_result(args.name, {"environment": env, "clip": args.clip, "frames_cut": frames,
                                  "chunk_frames": args.chunk_frames, "warmup": args.warmup,
                                  "runs_s": dict(zip(key, walls.values())),
                                  "cpu_s": dict(zip(key, cpus.values())),
                                  "median_s": {k: median(w) for k, w in zip(key, walls.values())},
                                  "cpu_ms_per_frame": {k: 1000 * median(c) / frames for k, c in zip(key, cpus.values())},
                                  "read_ms_per_frame": {k: 1000 * median(r) / frames
                                                        for k, r in zip(key, reads.values())},
                                  "kib_per_frame": {k: sizes[r] / 1024 / frames for k, r in zip(key, runs)},
                                  "chunks_copied": {k: copied[r] for k, r in zip(key, runs)},
                                  "frames_per_s": {k: frames / median(w) for k, w in zip(key, walls.values())}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
