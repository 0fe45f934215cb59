"""The whole pipeline against a real S3 server (SeaweedFS on 127.0.0.1): keys, outputs, a server restart."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from farm.store import S3Store
from tests.clips import make_clip
from tests.conftest import BUCKET
from tests.test_cli import video_facts
from tests.waiting import wait_until

pytestmark = pytest.mark.s3


def job_keys(store: S3Store, job_id: str) -> list[str]:
    return [k.removeprefix(f"jobs/{job_id}/") for k in store.list(f"jobs/{job_id}/")]


def test_submit_with_s3_store_puts_every_object_under_its_key(cli, s3_env, tmp_path):
    prefix = f"farm/{uuid.uuid4().hex[:8]}"
    clip = make_clip(tmp_path / "s3.mp4", frames=14, width=64, height=48, audio=True)
    result = cli("submit", clip, "--store", f"s3://{BUCKET}/{prefix}", "--job-id", "s3job",
                 "--chunk-frames", "5", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["store"] == f"s3://{BUCKET}/{prefix}"
    keys = job_keys(S3Store(BUCKET, prefix), "s3job")
    # delivered: the chunks went (their receipts stay as the job's record); in S3 the final files are the delivery
    assert keys == sorted(["manifest.json", "state.json", "final/s3_vangogh.mp4", "final/s3_vangogh.gif"]
                          + [f"output/{i:06d}.json" for i in range(3)])
    facts = video_facts(Path(report["output"]))
    assert facts["frames"] == 14 and facts["audio_codec"] == "aac"
    status = json.loads(cli("status", "s3job", "--store", f"s3://{BUCKET}/{prefix}", "--json").stdout)
    assert status["state"] == "done" and status["chunks_done"] == 3


def test_sources_upload_once_and_s3_sources_are_read_in_place(cli, s3_env, tmp_path):
    prefix = f"farm/{uuid.uuid4().hex[:8]}"
    store_uri, store = f"s3://{BUCKET}/{prefix}", S3Store(BUCKET, prefix)
    clip = make_clip(tmp_path / "same.mp4", frames=6, width=64, height=48)
    for job in ("one", "two"):
        result = cli("submit", clip, "--store", store_uri, "--job-id", job, "--no-gif")
        assert result.code == 0, result.stderr
    (staged,) = store.list("sources/")  # one upload for two jobs, named by content
    assert staged.endswith("/same.mp4") and len(staged.split("/")[1]) == 64
    remote = f"{store_uri}/{staged}"
    result = cli("submit", remote, "--store", store_uri, "--job-id", "three", "--no-gif", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["output"]) == tmp_path / "same_vangogh.mp4"
    assert video_facts(Path(report["output"]))["frames"] == 6
    missing = cli("submit", f"{store_uri}/sources/nope.mp4", "--store", store_uri)
    assert missing.code == 2 and "input not found" in missing.stderr


@pytest.mark.slow
def test_s3_restart_mid_job_loses_nothing(cli, ray_local, s3_env, tmp_path, monkeypatch):
    prefix = f"farm/{uuid.uuid4().hex[:8]}"
    store = S3Store(BUCKET, prefix)
    clip = make_clip(tmp_path / "r.mp4", frames=48, width=192, height=144)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "12")  # botocore's standard retry mode, backing off up to 20 s
    cmd = [sys.executable, "-m", "farm.cli", "submit", str(clip), "--store", f"s3://{BUCKET}/{prefix}",
           "--job-id", "bumpy", "--chunk-frames", "6", "--no-gif", "--json",
           "--address", ray_local.get_runtime_context().gcs_address]
    # the session's Ray was not started with this server's keys: hand them over (test keys, loopback only)
    monkeypatch.setenv("FARM_FORWARD_AWS_KEYS", "1")
    driver = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: any(k.endswith(".json") for k in store.list("jobs/bumpy/output/")), "a first chunk",
               process=driver)
    s3_env.restart()
    out, err = driver.communicate(timeout=900)
    if driver.returncode != 0:  # it may give up: then it says why in one line, and resume finishes it
        assert err.strip().count("\n") == 0 and err.startswith("farm: error:"), err
        result = cli("resume", "bumpy", "--store", f"s3://{BUCKET}/{prefix}", "--json")
        assert result.code == 0, result.stderr
        out = result.stdout
    report = json.loads(out)
    facts = video_facts(Path(report["output"]))
    assert facts["frames"] == 48
    assert facts["pts_seconds"] == pytest.approx(video_facts(clip)["pts_seconds"], abs=1e-3)


def test_photo_sequence_is_staged_photo_by_photo_and_read_back_on_the_cluster_side(cli, s3_env, tmp_path):
    from PIL import Image

    from tests.clips import pattern

    prefix = f"farm/{uuid.uuid4().hex[:8]}"
    store_uri, store = f"s3://{BUCKET}/{prefix}", S3Store(BUCKET, prefix)
    folder = tmp_path / "TimeLapse"
    folder.mkdir()
    for i in (1, 2, 10):
        Image.fromarray(pattern(i, 48, 32)).save(folder / f"IMG_{i}.png")
    result = cli("submit", str(folder), "--store", store_uri, "--job-id", "photos", "--no-gif")
    assert result.code == 0, result.stderr
    staged = store.list("sources/")
    assert sorted(key.rsplit("/", 1)[1] for key in staged) == ["IMG_1.png", "IMG_10.png", "IMG_2.png", "photos.json"]
    listing = next(key for key in staged if key.endswith("/photos.json"))
    result = cli("submit", f"{store_uri}/{listing}", "--store", store_uri, "--job-id", "again", "--no-gif", "--json")
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["frames"] == 3
