"""Probe: what a source video is (size, frame count, time base, rate, audio), read without decoding.

Every refusal is a one-line InputError naming the file: missing, not a video,
a still image, truncated or corrupt, no video stream, zero frames.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import av.sidedata.sidedata
import numpy as np
from pydantic import BaseModel, ConfigDict

from farm.errors import InputError
from farm.video import orient
from farm.video.colour import Colour, describe


# Demuxers that open pictures or text as one-frame "video": refused as not a video.
_STILL_FORMATS = {"image2", "image2pipe", "tty", "bin", "xbin", "adf", "idf"}

# Magic numbers of common video containers, to tell "corrupt video" from "not a video".
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"),
    (0, b"\x1a\x45\xdf\xa3"), (8, b"AVI "), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
    (0, b"nut/multimedia container"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"),
)



class VideoInfo(BaseModel):
    """What the pipeline needs to know about a source video, read without decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    width: int  # the coded picture, as decoded
    height: int
    out_width: int  # as displayed (orientation applied), rounded up to even for yuv420p (last column repeated)
    out_height: int  # as displayed, rounded up to even for yuv420p (last row repeated)
    frames: int  # exact: packets of the video stream, counted by demuxing
    time_base_num: int
    time_base_den: int
    avg_rate_num: int
    avg_rate_den: int
    fps: float
    duration: float  # seconds, first pts to the end of the last frame
    codec: str
    pix_fmt: str
    has_audio: bool
    audio_codec: str | None
    first_pts: int
    #: how a player turns the picture (the display matrix, farm/video/orient.py); applied on decode
    orientation: tuple[int, int, int, int] = orient.UPRIGHT
    #: the colour description, carried to the output (farm/video/colour.py)
    colour: Colour = Colour()
    #: a photo sequence (farm/video/images.py): its photos, relative to ``path``, in order; () for a video
    photos: tuple[str, ...] = ()
    #: what the user should be told about this source (photos fitted to one size, ...)
    notes: tuple[str, ...] = ()
    #: a trim: the first and last pts shown, and where the last frame ends (None: the whole video)
    window_first_pts: int | None = None
    window_last_pts: int | None = None
    window_end_pts: int | None = None

    @property
    def window(self) -> tuple[Fraction, Fraction] | None:
        """A trim's [start, end) in source seconds, or None for the whole video."""
        if self.window_first_pts is None or self.window_end_pts is None:
            return None
        return self.window_first_pts * self.time_base, self.window_end_pts * self.time_base

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as a player shows the source, before rounding to even."""
        return orient.display_size(self.width, self.height, self.orientation)

    @property
    def time_base(self) -> Fraction:
        """The video stream's time base: the unit of every Frame.pts."""
        return Fraction(self.time_base_num, self.time_base_den)


class _PacketStats(NamedTuple):
    frames: int
    first_pts: int
    end_pts: int | None  # pts + duration of the latest frame, None when no timestamps
    pts: list[int]  # every shown frame's pts, sorted (empty when some frame has none)


def probe(path: str | Path, start: float | None = None, duration: float | None = None) -> VideoInfo:
    """Describe the video at ``path`` (only its ``start``..``start + duration`` seconds, counted from its
    first frame, when given: a trim); InputError (one line) if it cannot be used."""
    path = Path(path)
    _check_file(path)
    with open_input(path) as container:
        _refuse_stills(container, path)
        stream = video_stream(container, path)
        stats = _scan_packets(container, stream, path)
        info = _info(path, container, stream, stats)
    if start is not None or duration is not None:
        info = _trimmed(path, info, stats, start or 0.0, duration)
    orientation, colour = _first_frame_facts(path)
    return _oriented(info, orientation).model_copy(update={"colour": colour})


def _trimmed(path: Path, info: VideoInfo, stats: _PacketStats, start: float, duration: float | None) -> VideoInfo:
    """``info`` narrowed to the frames shown from ``start`` for ``duration`` seconds (ffmpeg's -ss/-t)."""
    if start < 0 or (duration is not None and duration <= 0):
        raise InputError(f"{path}: a trim needs --start >= 0 and --duration > 0 (got {start}, {duration})")
    if start >= info.duration:
        raise InputError(f"{path}: --start {start:g} s is past the end of the video ({info.duration:.3f} s long)")
    if not stats.pts:
        raise InputError(f"{path}: cannot be trimmed: its frames carry no timestamps")
    tb = info.time_base
    begin = stats.first_pts + Fraction(start).limit_denominator(10**6) / tb
    stop = None if duration is None else begin + Fraction(duration).limit_denominator(10**6) / tb
    kept = [p for p in stats.pts if p >= begin and (stop is None or p < stop)]
    if not kept:
        raise InputError(f"{path}: no frame is shown between {start:g} s and {start + (duration or 0):g} s")
    later = [p for p in stats.pts if p > kept[-1]]
    end = later[0] if later else (stats.end_pts or kept[-1] + 1)
    return info.model_copy(update={"frames": len(kept), "first_pts": kept[0], "duration": float((end - kept[0]) * tb),
                                   "window_first_pts": kept[0], "window_last_pts": kept[-1],
                                   "window_end_pts": end})


