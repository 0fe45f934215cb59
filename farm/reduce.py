"""The last stage: output chunks, in plan order, become the final MP4 and GIF.

Video packets are stream-copied (the output chunks were encoded with the
final settings), the source's audio is stream-copied beside them, and every
chunk's checksum is verified first so a corrupt object is never muxed in.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from farm import video
from farm.config import GifOptions
from farm.errors import ChunkCorruptError
from farm.files import atomic_path
from farm.plan import Layout, Receipt
from farm.store import ObjectStore, sha256_file


def fetch_verified(store: ObjectStore, receipt: Receipt, tmp: Path) -> Path:
    """A local path to the chunk's bytes, checked against the receipt's sha256."""
    path = store.local_path(receipt.key)
    if path is None:
        path = tmp / Path(receipt.key).name
        store.get_file(receipt.key, path)
    if sha256_file(path) != receipt.sha256:
        raise ChunkCorruptError(receipt.chunk, receipt.key)
    return path


def write_video(store: ObjectStore, layout: Layout, receipts: list[Receipt], source: Path,
                info: video.VideoInfo, out: Path) -> list[str]:
    """Concatenate the verified chunks into ``out`` with the source's other tracks, store it as
    final/<name>; returns notes for the user (a track left out or converted)."""
    with tempfile.TemporaryDirectory(prefix="farm-reduce-") as tmp:
        parts = [fetch_verified(store, r, Path(tmp)) for r in sorted(receipts, key=lambda r: r.chunk)]
        tracks = None if info.photos else source  # photos have no sound, subtitles or chapters
        notes = video.concat_segments(parts, out, audio_from=tracks, time_base=info.time_base, trim=info.window)
    store.put_file(layout.final(out.name), out)
    return notes


def write_gif(store: ObjectStore, layout: Layout, final_video: Path, options: GifOptions, out: Path) -> video.GifInfo:
    """The preview GIF made from the final video into ``out``; stored as final/<name>."""
    gif = video.make_gif(final_video, out, width=options.width, fps=options.fps, max_seconds=options.max_seconds)
    store.put_file(layout.final(out.name), out)
    return gif


def deliver(local: Path, dest: Path) -> None:
    """Move a finished file to the user's path atomically (never a half-written file at ``dest``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        local.replace(dest)  # same filesystem: atomic
    except OSError:
        with atomic_path(dest) as tmp:
            shutil.copyfile(local, tmp)
