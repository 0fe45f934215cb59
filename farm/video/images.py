"""Image sequences: photos in (a folder or a glob, read as frames at a chosen rate), PNG frames out.

The workflow this project grew from: a time-lapse shot as ``TimeLapse/*.jpg``,
painted photo by photo. A sequence becomes a :class:`VideoInfo` like a video
(``photos`` lists its files, relative to its folder, in natural order:
IMG_2 before IMG_10), so planning, sharding, resume and the cluster path do
not care where frames come from. Photos are turned as their EXIF orientation
says, fitted to the first photo's size (scaled, centred, black borders) when
they differ, and limited to a long side of :data:`LONG_SIDE` pixels unless
the user keeps full size: a camera's 24-megapixel photos would make every
later stage 12x slower than 1080p for a painting that does not need it.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from farm.errors import InputError
from farm.video.decode import Frame, iter_frames, pad_even
from farm.video.probe import VideoInfo, probe

#: the default long side of photos, in pixels (a 6000x4000 photo becomes 1920x1280); None keeps full size
LONG_SIDE = 1920
#: the formats read (Pillow's names), by file extension
EXTENSIONS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}
_GLOB_CHARS = re.compile(r"[*?\[]")
_EXIF_ORIENTATION = 0x0112


def is_sequence(source: str | Path) -> bool:
    """A folder or a glob pattern (quoted on the command line, so farm expands it, not the shell)."""
    return bool(_GLOB_CHARS.search(str(source))) or Path(source).is_dir()


def root(source: str | Path) -> Path:
    """The folder a sequence's photo names are relative to: the folder itself, or the pattern's fixed part."""
    parts = Path(source).parts
    fixed = [p for p in parts[: next((i for i, p in enumerate(parts) if _GLOB_CHARS.search(p)), len(parts))]]
    return Path(*fixed) if fixed else Path(".")


def natural_key(name: str) -> list[int | str]:
    """Sort key that reads digit runs as numbers: IMG_2 < IMG_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_photos(source: str | Path) -> list[Path]:
    """The photos of a folder or a glob, in natural order; InputError when there are none."""
    base = root(source)
    if Path(source).is_dir():
        found = [p for p in Path(source).iterdir() if p.suffix.lower() in EXTENSIONS and p.is_file()]
        what = f"{source}: no photos in the folder (looked for {', '.join(sorted(set(EXTENSIONS.values())))})"
    else:
        found = [Path(p) for p in glob.glob(str(source)) if Path(p).is_file()]
        what = f"{source}: the pattern matches no file"
    if not found:
        raise InputError(what)
    return sorted(found, key=lambda p: natural_key(str(p.relative_to(base))))


def probe_sequence(source: str | Path, fps: float = 24.0, long_side: int | None = LONG_SIDE,
                   start: float | None = None, duration: float | None = None) -> VideoInfo:
    """Describe a photo sequence as a video of ``fps`` frames a second (a trim picks photos by time)."""
    if fps <= 0:
        raise InputError(f"{source}: --fps must be above 0 (got {fps})")
    photos = _trim(source, list_photos(source), fps, start, duration)
    sizes = [_oriented_size(p) for p in photos]
    width, height = _limited(sizes[0], long_side)
    rate = Fraction(fps).limit_denominator(1001)
    others = sum(size != sizes[0] for size in sizes)
    notes = [f"{others} of {len(photos)} photos differ in size from the first ({sizes[0][0]}x{sizes[0][1]}); "
             "they are fitted into it (scaled, centred, black borders)"] if others else []
    base = root(source)
    return VideoInfo(path=str(base), width=width, height=height, out_width=width + width % 2,
                     out_height=height + height % 2, frames=len(photos), time_base_num=rate.denominator,
                     time_base_den=rate.numerator, avg_rate_num=rate.numerator, avg_rate_den=rate.denominator,
                     fps=float(rate), duration=float(len(photos) / rate), codec="photos", pix_fmt="rgb24",
                     has_audio=False, audio_codec=None, first_pts=0,
                     photos=tuple(str(p.relative_to(base)) for p in photos), notes=tuple(notes))


def _trim(source: str | Path, photos: list[Path], fps: float, start: float | None,
          duration: float | None) -> list[Path]:
    if start is None and duration is None:
        return photos
    start = start or 0.0
    if start < 0 or (duration is not None and duration <= 0):
        raise InputError(f"{source}: a trim needs --start >= 0 and --duration > 0 (got {start}, {duration})")
    first = round(start * fps)
    if first >= len(photos):
        raise InputError(f"{source}: --start {start:g} s is past the end ({len(photos)} photos at {fps:g} fps)")
    return photos[first:] if duration is None else photos[first:first + max(1, round(duration * fps))]


def _oriented_size(path: Path) -> tuple[int, int]:
    """A photo's size as shown (EXIF orientations 5-8 swap it), read from its header only."""
    try:
        with Image.open(path) as image:
            if image.format not in EXTENSIONS.values():
                raise InputError(f"{path}: a {image.format} image; photos must be JPEG, PNG, TIFF or WebP")
            turned = image.getexif().get(_EXIF_ORIENTATION, 1) in (5, 6, 7, 8)
            return (image.height, image.width) if turned else image.size
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{path}: not a readable photo ({err})") from None


def _limited(size: tuple[int, int], long_side: int | None) -> tuple[int, int]:
    width, height = size
    if long_side is None or max(width, height) <= long_side:
        return width, height
    scale = long_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def iter_photos(source: str | Path, info: VideoInfo) -> Iterator[Frame]:
    """The photos as Frames (pts = photo index, in 1/fps), upright and fitted to the sequence's size."""
    base = root(source)
    for index, name in enumerate(info.photos):
        yield Frame(pad_even(read_photo(base / name, (info.width, info.height)), info.out_width, info.out_height),
                    index)


def read_photo(path: Path, size: tuple[int, int]) -> np.ndarray:
    """One photo as (H, W, 3) uint8 RGB of ``size`` (width, height): EXIF-turned, scaled to fit, centred."""
    try:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image).convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise InputError(f"{path}: not a readable photo ({err})") from None
    if upright.size != size:
        upright = ImageOps.pad(upright, size, method=Image.Resampling.LANCZOS, color=(0, 0, 0))
    return np.asarray(upright)


def frame_name(index: int, frames: int) -> str:
    """``frame_000001.png``: numbered from 1, zero-padded so that a plain sort is frame order."""
    return f"frame_{index + 1:0{max(6, len(str(frames)))}d}.png"


def write_frames(video_path: Path, folder: Path) -> int:
    """Every frame of ``video_path`` as a numbered RGB PNG in ``folder`` (what compositing and editing
    tools import); ``folder`` appears complete or not at all. Returns the number of frames."""
    folder = Path(folder)
    info = probe(video_path)
    if folder.exists() and any(folder.iterdir()):
        raise InputError(f"{folder}: the frames folder must be new or empty")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        for index, frame in enumerate(iter_frames(video_path, info)):
            Image.fromarray(frame.rgb).save(tmp / frame_name(index, info.frames), compress_level=1)
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, folder)  # an empty folder is replaced; rename(2) is atomic
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info.frames


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
