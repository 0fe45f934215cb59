"""``farm submit --preview``: the first seconds of a clip at a small size, to choose a style before the
full render.

The preview is the full render's first seconds, shown small: the clip is painted as the full render paints
it (at its own size, up to :data:`PREVIEW_RENDER_SIDE`), temporal pass included, and only then brought
down to a :data:`PREVIEW_SIDE` short side (``RenderOptions.output_side``, farm/worker.py). Painted at the
small size instead, its strokes were the full render's (every size is painted at the style's reference
size, farm/styles/scale.py) but its temporal pass was not: each warp of the history blurs by a fraction of
an *output* pixel, a whole painting pixel at 360p and a third of one at 1080p, so over five seconds of
motion the preview's strokes measured 1.4x the 1080p render's (README, "The same look at any size").

The preview clip is an ordinary source: the first :data:`PREVIEW_SECONDS` seconds, at most
:data:`PREVIEW_RENDER_SIDE` on the short side (area average, never enlarged), x264 at crf 12 with the
source's timestamps, no sound. It is kept in the user's cache, named by the source's path, size and mtime,
so a second preview of the same clip (another style) starts at once; the render is then an ordinary job.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from farm import video
from farm.video import VideoInfo

PREVIEW_SECONDS = 5.0
#: the short side a preview is shown at
PREVIEW_SIDE = 360
#: the largest short side a preview is painted at: the full render's own up to 1080p (a 4K clip's preview is
#: painted as its 1080p render would be)
PREVIEW_RENDER_SIDE = 1080


def preview_size(width: int, height: int, side: int = PREVIEW_SIDE) -> tuple[int, int]:
    """The size a ``width``×``height`` clip's preview is shown at (short side ``side`` at most, even)."""
    return video.shrunk_size(width, height, side)


def cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("farm") / "previews"


def preview_key(source: Path, seconds: float, side: int) -> str:
    stat = source.stat()
    text = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{seconds}|{side}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_preview(source: Path, info: VideoInfo, seconds: float = PREVIEW_SECONDS, side: int = PREVIEW_RENDER_SIDE,
                 folder: Path | None = None) -> Path:
    """The preview clip of ``source`` (``<stem>_preview.mp4``, its short side ``side`` at most), made once and
    kept in the cache."""
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
            writer.write(video.shrink(frame.rgb, size), frame.pts)
    partial.replace(out)
    return out
