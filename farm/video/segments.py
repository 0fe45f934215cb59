"""Chunk segments: RGB frames to a self-contained H.264 MP4 and back, every pts exact."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import av
import numpy as np
from av.codec.context import Flags

from farm.codecs import encoder_options
from farm.errors import CodecError
from farm.video.colour import Colour, describe, from_rgb_array, to_rgb_array
from farm.video.decode import Frame


# Segments are MP4 with the track *and* movie timescales set to the source time
# base's denominator: every pts comes back exactly (Matroska rounds to 1 ms, and
# MP4's default 1/1000 movie timescale rounds the edit list that carries a
# segment's non-zero start). NUT was tried too: it loses pts at 1/1000000.
SEGMENT_EXT = ".mp4"

# MP4 tracks can only hold 1/den time bases and hide frames before pts 0, so a
# segment stores pts - origin (origin: its first pts) in 1/den ticks, and the
# writer's exact time base and origin ride in the container's comment tag.
_CLOCK_TAG = "farm-segment"


@cache
def holds(container_format: str, codec: str) -> bool:
    """Whether FFmpeg's ``container_format`` muxer takes ``codec`` (an encoder or codec name)."""
    with av.open(io.BytesIO(), "w", format=container_format) as probe:
        return codec in probe.supported_codecs


def segment_format(codec: str) -> str:
    """MP4, or QuickTime for codecs MP4 cannot hold (ProRes): the same muxer family and exact timescales,
    so a segment's name keeps SEGMENT_EXT whatever it holds (readers probe the content, not the name)."""
    return "mp4" if holds("mp4", codec) else "mov"


def mp4_options(time_base: Fraction, *, faststart: bool = False) -> dict[str, str]:
    """MP4 muxer options that keep pts exact in ``time_base`` (see SEGMENT_EXT)."""
    den = str(time_base.denominator)
    options = {"video_track_timescale": den, "movie_timescale": den}
    if faststart:
        options["movflags"] = "+faststart"
    return options


