"""Sharding throughput: the same plan cut by 1, 2 (and 4) shard tasks (farm/shard.py), frames per second.

    python bench/shard.py [--clip bikes|bigbuckbunny] [--tasks 1 2] [--repeats 3] [--chunk-frames 25]

Each run cuts every chunk of the plan (warm-up frames included, as a job does)
into a fresh local store with farm's own LocalSharders and ShardFeeder, the
chunks taken (and their objects deleted, as workers do) as soon as they are
ready; the task processes are started and warm before the clock starts. Runs
alternate between task counts; medians are reported. Results:
bench/results/shard.json.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from common import environment, load_note, median, sample, table, write_result


def cut_all(clip: Path, tasks: int, chunk_frames: int, warmup: int, store_root: Path) -> tuple[float, int]:
    from farm import video
    from farm.plan import Layout, plan_chunks
    from farm.shard import LocalSharders, ShardFeeder, plan_spans, seek_table
    from farm.store import LocalStore

    info = video.probe(clip)
    chunks = plan_chunks(info.frames, chunk_frames, warmup)
    store, layout = LocalStore(store_root), Layout("bench")
    sharders = LocalSharders(tasks)
    try:
        list(sharders._pool.map(time.sleep, [0.5] * tasks))  # processes started, before the clock
        t0 = time.perf_counter()
        feeder = ShardFeeder(sharders, plan_spans(chunks, seek_table(clip)), (str(clip), info, store.uri, "bench"),
                             depth=2 * tasks + 2, tasks=tasks)
        while not feeder.exhausted:
            if (chunk := feeder.take(timeout=1.0)) is not None:
                store.delete_prefix(layout.input(chunk.index, video.SEGMENT_EXT))
        wall = time.perf_counter() - t0
    finally:
        sharders.close()
    return wall, sum(c.end - c.first for c in chunks)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--tasks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-frames", type=int, default=25)
    parser.add_argument("--warmup", type=int, default=12)
    args = parser.parse_args()
    env = environment()  # the CPU's model and flags included (bench/common.py)
    clip = sample(args.clip)
    walls: dict[int, list[float]] = {n: [] for n in args.tasks}
    frames = 0
    with tempfile.TemporaryDirectory(prefix="farm-bench-shard-") as tmp:
        for repeat in range(args.repeats):
            for n in args.tasks:
                wall, frames = cut_all(clip, n, args.chunk_frames, args.warmup, Path(tmp) / f"{n}-{repeat}")
                walls[n].append(wall)
                print(f"repeat {repeat}: {n} task(s) {wall:.2f} s", flush=True)
    base = median(walls[args.tasks[0]])
    rows = [[n, f"{median(w):.2f}", f"{frames / median(w):.1f}", f"{base / median(w):.2f}x",
             " ".join(f"{x:.2f}" for x in w)] for n, w in walls.items()]
    print(table(["shard tasks", "median s", "frames/s", "speed-up", "runs (s)"], rows,
                title=f"{args.clip}: {frames} frames cut (warm-up included), chunks of {args.chunk_frames}"))
    print(load_note(env))
    path = write_result("shard", {"environment": env, "clip": args.clip, "frames_cut": frames,
                                  "chunk_frames": args.chunk_frames, "warmup": args.warmup,
                                  "runs_s": {str(n): w for n, w in walls.items()},
                                  "median_s": {str(n): median(w) for n, w in walls.items()},
                                  "frames_per_s": {str(n): frames / median(w) for n, w in walls.items()}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
