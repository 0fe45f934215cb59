"""Running a job's driver on a remote Ray cluster through the Ray Jobs API.

``farm submit ... --address http://HEAD:8265`` stages the source and the job's
spec in the object store (which must be one the cluster reaches: S3), submits
``farm run-job ID --store URI`` as a Ray Job, then follows the job's progress
from the store and fetches the results. The Jobs API is only the transport:
job state stays in the store, so `farm status` and `farm resume` work the same
for local and remote jobs.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from farm.cluster import forwarded_env
from farm.config import ClusterOptions, JobSpec
from farm.errors import ConfigError, InternalError
from farm.plan import Layout
from farm.store import LocalStore, ObjectStore

#: remote drivers write their copies of the results here on the head node; the store holds the real ones
REMOTE_SCRATCH = "/tmp/farm-jobs"
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def is_jobs_address(address: str | None) -> bool:
    """`http(s)://HEAD:8265` is a Jobs API endpoint; `HOST:6379`/`auto` is a Ray client connection."""
    return bool(address) and address.startswith(("http://", "https://"))


def spec_key(job_id: str) -> str:
    return Layout(job_id).prefix + "request.json"


def remote_spec(spec: JobSpec) -> JobSpec:
    """The spec as the cluster's driver sees it: the source read from the store, outputs in scratch."""
    if spec.source_copy is None and not spec.source.startswith("s3://"):
        raise ConfigError("a job on a remote cluster needs a store the cluster can reach: --store s3://bucket/prefix")
    scratch = f"{REMOTE_SCRATCH}/{spec.job_id}"
    return spec.model_copy(update={
        "source": spec.source_copy or spec.source,
        "output": f"{scratch}/{Path(spec.output).name}",
        "gif_output": f"{scratch}/{Path(spec.gif_output).name}" if spec.gif_output else None,
    })


def client(address: str):
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # connection refused, bad URL, version mismatch: all the user's to fix
        raise ConfigError(f"cannot reach the Ray Jobs API at {address}: {exc}") from None


def submit_remote(spec: JobSpec, store: ObjectStore, address: str, options: ClusterOptions) -> str:
    """Stage the spec, start the driver as a Ray Job; returns the Ray submission id.

    The driver there joins its own cluster (no address); the rest of the
    options (workers, GPUs per worker, threads, attempts) travel with it.
    """
    if isinstance(store, LocalStore):
        raise ConfigError("a job on a remote cluster needs a store the cluster can reach: --store s3://bucket/prefix")
    store.put_bytes(spec_key(spec.job_id), remote_spec(spec).model_dump_json(indent=2).encode())
    cluster = options.model_copy(update={"address": None}).model_dump_json(exclude_defaults=True)
    command = ["farm", "run-job", spec.job_id, "--store", store.uri, "--cluster", cluster]
    submission = f"farm-{spec.job_id}-{uuid.uuid4().hex[:6]}"
    client(address).submit_job(entrypoint=shlex.join(command), submission_id=submission,
                               runtime_env={"env_vars": forwarded_env()}, metadata={"farm_job_id": spec.job_id})
    return submission


def follow(address: str, submission: str, on_poll: Callable[[], None], interval: float = 1.0) -> None:
    """Wait for the Ray Job to end, calling ``on_poll`` between looks; a failure raises with its log tail."""
    jobs = client(address)
    while (status := str(jobs.get_job_status(submission)).split(".")[-1]) not in TERMINAL:
        on_poll()
        time.sleep(interval)
    on_poll()
    if status != "SUCCEEDED":
        tail = [line for line in jobs.get_job_logs(submission).strip().splitlines() if line.strip()]
        raise InternalError(f"the remote driver {status.lower()}: {tail[-1] if tail else 'no log'} "
                            f"(farm logs {submission.split('-', 1)[1].rsplit('-', 1)[0]} --address {address})")


def logs(address: str, job_id: str) -> str:
    """The driver log of the latest Ray Job that ran this farm job."""
    jobs = client(address)
    runs = [j for j in jobs.list_jobs() if (j.metadata or {}).get("farm_job_id") == job_id]
    if not runs:
        raise ConfigError(f"no Ray Job on {address} ran farm job {job_id!r}")
    latest = max(runs, key=lambda j: j.start_time or 0)
    return jobs.get_job_logs(latest.submission_id)
