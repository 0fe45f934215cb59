"""A job as the object store holds it: manifest, state, receipts; `farm status`, `farm jobs`, `farm rm`.

Everything here reads or writes the store alone (no Ray, no torch, no video
decoding), so status works while a job runs, after a crash, or long after.
Progress is read from one listing of the job's ``output/`` prefix (a receipt
and an output object per finished chunk; S3 lists 1,000 keys a request), never
from a request per chunk: a film of 1,150 chunks costs a status three or four
requests, not 3,500.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone

from pydantic import BaseModel, ValidationError

from farm.errors import JobError, MissingObjectError, UserError
from farm.plan import Chunk, Layout, Manifest, Receipt
from farm.store import ObjectStore

_CHUNK_KEY = re.compile(r"/output/(\d+)\.(\w+)$")


def load_manifest(store: ObjectStore, layout: Layout) -> Manifest:
    try:
        return Manifest.model_validate_json(store.get_bytes(layout.manifest))
    except MissingObjectError:
        raise JobError(f"no job at {store.describe(layout.manifest)}") from None
    except ValidationError as exc:
        raise JobError(f"{store.describe(layout.manifest)} is not a farm manifest of this version: "
                       f"{exc.errors()[0]['msg']}") from None


def load_job(store: ObjectStore, job_id: str) -> Manifest:
    return load_manifest(store, Layout(job_id))


def read_state(store: ObjectStore, layout: Layout) -> dict:
    """The job's state record (one GET); ``created`` when the driver has not written one yet."""
    try:
        return json.loads(store.get_bytes(layout.state))
    except MissingObjectError:
        return {"state": "created"}


def write_state(store: ObjectStore, layout: Layout, **state: object) -> None:
    state["updated"] = now()
    store.put_bytes(layout.state, json.dumps(state, indent=2).encode())


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def stored_chunks(store: ObjectStore, layout: Layout) -> dict[int, int]:
    """Chunk index → its output object's size, for every chunk whose receipt and output are both
    stored: one listing of ``output/`` (the receipt is written after the output, so both mean done)."""
    receipts, outputs = set(), {}
    for key, size in store.list_sizes(layout.outputs).items():
        if match := _CHUNK_KEY.search(key):
            index, ext = int(match[1]), match[2]
            if ext == "json":
                receipts.add(index)
            else:
                outputs[index] = size
    return {i: outputs[i] for i in receipts if i in outputs}


def finished_receipts(store: ObjectStore, layout: Layout, chunks: list[Chunk]) -> dict[int, Receipt]:
    """Chunks whose output object exists and matches its receipt's size: done, not rendered again.
    One listing, then one GET for each listed receipt (the reducer needs their checksums)."""
    stored, done = stored_chunks(store, layout), {}
    for chunk in chunks:
        if chunk.index not in stored:
            continue
        try:
            receipt = Receipt.model_validate_json(store.get_bytes(layout.receipt(chunk.index)))
        except (ValidationError, MissingObjectError):
            continue
        if receipt.size == stored[chunk.index] and receipt.frames == chunk.frames:
            done[chunk.index] = receipt
    return done


class JobStatus(BaseModel):
    """What `farm status` shows."""

    job_id: str
    state: str
    chunks_done: int
    chunks: int
    frames_done: int
    frames: int
    #: bytes of the finished output chunks still in the store (0 once they are dropped after delivery)
    chunk_bytes: int
    created: str
    updated: str | None
    elapsed_seconds: float | None
    source: str
    style: str
    outputs: dict[str, str | None]
    error: str | None = None
    #: when `farm rm` / `farm prune` removed the job's objects (the manifest and this state stay)
    removed: str | None = None
    #: hard cuts found in the source (coherence resets at each)
    cuts: int = 0


