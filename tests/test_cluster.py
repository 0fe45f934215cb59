"""Scheduling on Ray: pool sizing, a killed actor, a lost node, and jobs sent to a cluster's Jobs API."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

import farm.cluster as farm_cluster
from farm.cluster import WARM_NAMESPACE, WARM_PREFIX, forwarded_env
from farm.schedule import COMPILE_MIN_PIXELS, PoolShape, compile_mode, network_pixels, pool_shape
from farm.config import ClusterOptions, RenderOptions
from farm.driver import network_size
from farm.styles.catalog import load_catalog
from farm.plan import Receipt
from farm.store import open_store
from farm.worker import IdleClock
from tests.clips import make_clip
from tests.conftest import BUCKET
from tests.s3server import find_weed
from tests.test_cli import video_facts
from tests.waiting import wait_until


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
    (ClusterOptions(), {"CPU": 2}, [2], 1, PoolShape(1, 0.0, 1.0)),  # one chunk: one 1-thread actor, a core free
    (ClusterOptions(), {"CPU": 2}, [2], 5, PoolShape(2, 0.0, 1.0)),
    (ClusterOptions(), {"CPU": 64}, [32, 32], 4, PoolShape(4, 0.0, 4.0)),
    (ClusterOptions(), {"CPU": 16, "GPU": 4}, [16], 2, PoolShape(2, 1.0, 1.0)),  # no idle GPU actors
    (ClusterOptions(workers=2), {"CPU": 2}, [2], 1, PoolShape(2, 0.0, 1.0)),  # what the user asked for
])
def test_never_more_actors_than_chunks(options, resources, nodes, chunks, shape):
    assert pool_shape(options, resources, nodes, chunks=chunks) == shape


#: the working sizes the network paints bikes.mp4 (640x272) and a 640x360 or 1280x720 clip at
BIKES, P360 = (360, 847), (360, 640)


@pytest.mark.parametrize("compile, shape, frames, size, expected", [
    ("auto", PoolShape(2, 0.0, 1.0), 2100, BIKES, "on"),  # 1050 frames per worker: a first build pays in the job
    ("auto", PoolShape(2, 0.0, 1.0), 2000, BIKES, "cached"),  # 1000 each: the eager network is close enough
    ("auto", PoolShape(2, 0.0, 1.0), 274, BIKES, "cached"),  # bikes.mp4 and its warm-up: a package if one is built
    ("auto", PoolShape(2, 0.0, 1.0), 2720, P360, "on"),  # 1360 frames of 640x360 each: past AVX2's break-even
    ("auto", PoolShape(2, 0.0, 1.0), 2600, P360, "cached"),  # 1300 each: short of it
    ("auto", PoolShape(2, 0.0, 1.0), 324, P360, "cached"),  # a 300-frame 640x360 (or 720p) clip, two workers
    ("auto", PoolShape(4, 1.0, 1.0), 100_000, P360, "off"),  # GPUs: not measured yet, eager
    ("on", PoolShape(2, 0.0, 1.0), 10, BIKES, "on"),
    ("off", PoolShape(1, 0.0, 2.0), 100_000, BIKES, "off"),
])
def test_compile_where_it_pays(compile, shape, frames, size, expected):
    assert compile_mode(ClusterOptions(compile=compile), shape, frames, size) == expected


def test_a_machine_builds_its_package_once_its_eager_jobs_pass_break_even(private_ledger):
    """The ledger of eager jobs: a new machine's short jobs run eagerly, each counted; the job that takes
    the count past the build's break-even builds the package every later job runs."""
    from farm.styles import ledger

    shape, style = PoolShape(2, 0.0, 1.0), load_catalog().resolve("vangogh")
    key = ledger.network_key(style, "float32")
    modes = []
    for _ in range(100):  # 300-frame 640x360 clips (and their warm-up) on two workers
        before = ledger.eager_pixels(key)
        modes.append(compile_mode(ClusterOptions(), shape, 324, P360, before))
        if modes[-1] == "cached":
            ledger.add_eager_pixels(key, network_pixels(shape, 324, P360))
        else:
            break
    assert modes[0] == "cached" and modes[-1] == "on" and set(modes[:-1]) == {"cached"}
    assert ledger.eager_pixels(key) + network_pixels(shape, 324, P360) >= COMPILE_MIN_PIXELS > ledger.eager_pixels(key)
    other = ledger.network_key(load_catalog().resolve("starry-ember"), "float32")
    assert other == key  # another style of the same network shares its package, so its count
    assert ledger.eager_pixels(ledger.network_key(style, "bfloat16")) == 0  # another precision is another package
    assert private_ledger.exists()


