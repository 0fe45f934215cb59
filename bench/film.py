"""Film scale: a long, tiny clip cut into hundreds of chunks, rendered against SeaweedFS on loopback.

    python bench/film.py [--frames 1000] [--chunk-frames 1000 10 2] [--status-chunks 1000] [--no-temporal]

For each chunk length, ``farm submit`` (a subprocess, as a user runs it; no GIF; the temporal pass on,
so each chunk also renders its warm-up frames, counted as its frames' work) renders a ``--frames`` 64x36 clip into a fresh prefix of one
SeaweedFS. Reports, per run:

- wall time, worker time (the receipts' stage seconds, summed), and the worker time per chunk beyond
  its frames' own work (decode, network, temporal pass, encode): the receipts' fetch + upload + setup
  seconds (setup: the rest of the worker's call outside the frames' pipeline, timed by the worker) per
  chunk, plus one receipt PUT (timed here against the same server: a receipt cannot time its own PUT). (A fit of worker time = a x frames + b x chunks over the
  runs gave a negative b on this loaded machine: the per-frame cost is not steady enough to separate.)
- the driver's peak RSS (flat from 100 to 1,000 chunks is the target);
- S3 requests per chunk, from the server's own Prometheus counters (SeaweedFS_s3_request_total),
  less the requests this bench's status calls made;
- how long a ``farm status`` (farm.jobs.job_status, in process) took during the job, and its requests.

Then the status of a fabricated running job of ``--status-chunks`` chunks (manifest, state, a receipt
and an output object per chunk), timed and counted. Results: bench/results/film.json.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from common import environment, load_note, median, run, table, tool, write_result

from tests.clips import make_clip
from tests.s3server import SeaweedS3, free_loopback_ports

BUCKET = "farm-bench"


class MeteredSeaweed(SeaweedS3):
    """The tests' SeaweedFS with its Prometheus metrics on a loopback port."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics_port = free_loopback_ports(1)[0]

    def command(self) -> list[str]:
        return [*super().command(), f"-metricsPort={self.metrics_port}", "-metricsIp=127.0.0.1"]

    def requests(self) -> float:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=10).read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("SeaweedFS_s3_request_total"))


def counted_store(uri: str):
    """An S3Store of this process whose requests are counted (botocore's before-send hook)."""
    from farm.store import open_store

    store, sent = open_store(uri), []
    store.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw["event_name"]))
    return store, sent


def render(server: MeteredSeaweed, clip: Path, chunk_frames: int, workdir: Path, temporal: bool = True) -> dict:
    from farm.jobs import job_status

    uri = f"s3://{BUCKET}/film-{uuid.uuid4().hex[:8]}"
    store, sent = counted_store(uri)
    statuses: list[dict] = []
    next_look = [time.monotonic() + 3.0]

    def watch() -> None:  # one status every 3 s while the job runs, as a user's `farm status` would
        if time.monotonic() < next_look[0]:
            return
        before = len(sent)
        t0 = time.perf_counter()
        try:
            status = job_status(store, "film")
        except Exception:  # noqa: BLE001 - no manifest yet
            next_look[0] = time.monotonic() + 0.5
            return
        statuses.append({"seconds": time.perf_counter() - t0, "requests": len(sent) - before,
                         "chunks_done": status.chunks_done, "chunks": status.chunks})
        next_look[0] = time.monotonic() + 3.0

    before = server.requests()
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [tool("farm"), "submit", clip, "--json", "--store", uri, "--job-id", "film", "-o", workdir / "out.mp4",
           "--no-gif", "--chunk-frames", chunk_frames, "--keep", *([] if temporal else ["--no-temporal"])]
    # no `ray start` cluster of someone else's is joined: the job runs on its own processes, as on a laptop
    env = {**server.env(), "RAY_TMPDIR": str(workdir / "no-ray"), "RAY_ADDRESS": ""}
    result = run(cmd, cwd=workdir, rss=True, watch=watch, env=env)
    if result["rc"] != 0:
        raise SystemExit(result["stderr"][-3000:])
    total = server.requests() - before - len(sent)
    report = json.loads(result["stdout"].strip().splitlines()[-1])
    keys = [k for k in store.list("jobs/film/output/") if k.endswith(".json")]
    from farm.plan import Receipt

    stages: dict[str, float] = {}
    for key in keys:
        for stage, seconds in Receipt.model_validate_json(store.get_bytes(key)).seconds.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
    worker_s = sum(v for k, v in stages.items() if not k.endswith("_cpu"))  # wall; "<stage>_cpu" is CPU
    from farm.config import TemporalOptions
    from farm.plan import plan_chunks

    warmup = TemporalOptions().warmup if temporal else 0
    rendered = sum(c.frames + c.warmup for c in plan_chunks(report["frames"], chunk_frames, warmup))
    return {"chunk_frames": chunk_frames, "chunks": report["chunks"], "wall_s": result["wall_s"],
            "frames_rendered": rendered,
            "worker_s": worker_s, "stages_s": stages, "driver_peak_rss_mib": result["peak_rss"] / 2**20, "s3_requests": total,
            "s3_requests_per_chunk": total / report["chunks"], "statuses": statuses, "frames": report["frames"]}


