"""Scheduling on Ray: pool sizing, a killed actor, a lost node, and jobs sent to a cluster's Jobs API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from farm.cluster import WARM_NAMESPACE, WARM_PREFIX
from farm.schedule import PoolShape, compile_mode, pool_shape
from farm.config import ClusterOptions
from farm.plan import Receipt
from farm.store import open_store
from farm.worker import IdleClock
from tests.clips import make_clip
from tests.conftest import BUCKET
from tests.test_cli import video_facts


@pytest.mark.parametrize("options, resources, nodes, shape", [
    (ClusterOptions(), {"CPU": 2}, [2], PoolShape(2, 0.0, 1.0)),  # small machines: 1-thread actors
    (ClusterOptions(threads=2), {"CPU": 2}, [2], PoolShape(1, 0.0, 2.0)),
    (ClusterOptions(), {"CPU": 2}, [1, 1], PoolShape(2, 0.0, 1.0)),  # an actor must fit on one node
    (ClusterOptions(), {"CPU": 64}, [32, 32], PoolShape(16, 0.0, 4.0)),
    (ClusterOptions(workers=2), {"CPU": 2}, [2], PoolShape(2, 0.0, 1.0)),
    (ClusterOptions(), {"CPU": 16, "GPU": 4}, [16], PoolShape(4, 1.0, 1.0)),
    (ClusterOptions(gpus_per_worker=0.5), {"CPU": 16, "GPU": 2}, [16], PoolShape(4, 0.5, 1.0)),
])
def test_pool_follows_the_cluster(options, resources, nodes, shape):
    assert pool_shape(options, resources, nodes) == shape


@pytest.mark.parametrize("options, resources, nodes, chunks, shape", [
    (ClusterOptions(), {"CPU": 2}, [2], 1, PoolShape(1, 0.0, 2.0)),  # one chunk: one actor with both cores
    (ClusterOptions(), {"CPU": 2}, [2], 5, PoolShape(2, 0.0, 1.0)),
    (ClusterOptions(), {"CPU": 64}, [32, 32], 4, PoolShape(4, 0.0, 16.0)),
    (ClusterOptions(), {"CPU": 16, "GPU": 4}, [16], 2, PoolShape(2, 1.0, 1.0)),  # no idle GPU actors
    (ClusterOptions(workers=2), {"CPU": 2}, [2], 1, PoolShape(2, 0.0, 1.0)),  # what the user asked for
])
def test_never_more_actors_than_chunks(options, resources, nodes, chunks, shape):
    assert pool_shape(options, resources, nodes, chunks=chunks) == shape


BIKES, HD = (272, 640), (720, 1280)


@pytest.mark.parametrize("compile, shape, frames, size, expected", [
    ("auto", PoolShape(2, 0.0, 1.0), 1000, BIKES, "on"),  # 500 frames per worker: a first build pays in the job
    ("auto", PoolShape(2, 0.0, 1.0), 274, BIKES, "cached"),  # bikes.mp4 and its warm-up: a package if one is built
    ("auto", PoolShape(2, 0.0, 1.0), 200, HD, "on"),  # 720p: 5x the pixels per frame, 5x the time saved
    ("auto", PoolShape(4, 1.0, 1.0), 100_000, HD, "off"),  # GPUs: not measured yet, eager
    ("on", PoolShape(2, 0.0, 1.0), 10, BIKES, "on"),
    ("off", PoolShape(1, 0.0, 2.0), 100_000, BIKES, "off"),
])
def test_compile_where_it_pays(compile, shape, frames, size, expected):
    assert compile_mode(ClusterOptions(compile=compile), shape, frames, size) == expected


def store_receipts(store_uri: str, job_id: str) -> dict[int, Receipt]:
    store = open_store(store_uri)
    keys = [k for k in store.list(f"jobs/{job_id}/output/") if k.endswith(".json")]
    return {r.chunk: r for r in (Receipt.model_validate_json(store.get_bytes(k)) for k in keys)}


def start_driver(clip: Path, cwd: Path, job_id: str, address: str, *extra: str, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "farm.cli", "submit", str(clip), "--job-id", job_id, "--chunk-frames", "6",
           "--no-gif", "--json", "--address", address, *extra]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_receipts(store_uri: str, job_id: str, count: int, driver: subprocess.Popen) -> dict[int, Receipt]:
    while len(found := store_receipts(store_uri, job_id)) < count:
        assert driver.poll() is None, driver.communicate()
        time.sleep(0.2)
    return found


def check_complete(driver: subprocess.Popen, clip: Path) -> dict:
    out, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, err
    report = json.loads(out)
    src, dst = video_facts(clip), video_facts(Path(report["output"]))
    assert dst["frames"] == src["frames"]  # every frame exactly once
    assert dst["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)
    return report


@pytest.mark.slow
def test_actor_killed_mid_job_is_replaced_and_the_job_completes(ray_local, tmp_path, private_store):
    clip = make_clip(tmp_path / "k.mp4", frames=48, width=192, height=144)
    driver = start_driver(clip, tmp_path, "killed", ray_local.get_runtime_context().gcs_address, "--workers", "1")
    first = wait_for_receipts(str(private_store), "killed", 1, driver)
    os.kill(next(iter(first.values())).pid, signal.SIGKILL)  # the actor's process, mid-job
    check_complete(driver, clip)
    pids = {r.pid for r in store_receipts(str(private_store), "killed").values()}
    assert len(pids) >= 2  # a fresh actor took over


@pytest.fixture(scope="module")
def two_nodes():
    from tests.raycluster import RayCluster

    with RayCluster(num_cpus=1) as cluster:
        yield cluster


@pytest.mark.slow
@pytest.mark.s3
def test_jobs_api_submission_runs_on_the_cluster_and_spreads(cli, two_nodes, s3_env, tmp_path, monkeypatch):
    for name in ("RAY_AUTH_MODE", "RAY_USAGE_STATS_ENABLED"):
        monkeypatch.setenv(name, two_nodes.client_env()[name])
    store = f"s3://{BUCKET}/cluster-{uuid.uuid4().hex[:8]}"
    clip = make_clip(tmp_path / "remote.mp4", frames=36, width=128, height=96, audio=True)
    result = cli("submit", clip, "--address", two_nodes.dashboard_url, "--store", store, "--job-id", "remote1",
                 "--chunk-frames", "6", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert Path(report["output"]) == tmp_path / "remote_vangogh.mp4"
    src, dst = video_facts(clip), video_facts(Path(report["output"]))
    assert dst["frames"] == src["frames"] == 36 and dst["audio_codec"] == "aac"
    nodes = {r.node for r in store_receipts(store, "remote1").values()}
    assert len(nodes) == 2, nodes  # chunks ran on both nodes
    logs = cli("logs", "remote1", "--address", two_nodes.dashboard_url)
    assert logs.code == 0 and '"job_id":"remote1"' in logs.stdout


@pytest.mark.slow
def test_node_lost_mid_job_the_job_completes(two_nodes, tmp_path, private_store):
    clip = make_clip(tmp_path / "n.mp4", frames=48, width=192, height=144)
    driver = start_driver(clip, tmp_path, "nodeloss", two_nodes.address, env=two_nodes.client_env())
    wait_for_receipts(str(private_store), "nodeloss", 1, driver)
    two_nodes.stop_node_b()
    try:
        check_complete(driver, clip)
    finally:
        two_nodes.start_node_b()


def warm_workers(ray_local) -> list[str]:
    return [a["name"] for a in ray_local.util.list_named_actors(all_namespaces=True)
            if a["namespace"] == WARM_NAMESPACE and a["name"].startswith(WARM_PREFIX)]


@pytest.mark.slow
def test_workers_stay_warm_for_the_next_job_then_retire(ray_local, tmp_path, private_store):
    # drivers in their own processes join the test session's Ray: a cluster that outlives each of them
    clip = make_clip(tmp_path / "w.mp4", frames=24, width=128, height=96)
    address = ray_local.get_runtime_context().gcs_address

    def job(job_id: str, *extra: str) -> set[int]:
        check_complete(start_driver(clip, tmp_path, job_id, address, *extra), clip)
        return {r.pid for r in store_receipts(str(private_store), job_id).values()}

    first = job("warm1", "--keep-warm", "120")
    assert len(warm_workers(ray_local)) == len(first) >= 1  # left loaded, named, for the next job
    # another job, another style: the same worker processes paint it (networks load per job, once)
    assert job("warm2", "--keep-warm", "120", "--style", "night-glow") <= first
    # a pool of another shape: the idle workers above make room for it, and it retires 3 s after its job
    assert not job("warm3", "--keep-warm", "3", "--workers", "1") & first
    deadline = time.monotonic() + 60
    while warm_workers(ray_local) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert warm_workers(ray_local) == []


def test_a_warm_worker_retires_only_after_its_idle_time_and_never_mid_call():
    clock, retired = IdleClock(), threading.Event()
    with clock.busy():
        clock.retire_after(0.2, retired.set, poll=0.05)
        time.sleep(0.5)
        assert not retired.is_set() and not clock.idle_for(0.2)  # a long call is not idleness
    assert not clock.idle_for(0.2)
    assert retired.wait(timeout=5) and clock.idle_for(0.2)
