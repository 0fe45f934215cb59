"""The driver's first stage: decode the source as a stream into input chunk objects.

Never holds more than the frames being written: each decoded frame goes
straight into the one or two chunk encoders whose range covers it (a chunk's
warm-up frames are the tail of the chunk before it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from farm import video
from farm.errors import InputError
from farm.plan import Chunk, Layout
from farm.store import ObjectStore


def shard(source: Path, info: video.VideoInfo, chunks: Iterable[Chunk], store: ObjectStore,
          layout: Layout) -> Iterator[Chunk]:
    """Write the input object of each given chunk, yielding each chunk as soon as it is stored.

    ``chunks`` may be a subset of the plan (a resume); decoding stops after the last one.
    """
    todo = sorted(chunks, key=lambda c: c.first)
    if not todo:
        return
    open_writers: dict[int, tuple[Chunk, video.SegmentWriter, Path]] = {}
    next_to_open, decoded = 0, 0
    with tempfile.TemporaryDirectory(prefix="farm-shard-") as tmp:
        for n, frame in enumerate(video.iter_frames(source, info)):
            decoded = n + 1
            while next_to_open < len(todo) and todo[next_to_open].first == n:
                chunk = todo[next_to_open]
                path = Path(tmp) / f"{chunk.index:06d}{video.SEGMENT_EXT}"
                writer = video.SegmentWriter(path, info.out_width, info.out_height, info.time_base, lossless=True,
                                             colour=info.colour.output)
                open_writers[chunk.index] = (chunk, writer, path)
                next_to_open += 1
            for chunk, writer, _ in list(open_writers.values()):
                writer.write(frame.rgb, frame.pts)
                if n == chunk.end - 1:
                    yield _store_chunk(open_writers.pop(chunk.index), store, layout)
            if next_to_open == len(todo) and not open_writers:
                return
        raise InputError(f"{source}: decoding stopped after {decoded} of {info.frames} frames "
                         "(the file is truncated or corrupt)")


def _store_chunk(entry: tuple[Chunk, video.SegmentWriter, Path], store: ObjectStore, layout: Layout) -> Chunk:
    chunk, writer, path = entry
    writer.close()
    store.put_file(layout.input(chunk.index, video.SEGMENT_EXT), path)
    path.unlink()
    return chunk