def receipt_put(server_uri: str, repeats: int = 30) -> float:
    """Median seconds of one receipt-sized PUT (what a worker does last for each chunk)."""
    from farm.store import open_store

    store, times = open_store(server_uri), []
    body = b"x" * 420
    for i in range(repeats):
        t0 = time.perf_counter()
        store.put_bytes(f"receipt-probe/{i:06d}.json", body)
        times.append(time.perf_counter() - t0)
    return median(times)


def fabricated_status(server: MeteredSeaweed, chunks: int, repeats: int = 5) -> dict:
    from farm.jobs import job_status
    from tests.test_job_store import fake_job

    uri = f"s3://{BUCKET}/status-{uuid.uuid4().hex[:8]}"
    store, sent = counted_store(uri)
    fake_job(store, "film", frames=2 * chunks, chunk_frames=2, finished=chunks)
    times, counts = [], []
    for _ in range(repeats):
        before = len(sent)
        t0 = time.perf_counter()
        status = job_status(store, "film")
        times.append(time.perf_counter() - t0)
        counts.append(len(sent) - before)
    assert status.chunks_done == chunks
    return {"chunks": chunks, "seconds": times, "median_s": median(times), "requests": counts}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--chunk-frames", type=int, nargs="+", default=[1000, 10, 2])
    parser.add_argument("--status-chunks", type=int, default=1000)
    parser.add_argument("--no-temporal", action="store_true",
                        help="per-frame jobs: no warm-up frames, so many chunks cost few frames (on a busy machine)")
    args = parser.parse_args()
    env = environment()
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    with tempfile.TemporaryDirectory(prefix="farm-bench-film-") as tmp, MeteredSeaweed() as server:
        os.environ.update(server.env())
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        server.create_bucket(BUCKET)
        clip = make_clip(Path(tmp) / "film.mp4", frames=args.frames, width=64, height=36)
        runs = []
        for n in args.chunk_frames:
            runs.append(render(server, clip, n, Path(tmp) / f"cf{n}", temporal=not args.no_temporal))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "statuses"}), flush=True)
        status = fabricated_status(server, args.status_chunks)
        put_s = receipt_put(f"s3://{BUCKET}/probe-{uuid.uuid4().hex[:8]}")
    rows = []
    for r in runs:
        during = [s for s in r["statuses"] if s["chunks_done"] < s["chunks"]]
        stages = r["stages_s"]
        r["overhead_s_per_chunk"] = {name: stages.get(name, 0.0) / r["chunks"] for name in ("fetch", "upload", "setup")}
        r["overhead_s_per_chunk"]["receipt_put"] = put_s
        overhead = sum(r["overhead_s_per_chunk"].values())
        rows.append([r["chunks"], f"{r['wall_s']:.1f}", f"{r['worker_s']:.1f}",
                     " + ".join(f"{v:.3f}" for v in r["overhead_s_per_chunk"].values()) + f" = {overhead:.3f}",
                     f"{r['driver_peak_rss_mib']:.0f}",
                     f"{r['s3_requests_per_chunk']:.1f}",
                     f"{median([s['seconds'] for s in during]):.3f} s / {during[0]['requests']} req" if during else "-"])
    print(table(["chunks", "wall s", "worker s", "worker overhead s/chunk (fetch+upload+setup+receipt)", "driver MiB", "S3 req/chunk", "status during job"],
                rows, title=f"{args.frames} frames of 64x36 (warm-up frames included in the work), against SeaweedFS on loopback"))
    print(f"status of a running {status['chunks']}-chunk job: median {status['median_s']:.3f} s, "
          f"{status['requests'][0]} requests")
    print(load_note(env))
    print(f"wrote {write_result('film', {'environment': env, 'frames': args.frames, 'temporal': not args.no_temporal, 'runs': runs, 'status': status})}")


if __name__ == "__main__":
    main()