def test_an_unreadable_ledger_only_delays_a_build(private_ledger):
    from farm.styles import ledger

    private_ledger.parent.mkdir(parents=True, exist_ok=True)
    private_ledger.write_text("{half a file")
    assert ledger.eager_pixels("multistyle:built-in:auto") == 0
    ledger.add_eager_pixels("multistyle:built-in:auto", 7)
    assert ledger.eager_pixels("multistyle:built-in:auto") == 7


@pytest.mark.parametrize("width, height, stroke, expected", [  # tests paint at a 48-pixel reference side
    (40, 17, 1.0, (36, 85)),  # bikes.mp4's shape, smaller than the reference: enlarged until strokes are 1.33x the style's
    (128, 72, 1.0, (48, 85)),  # larger: fewer
    (64, 48, 1.0, (48, 64)),
    (64, 48, 2.0, (24, 32)),  # --stroke-scale 2: half the reference side
])
def test_the_compile_policy_counts_the_networks_pixels(width, height, stroke, expected):
    render = RenderOptions(style=load_catalog().resolve("vangogh"), stroke_scale=stroke)
    assert network_size(render, height, width) == expected


def store_receipts(store_uri: str, job_id: str) -> dict[int, Receipt]:
    store = open_store(store_uri)
    keys = [k for k in store.list(f"jobs/{job_id}/output/") if k.endswith(".json")]
    return {r.chunk: r for r in (Receipt.model_validate_json(store.get_bytes(k)) for k in keys)}


def start_driver(clip: Path, cwd: Path, job_id: str, address: str, *extra: str, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "farm.cli", "submit", str(clip), "--job-id", job_id, "--chunk-frames", "6",
           "--no-gif", "--json", "--address", address, *extra]
    return subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_receipts(store_uri: str, job_id: str, count: int, driver: subprocess.Popen) -> dict[int, Receipt]:
    def enough() -> dict[int, Receipt] | None:
        found = store_receipts(store_uri, job_id)
        return found if len(found) >= count else None

    return wait_until(enough, f"{count} chunks of {job_id}", process=driver)


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