def _first_frame_facts(path: Path) -> tuple[orient.Orientation, Colour]:
    """What only a decoded frame says for sure: the display matrix (FFmpeg exports the container's onto
    every frame) and the colour description (the codec's own, else the container's)."""
    try:
        with open_input(path) as container:
            for frame in container.decode(video_stream(container, path)):
                matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
                orientation = orient.from_display_matrix(None if matrix is None else
                                                         np.frombuffer(bytes(matrix), "<i4"))
                return orientation, describe(frame)
    except (av.error.FFmpegError, InputError):
        pass  # a damaged first frame is reported by the decode itself, naming the frame
    return orient.UPRIGHT, Colour()


def _oriented(info: VideoInfo, orientation: orient.Orientation) -> VideoInfo:
    width, height = orient.display_size(info.width, info.height, orientation)
    return info.model_copy(update={"orientation": orientation, "out_width": width + width % 2,
                                   "out_height": height + height % 2})


def _check_file(path: Path) -> None:
    if not path.exists():
        raise InputError(f"{path}: file not found")
    if not path.is_file():
        raise InputError(f"{path}: not a video (not a regular file)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: not a video (the file is empty)")
    if not os.access(path, os.R_OK):
        raise InputError(f"{path}: cannot be read (permission denied)")


@contextmanager
def open_input(path: Path) -> Iterator[av.container.InputContainer]:
    """av.open with its failures turned into one-line InputErrors."""
    try:
        container = av.open(str(path), "r")
    except av.error.FFmpegError as err:
        if _looks_like_container(path):
            raise InputError(f"{path}: truncated or corrupt video file: "
                             f"its header cannot be read ({reason(err)})") from None
        raise InputError(f"{path}: not a video (no demuxer recognises it)") from None
    with container:
        yield container


def _looks_like_container(path: Path) -> bool:
    """True when the file starts like a video container (so a failure means damage, not a wrong file)."""
    with path.open("rb") as f:
        head = f.read(189)
    mpeg_ts = len(head) > 188 and head[0] == head[188] == 0x47  # two 188-byte packets' sync bytes
    return mpeg_ts or any(head[at:at + len(magic)] == magic for at, magic in _CONTAINER_MAGIC)


def reason(err: Exception) -> str:
    """FFmpeg's own words, without PyAV's errno prefix and path suffix."""
    return getattr(err, "strerror", None) or str(err)


def _refuse_stills(container: av.container.InputContainer, path: Path) -> None:
    name = container.format.name
    if name in _STILL_FORMATS or name.endswith("_pipe"):
        raise InputError(f"{path}: not a video (a still image or text, read as '{name}')")


def video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first real video stream (cover art in a music file does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted({s.type for s in container.streams}) or ["no streams"]
    raise InputError(f"{path}: no video stream (the file has {', '.join(kinds)})")


def _scan_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  path: Path) -> _PacketStats:
    """Count the video packets and find the pts span, without decoding."""
    frames, seen, first, end, every = 0, 0, None, None, []
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # PyAV's end-of-stream flush packet
            if packet.is_corrupt:
                raise InputError(f"{path}: truncated or corrupt (frame {frames} is damaged)")
            seen += 1
            if packet.is_discard:
                continue  # trimmed by an edit list: never shown
            frames += 1
            ts = packet.pts if packet.pts is not None else packet.dts
            every.append(ts)
            if ts is not None:
                first = ts if first is None else min(first, ts)
                end = ts + (packet.duration or 0) if end is None else max(end, ts + (packet.duration or 0))
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: truncated or corrupt after {frames} frames ({reason(err)})") from None
    _check_count(path, frames, seen, stream.frames)
    timed = None not in every
    return _PacketStats(frames, 0 if first is None else first, end, sorted(every) if timed else [])


def _check_count(path: Path, frames: int, seen: int, listed: int) -> None:
    if frames == 0:
        raise InputError(f"{path}: the video stream has zero frames")
    if listed and seen < listed:
        raise InputError(f"{path}: truncated: the index lists {listed} frames but only {seen} are in the file")


def _info(path: Path, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
          stats: _PacketStats) -> VideoInfo:
    ctx = stream.codec_context
    tb = stream.time_base or Fraction(1, 1000)
    rate = _average_rate(stream, stats, tb)
    end = stats.end_pts if stats.end_pts and stats.end_pts > stats.first_pts else None
    duration = float((end - stats.first_pts) * tb) if end is not None else float(stats.frames / rate)
    audio = [s for s in container.streams.audio]
    return VideoInfo(
        path=str(path), width=ctx.width, height=ctx.height,
        out_width=ctx.width + ctx.width % 2, out_height=ctx.height + ctx.height % 2,
        frames=stats.frames, time_base_num=tb.numerator, time_base_den=tb.denominator,
        avg_rate_num=rate.numerator, avg_rate_den=rate.denominator, fps=float(rate), duration=duration,
        codec=ctx.name, pix_fmt=ctx.format.name if ctx.format else "unknown",
        has_audio=bool(audio), audio_codec=audio[0].codec_context.name if audio else None,
        first_pts=stats.first_pts)


def _average_rate(stream: av.video.stream.VideoStream, stats: _PacketStats, tb: Fraction) -> Fraction:
    """The container's average rate, else the guessed one, else frames over the pts span."""
    for rate in (stream.average_rate, stream.guessed_rate):
        if rate:
            return Fraction(rate)
    if stats.end_pts and stats.end_pts > stats.first_pts:
        return Fraction(stats.frames) / ((stats.end_pts - stats.first_pts) * tb)
    return Fraction(25)  # no timing at all (a raw elementary stream): FFmpeg's own default