def job_status(store: ObjectStore, job_id: str) -> JobStatus:
    """Read a job's state from the store alone (works while it runs, after a crash, when done or removed):
    the manifest, the state and, unless the job is done, one listing of its chunks."""
    layout = Layout(job_id)
    manifest = load_manifest(store, layout)
    state = read_state(store, layout)
    chunks = {c.index: c for c in manifest.chunks}
    stored = stored_chunks(store, layout) if state["state"] != "done" else {}
    done = set(chunks) if state["state"] == "done" else set(stored) & set(chunks)
    if state["state"] == "running" and len(done) < len(chunks):
        state["state"] = "running or interrupted"
    created, updated = manifest.created, state.get("updated")
    elapsed = (datetime.fromisoformat(updated) - datetime.fromisoformat(created)).total_seconds() if updated else None
    return JobStatus(job_id=job_id, state=state["state"], chunks_done=len(done), chunks=len(chunks),
                     frames_done=sum(chunks[i].frames for i in done), frames=manifest.source_info["frames"],
                     chunk_bytes=sum(stored.values()), created=created, updated=updated, elapsed_seconds=elapsed,
                     source=manifest.spec.source, style=manifest.spec.render.style.name, error=state.get("error"),
                     removed=state.get("removed"), cuts=len(manifest.cuts),
                     outputs={"video": manifest.spec.output, "gif": manifest.spec.gif_output,
                              "stored_video": state.get("output"), "stored_gif": state.get("gif")})


# --------------------------------------------------------------------------- the store's jobs


class JobSummary(BaseModel):
    """One line of `farm jobs`."""

    job_id: str
    state: str
    updated: str | None
    age_seconds: float | None
    bytes: int


def list_jobs(store: ObjectStore) -> list[JobSummary]:
    """Every job in the store with its state, age and bytes: one listing, one GET per job."""
    sizes: dict[str, int] = {}
    for key, size in store.list_sizes("jobs/").items():
        job_id = key.split("/")[1]
        sizes[job_id] = sizes.get(job_id, 0) + size
    summaries = []
    for job_id, total in sorted(sizes.items()):
        state = read_state(store, Layout(job_id))
        updated = state.get("updated")
        label = "removed" if state.get("removed") else state["state"]
        summaries.append(JobSummary(job_id=job_id, state=label, updated=updated, age_seconds=_age(updated),
                                    bytes=total))
    return summaries


def find_render(store: ObjectStore, output: str) -> Manifest | None:
    """The newest job whose video was delivered to ``output`` (an absolute path, as the spec records it):
    one listing and one GET per job, so `farm eval flicker` finds a render's chunks and cuts by its file."""
    found = []
    for key in store.list("jobs/"):
        if not key.endswith("/manifest.json"):
            continue
        try:
            manifest = Manifest.model_validate_json(store.get_bytes(key))
        except (MissingObjectError, ValidationError):  # removed since listed, or another version's manifest
            continue
        if manifest.spec.video and manifest.spec.output == output:
            found.append(manifest)
    return max(found, key=lambda m: m.created, default=None)


def _age(stamp: str | None) -> float | None:
    if stamp is None:
        return None
    return round((datetime.now(timezone.utc) - datetime.fromisoformat(stamp)).total_seconds(), 1)


def remove_job(store: ObjectStore, job_id: str, force: bool = False) -> int:
    """Delete a job's chunks and stored outputs, keeping its manifest and state (so `farm status` still
    answers); returns the bytes freed. A running job is refused unless ``force`` (its driver is gone)."""
    layout = Layout(job_id)
    load_manifest(store, layout)  # no such job: say so
    state = read_state(store, layout)
    if state["state"] == "running" and not force:
        raise JobError(f"job {job_id} is running; stop it first, or use --force if its driver is gone")
    keep = {layout.manifest, layout.state}
    doomed = {k: s for k, s in store.list_sizes(layout.prefix).items() if k not in keep}
    store.delete_keys(sorted(doomed))
    if doomed or not state.get("removed"):
        write_state(store, layout, **{**state, "output": None, "gif": None, "removed": now()})
    return sum(doomed.values())


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> float:
    """``90s``, ``30m``, ``12h``, ``7d``, ``2w`` → seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise UserError(f"bad age {text!r}: use a number and s, m, h, d or w (7d, 12h)")
    return float(match[1]) * _UNIT[match[2]]


def prune(store: ObjectStore, older_than: float) -> list[tuple[str, int]]:
    """Remove every job not updated for ``older_than`` seconds (a job's driver writes its state when
    it starts and ends): returns the jobs removed and the bytes each freed."""
    removed = []
    for job in list_jobs(store):
        if job.state == "removed" or job.age_seconds is None or job.age_seconds < older_than:
            continue
        removed.append((job.job_id, remove_job(store, job.job_id, force=True)))
    return removed