def node_credentials(seaweed) -> dict[str, str]:
    """What a cloud node's own boto3 chain finds (an instance role there): the test server's keys, and
    nothing of the developer's AWS set-up."""
    return {**seaweed.env(), "AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}


@pytest.fixture(scope="module")
def two_nodes(request):
    from tests.raycluster import RayCluster

    # the nodes are started with the S3 server's keys, as deploy/ gives real nodes a role: farm sends none
    env = node_credentials(request.getfixturevalue("seaweed")) if find_weed() else {}
    with RayCluster(num_cpus=1, env=env) as cluster:
        yield cluster


KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def test_only_the_stores_settings_go_to_the_cluster_never_its_keys(monkeypatch, capsys):
    shell = {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": "t0ken",
             "AWS_ENDPOINT_URL": "http://s3.example:9000", "AWS_REGION": "eu-west-3", "AWS_PROFILE": "render",
             "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "FARM_KEEP_WARM": "60", "HOME": "/home/me"}
    assert forwarded_env(shell) == {"AWS_ENDPOINT_URL": "http://s3.example:9000", "AWS_REGION": "eu-west-3",
                                    "AWS_PROFILE": "render", "FARM_KEEP_WARM": "60"}
    assert capsys.readouterr().err == ""
    # an explicit opt-in forwards the keys, and says on stderr where they end up (once per process)
    monkeypatch.setattr(farm_cluster, "_warn_keys_forwarded", functools.cache(farm_cluster._warn_keys_forwarded.__wrapped__))
    opted = forwarded_env({**shell, "FARM_FORWARD_AWS_KEYS": "1"})
    assert {k: opted[k] for k in KEYS} == {k: shell[k] for k in KEYS}
    err = capsys.readouterr().err
    assert err.startswith("farm: warning: FARM_FORWARD_AWS_KEYS sends AWS_ACCESS_KEY_ID") and "dashboard" in err


def runtime_envs_on(dashboard_url: str) -> dict[str, str]:
    """Every runtime_env the cluster's GCS holds, by owner: its Ray Jobs' and its actors' (dead ones too)."""
    from ray.job_submission import JobSubmissionClient
    from ray.util.state import list_actors

    envs = {f"job {j.submission_id}": json.dumps(j.runtime_env) for j in JobSubmissionClient(dashboard_url).list_jobs()}
    for actor in list_actors(address=dashboard_url, detail=True, limit=10_000, raise_on_missing_output=False):
        envs[f"actor {actor.class_name} {actor.actor_id}"] = actor.serialized_runtime_env or ""
    return envs


def worker_nodes_of(dashboard_url: str, receipts: dict[int, Receipt]) -> set[str]:
    """The nodes of every style worker of the job that painted ``receipts`` (dead ones too): the job is
    found by the processes that wrote its receipts."""
    from ray.util.state import list_actors

    workers = [a for a in list_actors(address=dashboard_url, detail=True, limit=10_000, raise_on_missing_output=False)
               if a.class_name == "_RayStyleWorker"]
    painters = {r.pid for r in receipts.values()}
    jobs = {a.job_id for a in workers if a.pid in painters}
    assert jobs, (painters, [a.pid for a in workers])
    return {a.node_id for a in workers if a.job_id in jobs}


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
    # the cluster's driver's own result, read from the store: not -1 and {}
    assert (report["chunks"], report["chunks_rendered"]) == (6, 6) and report["stages"]["network"] > 0
    src, dst = video_facts(clip), video_facts(Path(report["output"]))
    assert dst["frames"] == src["frames"] == 36 and dst["audio_codec"] == "aac"
    # the job's workers were placed on both nodes (which of them paints each chunk is a race: on a clip
    # this short, the worker that loads first may take every chunk before the other is ready)
    assert len(worker_nodes_of(two_nodes.dashboard_url, store_receipts(store, "remote1"))) == 2
    logs = cli("logs", "remote1", "--address", two_nodes.dashboard_url)
    assert logs.code == 0 and '"job_id":"remote1"' in logs.stdout
    # the submitting shell's keys are in no runtime_env the cluster keeps (which its dashboard shows)
    envs = runtime_envs_on(two_nodes.dashboard_url)
    assert any("_RayStyleWorker" in owner for owner in envs) and any(o.startswith("job farm-remote1") for o in envs)
    assert "AWS_ENDPOINT_URL" in envs[next(o for o in envs if o.startswith("job farm-remote1"))]
    for owner, env in envs.items():
        # the shell's keys (no session token here: SeaweedFS refuses one it did not issue; the unit test has it)
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert key not in env and os.environ[key] not in env, (owner, key)


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


def warm_worker_pids(ray_local) -> set[int]:
    """The processes of the warm workers alive now (each asked its own pid)."""
    actors = [ray_local.get_actor(name, namespace=WARM_NAMESPACE) for name in warm_workers(ray_local)]
    return set(ray_local.get([a.__ray_call__.remote(lambda _: os.getpid()) for a in actors]))


@pytest.mark.slow
def test_workers_stay_warm_for_the_next_job_then_retire(ray_local, tmp_path, private_store):
    # drivers in their own processes join the test session's Ray: a cluster that outlives each of them
    clip = make_clip(tmp_path / "w.mp4", frames=24, width=128, height=96)
    address = ray_local.get_runtime_context().gcs_address

    def job(job_id: str, *extra: str) -> set[int]:
        check_complete(start_driver(clip, tmp_path, job_id, address, *extra), clip)
        return {r.pid for r in store_receipts(str(private_store), job_id).values()}

    # every worker that painted is left loaded, named, for the next job (a worker of the pool that loaded
    # last may have painted nothing: the first one ready can take every chunk of a short clip)
    first = job("warm1", "--keep-warm", "120")
    warm = warm_worker_pids(ray_local)
    assert first and first <= warm
    # another job, another style: the same worker processes paint it (networks load per job, once)
    assert job("warm2", "--keep-warm", "120", "--style", "night-glow") <= warm
    # a pool of another shape: the idle workers above make room for it, and it retires 3 s after its job
    assert not job("warm3", "--keep-warm", "3", "--workers", "1") & warm
    wait_until(lambda: not warm_workers(ray_local), "the warm workers to retire", timeout=120, interval=0.5)


class FakeTime:
    """The idle clock's time module, moved by hand: the test decides how long passes, not the machine."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def sleep(seconds: float) -> None:
        threading.Event().wait(0.01)  # the watchdog's poll: let it look again soon, in real time


def test_a_warm_worker_retires_only_after_its_idle_time_and_never_mid_call(monkeypatch):
    import farm.worker

    fake = FakeTime()
    monkeypatch.setattr(farm.worker, "time", fake)
    clock, retired = IdleClock(), threading.Event()
    with clock.busy():
        clock.retire_after(300, retired.set, poll=1)
        fake.now += 3600  # a call that runs an hour is not idleness
        assert not retired.wait(0.3) and not clock.idle_for(300)
    fake.now += 299
    assert not retired.wait(0.3) and not clock.idle_for(300)  # idle, not yet long enough
    fake.now += 1
    assert retired.wait(timeout=60) and clock.idle_for(300)
