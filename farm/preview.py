"""``farm submit --preview``: the first seconds of a clip at a small size, to choose a style before the
full render. Because every output size is painted at the style's reference size (farm/styles/scale.py),
the full render has the preview's strokes and colours, only sharper.

The preview clip is an ordinary source: the first :data:`PREVIEW_SECONDS` seconds, resized (area
average) so the short side is :data:`PREVIEW_SIDE` (never enlarged), x264 at crf 12 with the source's
timestamps, no sound. It is kept in the user's cache, named by the source's path, size and mtime, so a
second preview of the same clip (another style) starts at once; the render is then an ordinary job.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from farm import video
from farm.video import VideoInfo

PREVIEW_SECONDS = 5.0
PREVIEW_SIDE = 360


def preview_size(width: int, height: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """(width, height) with the short side at ``side`` at most, the aspect kept, both even (yuv420p)."""
    factor = min(1.0, side / min(width, height))
    even = lambda n: max(2, 2 * math.ceil(round(n * factor, 6) / 2))  # noqa: E731  (odd rounds up, as outputs do)
    return even(width), even(height)


def cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("farm") / "previews"


def preview_key(source: Path, seconds: float, side: int) -> str:
    stat = source.stat()
    text = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{seconds}|{side}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def make_preview(source: Path, info: VideoInfo, seconds: float = PREVIEW_SECONDS, side: int = PREVIEW_SIDE,
                 folder: Path | None = None) -> Path:
    """The preview clip of ``source`` (``<stem>_preview.mp4``), made once and kept in the cache."""
    out = (folder or cache_dir()) / preview_key(source, seconds, side) / f"{source.stem}_preview.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    size = preview_size(info.out_width, info.out_height, side)
    end = info.first_pts + seconds / info.time_base
    partial = out.with_name(f"partial{video.SEGMENT_EXT}")
    with video.SegmentWriter(partial, *size, info.time_base, lossless=False, crf=12) as writer:
        for frame in video.iter_frames(source, info):
            if frame.pts >= end:
                break
            writer.write(resize(frame.rgb, size), frame.pts)
    partial.replace(out)
    return out
