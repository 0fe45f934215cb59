"""A job as the object store holds it: manifest, state, receipts; what `farm status` reads.

Everything here reads or writes the store alone (no Ray, no torch, no video
decoding), so status works while a job runs, after a crash, or long after.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

from pydantic import BaseModel, ValidationError

from farm.errors import JobError, MissingObjectError
from farm.plan import Chunk, Layout, Manifest, Receipt
from farm.store import ObjectStore


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


def finished_receipts(store: ObjectStore, layout: Layout, chunks: list[Chunk]) -> dict[int, Receipt]:
    """Chunks whose output object exists and matches its receipt's size: done, not rendered again."""
    done: dict[int, Receipt] = {}
    for chunk in chunks:
        key = layout.receipt(chunk.index)
        if not store.exists(key):
            continue
        try:
            receipt = Receipt.model_validate_json(store.get_bytes(key))
        except (ValidationError, MissingObjectError):
            continue
        if store.size(receipt.key) == receipt.size and receipt.frames == chunk.frames:
            done[chunk.index] = receipt
    return done


def write_state(store: ObjectStore, layout: Layout, **state: object) -> None:
    state["updated"] = datetime.now(timezone.utc).isoformat()
    store.put_bytes(layout.state, json.dumps(state, indent=2).encode())


class JobStatus(BaseModel):
    """What `farm status` shows."""

    job_id: str
    state: str
    chunks_done: int
    chunks: int
    frames_done: int
    frames: int
    created: str
    updated: str | None
    elapsed_seconds: float | None
    source: str
    style: str
    outputs: dict[str, str | None]
    error: str | None = None


def job_status(store: ObjectStore, job_id: str) -> JobStatus:
    """Read a job's state from the store alone (works while it runs, after a crash, or when done)."""
    layout = Layout(job_id)
    manifest = load_manifest(store, layout)
    state = json.loads(store.get_bytes(layout.state)) if store.exists(layout.state) else {"state": "created"}
    done = finished_receipts(store, layout, manifest.chunks)
    if state["state"] == "running" and len(done) < len(manifest.chunks):
        state["state"] = "running or interrupted"
    created, updated = manifest.created, state.get("updated")
    elapsed = (datetime.fromisoformat(updated) - datetime.fromisoformat(created)).total_seconds() if updated else None
    return JobStatus(job_id=job_id, state=state["state"], chunks_done=len(done), chunks=len(manifest.chunks),
                     frames_done=sum(r.frames for r in done.values()), frames=manifest.source_info["frames"],
                     created=created, updated=updated, elapsed_seconds=elapsed, source=manifest.spec.source,
                     style=manifest.spec.render.style.name, error=state.get("error"),
                     outputs={"video": manifest.spec.output, "gif": manifest.spec.gif_output,
                              "stored_video": state.get("output"), "stored_gif": state.get("gif")})
