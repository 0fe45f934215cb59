"""Jobs live in the object store: resume after a crash, idempotent re-runs, corrupt chunks, `farm status`."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from farm.plan import Receipt
from farm.store import open_store
from tests.clips import make_clip
from tests.test_cli import video_facts
from tests.waiting import wait_until


def receipts(store_root: Path, job_id: str) -> dict[int, Receipt]:
    store = open_store(str(store_root))
    keys = [k for k in store.list(f"jobs/{job_id}/output/") if k.endswith(".json")]
    found = (Receipt.model_validate_json(store.get_bytes(k)) for k in keys)
    return {r.chunk: r for r in found}


def run_json(cli, *args) -> dict:
    result = cli(*args, "--json")
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_same_job_id_twice_renders_nothing_again(cli, tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=12, width=64, height=48)
    first = run_json(cli, "submit", clip, "--job-id", "twice", "--chunk-frames", "4", "--no-gif")
    again = run_json(cli, "submit", clip, "--job-id", "twice", "--chunk-frames", "4", "--no-gif")
    assert (first["chunks_rendered"], again["chunks_rendered"]) == (3, 0)
    assert video_facts(Path(again["output"]))["frames"] == 12


def test_changed_spec_under_same_id_is_refused(cli, tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=6, width=64, height=48)
    run_json(cli, "submit", clip, "--job-id", "fixed", "--no-gif")
    result = cli("submit", clip, "--job-id", "fixed", "--no-gif", "--style", "mosaic")
    assert result.code == 2 and "already exists with a different spec" in result.stderr


def test_a_job_painted_by_another_farm_is_refused_with_the_way_out(cli, tmp_path, private_store):
    """Chunks painted by an earlier painter would meet this one's with seams: the same id is refused, resumed or
    not, with one line that says what to do instead."""
    clip = make_clip(tmp_path / "a.mp4", frames=6, width=64, height=48)
    run_json(cli, "submit", clip, "--job-id", "old", "--no-gif")
    manifest = private_store / "jobs" / "old" / "manifest.json"
    written = json.loads(manifest.read_text())
    assert written["painter"] >= 1
    del written["painter"]  # as farm wrote it before it recorded its painter
    manifest.write_text(json.dumps(written))
    for args in (("submit", clip, "--job-id", "old", "--no-gif"), ("resume", "old")):
        result = cli(*args)
        assert result.code == 2 and "painted by another version of farm" in result.stderr, result.stderr
        assert "another --job-id" in result.stderr and result.stderr.count("farm: error") == 1
    assert run_json(cli, "submit", clip, "--job-id", "new", "--no-gif")["chunks_rendered"] >= 1


@pytest.mark.parametrize("bad", ["../escape", "a/b", "x..y", ".hidden", "sp ace"])
def test_bad_job_ids_are_refused(cli, tmp_path, bad):
    clip = make_clip(tmp_path / "a.mp4", frames=4, width=64, height=48)
    result = cli("submit", clip, "--job-id", bad)
    assert result.code == 2 and "invalid job id" in result.stderr
    assert not list(tmp_path.glob("*_vangogh*"))


def test_status_reports_a_finished_job(cli, tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=10, width=64, height=48)
    run_json(cli, "submit", clip, "--job-id", "seen", "--chunk-frames", "5")
    status = run_json(cli, "status", "seen")
    assert status["state"] == "done"
    assert (status["chunks_done"], status["chunks"], status["frames_done"], status["frames"]) == (2, 2, 10, 10)
    assert status["outputs"]["video"] == str(tmp_path / "a_vangogh.mp4")
    assert status["elapsed_seconds"] > 0
    assert cli("status", "nope").code == 2


def test_corrupt_output_chunk_is_rendered_again_never_muxed(cli, tmp_path, private_store):
    clip = make_clip(tmp_path / "a.mp4", frames=12, width=64, height=48)
    run_json(cli, "submit", clip, "--job-id", "rot", "--chunk-frames", "4", "--no-gif", "--keep")
    before = receipts(private_store, "rot")
    chunk_file = private_store / before[1].key
    chunk_file.write_bytes(b"\0" * chunk_file.stat().st_size)  # same size: only the checksum can tell
    (private_store / before[2].key).write_bytes(b"short")  # truncated: the size tells
    again = run_json(cli, "submit", clip, "--job-id", "rot", "--chunk-frames", "4", "--no-gif", "--keep")
    after = receipts(private_store, "rot")
    assert after[0] == before[0]  # the healthy chunk was kept
    for i in (1, 2):  # both damaged chunks were rendered again and now match their receipts
        data = (private_store / after[i].key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == after[i].sha256 and data.count(0) < len(data) // 2
    # chunk 2 (its size wrong) was rendered before the reduce, chunk 1 (its checksum wrong) by the reducer's
    # repair: on the job's one pool (of one worker, for one chunk), not on a second one started for it
    assert after[1].pid == after[2].pid
    facts = video_facts(Path(again["output"]))
    assert facts["frames"] == 12 and facts["pts_seconds"] == pytest.approx(video_facts(clip)["pts_seconds"])


@pytest.mark.slow
def test_killed_driver_resumes_without_redoing_finished_chunks(cli, ray_head, ray_local, tmp_path, private_store):
    clip = make_clip(tmp_path / "long.mp4", frames=60, width=256, height=192, audio=True)
    address = ray_local.get_runtime_context().gcs_address
    cmd = [sys.executable, "-m", "farm.cli", "submit", str(clip), "--job-id", "crash", "--chunk-frames", "6",
           "--no-gif", "--json", "--address", address]
    driver = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              start_new_session=True)
    wait_until(lambda: len(receipts(private_store, "crash")) >= 2, "two chunks", timeout=600, process=driver)
    os.killpg(driver.pid, signal.SIGKILL)
    driver.wait()
    assert not (tmp_path / "long_vangogh.mp4").exists()
    # Ray ends a dead driver's actors; until their processes are gone one may still store a chunk
    wait_until(lambda: not ray_head.pids(named="ray::_RayStyleWorker"), "the dead driver's actors to end")
    finished = receipts(private_store, "crash")
    assert 2 <= len(finished) < 10
    status = run_json(cli, "status", "crash")
    assert status["chunks_done"] == len(finished) and status["state"] != "done"

    resumed = run_json(cli, "resume", "crash")
    assert resumed["chunks_rendered"] == 10 - len(finished)
    after = receipts(private_store, "crash")
    assert all(after[i] == r for i, r in finished.items())  # not recomputed
    assert sorted(after) == list(range(10))
    src, out = video_facts(clip), video_facts(tmp_path / "long_vangogh.mp4")
    assert out["frames"] == 60 and out["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)
    assert out["audio_codec"] == "aac"


def test_chunk_that_keeps_failing_stops_the_job_naming_it_and_the_job_resumes(cli, tmp_path, private_store):
    clip = make_clip(tmp_path / "poison.mp4", frames=18, width=64, height=48)
    blocker = private_store / "jobs" / "poisoned" / "output" / "000001.mp4"
    blocker.mkdir(parents=True)  # chunk 1's output can never be stored: every attempt fails the same way
    failed = cli("submit", clip, "--job-id", "poisoned", "--chunk-frames", "6", "--no-gif", "--json")
    assert failed.code == 1 and failed.stdout == ""
    assert failed.stderr.startswith("farm: error: chunk 1 failed 3 times:") and failed.stderr.count("\n") == 1
    assert not (tmp_path / "poison_vangogh.mp4").exists()
    status = run_json(cli, "status", "poisoned")
    assert status["state"] == "failed" and "chunk 1" in status["error"]
    kept = receipts(private_store, "poisoned")
    assert 1 not in kept

    blocker.rmdir()  # the cause is fixed: the job finishes without redoing what was done
    resumed = run_json(cli, "resume", "poisoned")
    assert resumed["chunks_rendered"] == 3 - len(kept)
    after = receipts(private_store, "poisoned")
    assert sorted(after) == [0, 1, 2] and all(after[i] == r for i, r in kept.items())
    assert video_facts(Path(resumed["output"]))["frames"] == 18
