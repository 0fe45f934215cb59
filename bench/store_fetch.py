"""A worker's fetch of one input chunk from S3: farm's S3Store.get_file against boto3's managed download.

    python bench/store_fetch.py [--sizes 2048 2097152] [--repeats 40]

Against SeaweedFS on loopback (tests/s3server.py): one object of each size, read ``--repeats`` times by
each way, taking turns; median milliseconds and the requests one read makes (botocore's before-send hook).
``download_file`` is what get_file did before (a HEAD, then a GET, through a transfer manager and its
thread pool per call). Results: bench/results/store_fetch.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from common import environment, load_note, median, table, write_result

from tests.s3server import SeaweedS3

BUCKET = "fetchbench"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[2048, 2 * 1024 * 1024])
    parser.add_argument("--repeats", type=int, default=40)
    args = parser.parse_args()
    env = environment()
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        del os.environ[name]
    results, rows = {}, []
    with SeaweedS3() as s3, tempfile.TemporaryDirectory(prefix="farm-bench-fetch-") as tmp:
        os.environ.update(s3.env())
        os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
        s3.create_bucket(BUCKET)
        from farm.store import _transfer_config, open_store

        store, sent = open_store(f"s3://{BUCKET}/p"), []
        store.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw["event_name"]))
        ways = {"boto3 download_file (before)": lambda key, dest: store.client.download_file(
                    BUCKET, f"p/{key}", str(dest), Config=_transfer_config()),
                "S3Store.get_file (now)": store.get_file}
        for size in args.sizes:
            src = Path(tmp) / f"in{size}.mp4"
            src.write_bytes(os.urandom(size))
            store.put_file(f"x/{size}.mp4", src)
            times: dict[str, list[float]] = {k: [] for k in ways}
            requests: dict[str, int] = {}
            for i in range(args.repeats):
                for name, fetch in ways.items():
                    dest, before = Path(tmp) / f"out{size}-{i}-{len(times[name])}.mp4", len(sent)
                    t0 = time.perf_counter()
                    fetch(f"x/{size}.mp4", dest)
                    times[name].append(time.perf_counter() - t0)
                    requests[name] = len(sent) - before
                    assert dest.read_bytes() == src.read_bytes()
                    dest.unlink()
            for name, values in times.items():
                rows.append([size, name, f"{1000 * median(values):.1f}", requests[name]])
            results[str(size)] = {name: {"median_ms": 1000 * median(v), "runs_s": v, "requests": requests[name]}
                                  for name, v in times.items()}
    print(table(["bytes", "way", "median ms", "requests"], rows,
                title=f"one object read from SeaweedFS on loopback, medians of {args.repeats} taking turns"))
    print(load_note(env))
    print(f"wrote {write_result('store_fetch', {'environment': env, 'sizes': results})}")


if __name__ == "__main__":
    main()