class SegmentWriter:
    """Streams RGB frames into one chunk segment: H.264 in MP4, exact pts, self-contained.

    The container is MP4 (SEGMENT_EXT) with its track and movie timescales set
    to ``time_base``'s denominator, so every pts is stored exactly (VFR too);
    see SegmentClock for how the writer's time base and first pts are kept.

    Input chunks are ``lossless`` (x264 at qp 0, preset superfast, tune fastdecode:
    exact for the YUV planes it is given); output chunks use the final codec settings, so the
    reducer can stream-copy them. Every segment starts with a keyframe and
    carries its own parameter sets; nothing depends on process state. ``colour``
    (the source's description, farm/video/colour.py) converts RGB to YUV and is
    written into the stream's tags; read_segment converts back with it.
    """

    def __init__(self, path: str | Path, width: int, height: int, time_base: Fraction, *, lossless: bool,
                 codec: str = "libx264", crf: int = 18, preset: str = "veryfast", pix_fmt: str = "yuv420p",
                 threads: int = 0, colour: Colour = Colour()) -> None:
        self.path, self.width, self.height, self.colour = Path(path), width, height, colour
        self.time_base = Fraction(time_base)
        self._tick = Fraction(1, self.time_base.denominator)  # the MP4 track's unit
        self._frames, self._last_pts, self._pix_fmt = 0, None, pix_fmt
        self._pending: av.VideoFrame | None = None  # written once the next pts gives its duration
        self._previous_duration = 0
        self._clock: SegmentClock | None = None  # set by the first frame, before the header is written
        self._container = None
        try:
            self._yuv = not av.VideoFormat(pix_fmt).is_rgb
            self._container = av.open(str(self.path), "w", format=segment_format(codec),
                                      options=mp4_options(self.time_base))
            self._stream = self._add_stream(codec, pix_fmt, threads, lossless,
                                            encoder_options(codec, lossless=lossless, crf=crf, preset=preset))
        except (av.error.FFmpegError, ValueError) as err:
            self.abort()
            raise CodecError(f"cannot open a {codec} segment writer for {self.path}: {err}") from None

    def _add_stream(self, codec: str, pix_fmt: str, threads: int, lossless: bool,
                    options: dict[str, str]) -> av.video.stream.VideoStream:
        stream = self._container.add_stream(codec)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, pix_fmt
        stream.time_base = stream.codec_context.time_base = self._tick
        ctx = stream.codec_context
        ctx.thread_count = threads
        ctx.flags |= Flags.frame_duration  # let packets carry our frame durations (else the muxer assumes 24 fps)
        if self._yuv:  # an RGB stream (libx264rgb) must stay untagged: its planes are not YUV
            self.colour.tag(ctx)
        known = {o.name for o in ctx.supported_options.private} | {o.name for o in ctx.supported_options.generic}
        if lossless and not set(options) <= known:  # silently lossy input chunks would be a quiet quality bug
            raise ValueError(f"{codec} has no x264-style lossless mode (qp 0)")
        stream.options = {k: v for k, v in options.items() if k in known}
        return stream

    def write(self, rgb: np.ndarray, pts: int) -> None:
        """Encode one (height, width, 3) uint8 frame at ``pts`` (in ``time_base``, strictly increasing).

        Frames go to the encoder one call late: a frame's duration (next pts minus
        its own) is only known then, and without it the MP4 muxer guesses the
        last frame's duration from PyAV's default 24 fps.
        """
        self._check(rgb, pts)
        if self._clock is None:
            self._clock = SegmentClock(self.time_base, pts)
            self._container.metadata["comment"] = self._clock.tag()
        frame = self._to_frame(rgb, pts)
        if self._pending is not None:
            self._pending.duration = self._previous_duration = frame.pts - self._pending.pts
            self._encode(self._pending)
        self._pending, self._frames, self._last_pts = frame, self._frames + 1, pts

    def _check(self, rgb: np.ndarray, pts: int) -> None:
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise CodecError(f"{self.path}: frame is {rgb.shape} {rgb.dtype}, "
                             f"expected ({self.height}, {self.width}, 3) uint8")
        if self._last_pts is not None and pts <= self._last_pts:
            raise CodecError(f"{self.path}: pts {pts} after {self._last_pts} (must increase)")

    def _to_frame(self, rgb: np.ndarray, pts: int) -> av.VideoFrame:
        frame = from_rgb_array(rgb, self._pix_fmt, self.colour)
        frame.pts, frame.time_base = self._clock.to_ticks(pts), self._tick
        return frame

    def _encode(self, frame: av.VideoFrame | None) -> None:
        try:
            self._container.mux(self._stream.encode(frame))
        except av.error.FFmpegError as err:
            raise CodecError(f"{self.path}: encoding failed after {self._frames} frames: {err}") from None

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to call twice. A failure leaves no file."""
        if self._container is None:
            return
        try:
            self._finish()
        except BaseException:
            self.abort()
            raise

    def _finish(self) -> None:
        if self._pending is None:
            raise CodecError(f"{self.path}: a segment needs at least one frame")
        self._pending.duration = self._previous_duration  # the last frame lasts as long as the one before
        self._encode(self._pending)
        self._pending = None
        self._encode(None)
        try:
            self._container.close()
        except av.error.FFmpegError as err:
            raise CodecError(f"{self.path}: cannot finish the segment: {err}") from None
        self._container = None

    def abort(self) -> None:
        """Drop a half-written segment (after a failure): nothing usable is left behind."""
        container, self._container, self._pending = self._container, None, None
        if container is not None:
            try:
                container.close()
            except av.error.FFmpegError:
                pass
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class SegmentClock(NamedTuple):
    """How a segment's stored ticks map back to the writer's pts (see _CLOCK_TAG)."""

    time_base: Fraction  # the writer's time base: the unit of Frame.pts
    origin: int  # the first pts written; stored as tick 0

    def to_ticks(self, pts: int) -> int:
        return (pts - self.origin) * self.time_base.numerator

    def seconds(self, stored: int, stored_base: Fraction) -> Fraction:
        """A stored timestamp (in the track's time base) as exact seconds on the writer's clock."""
        return self.origin * self.time_base + stored * stored_base

    def pts_of(self, frame: av.VideoFrame, stream: av.VideoStream, path: Path) -> int:
        """A decoded frame's pts in this clock's time base, exactly (CodecError if it falls between ticks)."""
        return exact(self.seconds(frame.pts, stream.time_base) / self.time_base, path)

    def tag(self) -> str:
        return f"{_CLOCK_TAG} time_base={self.time_base} origin={self.origin}"

    @classmethod
    def read(cls, container: av.container.InputContainer, path: Path) -> SegmentClock:
        """The clock from the comment tag; CodecError for a file no SegmentWriter wrote."""
        words = container.metadata.get("comment", "").split()
        fields = dict(w.split("=", 1) for w in words[1:] if "=" in w)
        if words[:1] != [_CLOCK_TAG] or set(fields) != {"time_base", "origin"}:
            raise CodecError(f"{path}: not a farm segment (no '{_CLOCK_TAG}' tag)")
        return cls(Fraction(fields["time_base"]), int(fields["origin"]))


def read_segment(path: str | Path, threads: int = 0) -> Iterator[Frame]:
    """Decode a segment written by SegmentWriter; pts come back exactly, in the writer's time base.

    ``threads`` caps the decoder's threads (0: FFmpeg's choice, one per core).
    """
    path = Path(path)
    try:
        with open_segment(path, threads) as (container, stream, clock):
            for frame in container.decode(stream):
                rgb = to_rgb_array(frame, describe(frame))  # the colour the writer tagged
                yield Frame(rgb, clock.pts_of(frame, stream, path))
    except (av.error.FFmpegError, IndexError) as err:
        raise CodecError(f"{path}: cannot read segment: {err}") from None


@contextmanager
def open_segment(path: Path, threads: int = 0) -> Iterator[tuple[av.container.InputContainer, av.VideoStream,
                                                                   SegmentClock]]:
    """A file whose muxer recorded a :class:`SegmentClock` (a segment, a copied chunk) opened for decoding:
    its container, video stream (``threads`` caps the decoder's threads) and clock."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        yield container, stream, SegmentClock.read(container, path)


def exact(value: Fraction, path: Path) -> int:
    """An integer timestamp, or CodecError: a rounded pts would be a silent timing error."""
    if value.denominator != 1:
        raise CodecError(f"{path}: timestamp {value} is not a whole tick of the segment's time base")
    return int(value)

