"""A job's footprint in the store: status in a few requests, chunks dropped after delivery, `farm jobs/rm/prune`."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from farm.config import JobSpec, RenderOptions, StyleChoice
from farm.jobs import job_status, write_state
from farm.plan import Layout, Manifest, Receipt, plan_chunks
from farm.store import S3Store, open_store
from tests.clips import make_clip
from tests.conftest import BUCKET


VANGOGH = StyleChoice(name="vangogh", weights=tuple(1.0 if i == 19 else 0.0 for i in range(26)))


def run_json(cli, *args):
    result = cli(*args, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def fake_job(store, job_id: str, frames: int, chunk_frames: int, finished: int, state: str = "running") -> None:
    """A job's manifest, state and ``finished`` chunks (receipt + output object each), written directly."""
    layout = Layout(job_id)
    chunks = plan_chunks(frames, chunk_frames, 0)
    spec = JobSpec(job_id=job_id, source="/clips/film.mp4", render=RenderOptions(style=VANGOGH),
                   store=store.uri, output="/out/film.mp4")
    manifest = Manifest(spec=spec, source_info={"frames": frames}, chunks=chunks, model_id="m",
                        created=datetime.now(timezone.utc).isoformat())
    store.put_bytes(layout.manifest, manifest.model_dump_json().encode())
    write_state(store, layout, state=state)

    def finish(chunk) -> None:
        key = layout.output(chunk.index, ".mp4")
        store.put_bytes(key, b"x" * 10)
        receipt = Receipt(chunk=chunk.index, key=key, frames=chunk.frames, size=10, sha256="0" * 64, node="n",
                          pid=1, seconds={})
        store.put_bytes(layout.receipt(chunk.index), receipt.model_dump_json().encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(finish, chunks[:finished]))


@pytest.mark.s3
def test_status_of_a_500_chunk_job_costs_three_requests(s3_env):
    store = S3Store(BUCKET, f"film/{uuid.uuid4().hex[:8]}")
    fake_job(store, "film", frames=1000, chunk_frames=2, finished=480)
    sent: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kw: sent.append(kw["event_name"]))
    status = job_status(store, "film")
    assert (status.chunks_done, status.chunks, status.frames_done, status.frames) == (480, 500, 960, 1000)
    assert status.chunk_bytes == 4800 and status.state == "running or interrupted"
    # the manifest, the state, one page of the listing (960 keys): not three requests per chunk
    assert sent == ["before-send.s3.GetObject", "before-send.s3.GetObject", "before-send.s3.ListObjectsV2"]


def test_delivered_job_drops_its_chunks_and_status_still_answers(cli, tmp_path, private_store):
    clip = make_clip(tmp_path / "a.mp4", frames=12, width=64, height=48)
    run_json(cli, "submit", clip, "--job-id", "lean", "--chunk-frames", "4")
    kept = sorted(p.relative_to(private_store / "jobs" / "lean").as_posix()
                  for p in (private_store / "jobs" / "lean").rglob("*") if p.is_file())
    # the chunks and the local store's copy of the video went; receipts (the job's record) stay
    assert kept == ["manifest.json", "output/000000.json", "output/000001.json", "output/000002.json", "state.json"]
    status = run_json(cli, "status", "lean")
    assert (status["state"], status["chunks_done"], status["frames_done"]) == ("done", 3, 12)
    assert status["outputs"]["stored_video"] is None and status["outputs"]["video"] == str(tmp_path / "a_vangogh.mp4")
    again = run_json(cli, "submit", clip, "--job-id", "lean", "--chunk-frames", "4")  # delivered: nothing to do
    assert again["chunks_rendered"] == 0 and again["chunks"] == 3

    run_json(cli, "submit", clip, "--job-id", "fat", "--chunk-frames", "4", "--no-gif", "--keep")
    fat = private_store / "jobs" / "fat"
    assert len(list((fat / "output").glob("*.mp4"))) == 3 and (fat / "final" / "a_vangogh.mp4").is_file()


def test_jobs_lists_rm_removes_and_status_answers_from_the_manifest(cli, tmp_path, private_store):
    clip = make_clip(tmp_path / "a.mp4", frames=8, width=64, height=48)
    run_json(cli, "submit", clip, "--job-id", "big", "--chunk-frames", "4", "--no-gif", "--keep")
    listed = {j["job_id"]: j for j in run_json(cli, "jobs")}
    assert listed["big"]["state"] == "done" and listed["big"]["bytes"] > 1000 and listed["big"]["age_seconds"] >= 0
    removed = cli("rm", "big")
    assert removed.code == 0 and "removed big" in removed.stderr
    left = sorted(p.name for p in (private_store / "jobs" / "big").rglob("*") if p.is_file())
    assert left == ["manifest.json", "state.json"]
    status = run_json(cli, "status", "big")
    assert status["state"] == "done" and status["removed"] and status["chunks"] == 2
    assert {j["job_id"]: j["state"] for j in run_json(cli, "jobs")}["big"] == "removed"
    assert cli("rm", "nope").code == 2


def test_prune_removes_only_jobs_older_than_asked(cli, private_store):
    store = open_store(str(private_store))
    fake_job(store, "old", frames=4, chunk_frames=2, finished=2, state="done")
    fake_job(store, "new", frames=4, chunk_frames=2, finished=2, state="done")
    week_ago = (datetime.now(timezone.utc) - timedelta(days=8)).isoformat()
    state = json.loads(store.get_bytes(Layout("old").state))
    store.put_bytes(Layout("old").state, json.dumps({**state, "updated": week_ago}).encode())
    result = cli("prune", "--older-than", "7d")
    assert result.code == 0 and "1 job removed" in result.stderr
    assert store.list("jobs/old/") == ["jobs/old/manifest.json", "jobs/old/state.json"]
    assert len(store.list("jobs/new/")) == 6
    assert cli("prune", "--older-than", "soon").code == 2


def test_a_remote_result_is_the_one_its_driver_recorded(tmp_path):
    from farm.api import PreparedJob, _fetch_results
    from farm.config import ClusterOptions
    from farm.driver import JobResult
    from farm.store import LocalStore
    from farm.video import probe

    clip = make_clip(tmp_path / "far.mp4", frames=4, width=64, height=48)
    store, layout = LocalStore(tmp_path / "store"), Layout("far")
    spec = JobSpec(job_id="far", source=str(clip), render=RenderOptions(style=VANGOGH), store=store.uri,
                   output=str(tmp_path / "mine.mp4"))
    store.put_bytes(layout.final("mine.mp4"), b"the video")
    recorded = JobResult(job_id="far", output="/tmp/farm-jobs/far/mine.mp4", gif=None, frames=4, fps=24.0, width=64,
                         height=48, style="vangogh", seconds=9.0, chunks=2, chunks_rendered=2, store=store.uri,
                         stages={"network": 1.5, "reduce": 0.2})
    write_state(store, layout, state="done", result=recorded.model_dump(mode="json"))
    job = PreparedJob(spec=spec, local_source=clip, info=probe(clip), cluster=ClusterOptions())
    result = _fetch_results(store, job, 12.5)
    assert (result.chunks, result.chunks_rendered, result.stages) == (2, 2, {"network": 1.5, "reduce": 0.2})
    assert result.output == str(tmp_path / "mine.mp4") and result.seconds == 12.5
    assert (tmp_path / "mine.mp4").read_bytes() == b"the video"
