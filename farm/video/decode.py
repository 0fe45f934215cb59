"""Decode: a source video as a stream of RGB frames, each with its source pts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np

from farm.errors import InputError
from farm.video import orient
from farm.video.colour import Colour, describe, to_rgb_array
from farm.video.probe import VideoInfo, open_input, probe, reason, video_stream


class Frame(NamedTuple):
    """One decoded picture: RGB already padded to the even output size, and its source pts."""

    rgb: np.ndarray  # (out_height, out_width, 3) uint8
    pts: int  # in the source stream's time base


def iter_frames(path: str | Path, info: VideoInfo) -> Iterator[Frame]:
    """Decode the video at ``path`` as a stream of Frames (never the whole video at once).

    Raises InputError naming the file and frame index when the data is corrupt,
    or when the file ends before the ``info.frames`` frames probe counted.
    """
    if info.photos:
        from farm.video.images import iter_photos  # images builds on this module

        yield from iter_photos(path, info)
        return
    path = Path(path)
    with open_input(path) as container:
        stream = video_stream(container, path)
        stream.codec_context.thread_type = "AUTO"  # frame + slice threads; PyAV's default is slice only
        count = 0
        for frame, pts in _timestamps(_windowed(container, stream, path, info), info):
            yield Frame(to_rgb(frame, info.width, info.height, info.out_width, info.out_height, info.orientation,
                               info.colour), pts)
            count += 1
    if count < info.frames:
        raise InputError(f"{path}: decoding stopped after {count} of {info.frames} frames "
                         "(the file is truncated or corrupt)")


def _windowed(container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path,
              info: VideoInfo) -> Iterator[av.VideoFrame]:
    """The decoded frames of a trim only: seek to the keyframe before it, drop what comes before it,
    stop after it (frames come out in pts order); every frame without a trim."""
    first, last = info.window_first_pts, info.window_last_pts
    if first is None or last is None:
        yield from decoded(container, stream, path)
        return
    container.seek(first, stream=stream, backward=True)
    for frame in decoded(container, stream, path):
        if frame.pts is None or frame.pts < first:
            continue
        if frame.pts > last:
            return
        yield frame


def decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             path: Path) -> Iterator[av.VideoFrame]:
    """container.decode with FFmpeg's errors and corrupt frames turned into InputError."""
    frames, index = container.decode(stream), 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.error.FFmpegError as err:
            raise InputError(f"{path}: corrupt video data near frame {index} ({reason(err)})") from None
        if frame.is_corrupt:
            raise InputError(f"{path}: corrupt video data near frame {index}")
        yield frame
        index += 1


def _timestamps(frames: Iterable[av.VideoFrame], info: VideoInfo) -> Iterator[tuple[av.VideoFrame, int]]:
    """Each frame with its pts; a missing or non-increasing pts becomes previous + one nominal step.

    Keeping pts strictly increasing is what lets every later muxer accept them.
    """
    step = max(1, round(Fraction(info.avg_rate_den, info.avg_rate_num) / info.time_base))
    previous: int | None = None
    for frame in frames:
        pts = frame.pts if frame.pts is not None else frame.dts
        if pts is None or (previous is not None and pts <= previous):
            pts = info.first_pts if previous is None else previous + step
        previous = pts
        yield frame, pts


def to_rgb(frame: av.VideoFrame, width: int, height: int, out_width: int, out_height: int,
           orientation: orient.Orientation = orient.UPRIGHT, colour: Colour | None = None) -> np.ndarray:
    """The frame as (out_height, out_width, 3) uint8 RGB through the source's ``colour`` (default: the
    frame's own), turned as a player shows it, edges replicated into the padding."""
    if (frame.width, frame.height) != (width, height):  # a mid-stream size change: back to the probed size
        frame = frame.reformat(width=width, height=height)
    rgb = orient.apply(to_rgb_array(frame, colour or describe(frame)), orientation)
    return pad_even(rgb, out_width, out_height)


def pad_even(rgb: np.ndarray, out_width: int, out_height: int) -> np.ndarray:
    """Grow ``rgb`` to the output size by repeating its last row/column (no source pixel is lost)."""
    height, width = rgb.shape[:2]
    if (width, height) == (out_width, out_height):
        return rgb
    return np.pad(rgb, ((0, out_height - height), (0, out_width - width), (0, 0)), mode="edge")


def read_all_frames(path: str | Path) -> list[Frame]:
    """Every frame of a video in memory: for tests and tiny clips only."""
    return list(iter_frames(path, probe(path)))
