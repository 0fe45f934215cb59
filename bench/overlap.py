"""Does overlapping a worker's stages pay on a CPU? One worker renders the same chunk serially and overlapped.

    python bench/overlap.py [--clip bikes] [--frames 96] [--rounds 3] [--threads 1] [--flow dis]

A ``StyleWorker`` (``--threads`` torch/OpenCV/FFmpeg threads, as farm gives each CPU worker) renders
one chunk of the clip's first ``--frames`` frames from a local store, with ``overlap=0`` (decode,
paint, encode one after another) and ``overlap=2`` (decoding two batches ahead and encoding two
behind, in threads), the two taking turns for ``--rounds`` rounds after one untimed warm-up each.
Prints the median wall time per frame of each and their ratio; bench/results/overlap.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import cut_clip, environment, load_note, sample, table, write_result  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="bikes")
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--flow", default="dis", choices=("dis", "torch"))
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"))
    args = parser.parse_args()

    from farm import video
    from farm.config import RenderOptions, TemporalOptions
    from farm.plan import Chunk, Layout
    from farm.shard import shard
    from farm.store import LocalStore
    from farm.styles.catalog import load_catalog
    from farm.worker import JobContext, StyleWorker

    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench-overlap-") as tmp:
        tmp = Path(tmp)
        clip = cut_clip(sample(args.clip), tmp / "clip.mp4", args.frames)
        info = video.probe(clip)
        store, chunk = LocalStore(tmp / "store"), Chunk(index=0, start=0, end=info.frames)
        list(shard(clip, info, [chunk], store, Layout("bench")))
        options = RenderOptions(style=load_catalog().resolve("vangogh"), precision=args.precision,
                                temporal=TemporalOptions(flow=args.flow))
        job = JobContext(job_id="bench", store_uri=store.uri, render=options, width=info.out_width,
                         height=info.out_height, time_base=info.time_base)
        workers = {depth: StyleWorker(device="cpu", threads=args.threads, overlap=depth) for depth in (0, 2)}
        for worker in workers.values():
            worker.prepare(job)
            worker.render(job, chunk)
        seconds: dict[int, list[float]] = {0: [], 2: []}
        stages: dict[int, dict] = {}
        for _ in range(args.rounds):
            for depth, worker in workers.items():
                t0 = time.perf_counter()
                stages[depth] = worker.render(job, chunk).seconds
                seconds[depth].append(time.perf_counter() - t0)
    ms = {d: 1000 * statistics.median(s) / info.frames for d, s in seconds.items()}
    rows = [["serial (overlap 0)", ms[0], *(stages[0].get(k, 0) for k in ("decode", "network", "temporal", "encode"))],
            ["overlapped (overlap 2)", ms[2], *(stages[2].get(k, 0) for k in ("decode", "network", "temporal", "encode"))]]
    print(table(["worker", "ms/frame (median)", "decode s", "network s", "temporal s", "encode s"], rows,
                f"{args.clip} {info.out_width}x{info.out_height}, {info.frames} frames, {args.threads} thread(s), "
                f"flow {args.flow}, {args.rounds} alternating rounds"))
    print(f"overlapped / serial: {ms[2] / ms[0]:.3f}")
    print(load_note(env))
    result = {"environment": env, "args": vars(args), "seconds": seconds, "ms_per_frame": ms,
              "ratio": ms[2] / ms[0], "stages_last_round": stages}
    print(f"wrote {write_result('overlap', result)}", file=sys.stderr)


if __name__ == "__main__":
    main()
