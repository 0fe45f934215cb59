"""Film scale, in miniature: 500 chunks of a long tiny clip against a real S3 server (SeaweedFS on loopback),
on Ray (actors and shard tasks; bench/film.py runs the same on local processes)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.clips import make_clip
from tests.conftest import BUCKET
from tests.test_cli import video_facts

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_a_500_chunk_job_renders_every_frame_once(cli, ray_local, s3_env, tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_FORWARD_AWS_KEYS", "1")  # the session's Ray was not started with the test's keys
    store = f"s3://{BUCKET}/film/{uuid.uuid4().hex[:8]}"
    clip = make_clip(tmp_path / "film.mp4", frames=1000, width=64, height=36)
    result = cli("submit", clip, "--store", store, "--job-id", "film", "--chunk-frames", "2", "--no-gif",
                 "--shard-tasks", "2", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["chunks"], report["chunks_rendered"], report["frames"]) == (500, 500, 1000)
    src, out = video_facts(clip), video_facts(Path(report["output"]))
    assert out["frames"] == 1000 and out["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)
    status = json.loads(cli("status", "film", "--store", store, "--json").stdout)
    assert (status["state"], status["chunks_done"], status["frames_done"]) == ("done", 500, 1000)
