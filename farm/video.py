"""All PyAV work of farm: probe, decode, chunk segments, the final concat, the GIF.

Timestamps are the thread that ties the pipeline together: every frame keeps
the pts it had in the source (in the source stream's time base) through the
input segment, the stylization and the output segment, so the final MP4 has
the source's timing, VFR included, and the source's audio stays in sync when
it is stream-copied beside it.

Colour: RGB <-> YUV conversions use swscale's default matrix (BT.601) both
ways, with accurate rounding and full (bilinear) chroma on the way to RGB; the
segments are tagged BT.601. (swscale's fast default path is off by 1-2 levels
on most pixels and upsamples chroma by repetition.) A lossless segment keeps
exactly the YUV planes it is given; the loss in source -> RGB -> yuv420p ->
RGB is the 4:2:0 chroma itself: within +-1 for 99.6 % of values on bikes.mp4,
93.6 % on bigbuckbunny.mp4 (saturated cartoon edges), far less on hard-edged
synthetic colour patterns. pix_fmt="yuv444p" keeps every value within +-2;
codec="libx264rgb", pix_fmt="rgb24" is bit-exact RGB (about 3x the bytes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from fractions import Fraction
from heapq import merge
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import av
import av.filter
import numpy as np
from av.codec.context import Flags
from av.video.reformatter import Interpolation
from pydantic import BaseModel, ConfigDict

from farm.codecs import encoder_options
from farm.errors import CodecError, InputError
from farm.files import atomic_path

log = logging.getLogger(__name__)

# Segments are MP4 with the track *and* movie timescales set to the source time
# base's denominator: every pts comes back exactly (Matroska rounds to 1 ms, and
# MP4's default 1/1000 movie timescale rounds the edit list that carries a
# segment's non-zero start). NUT was tried too: it loses pts at 1/1000000.
SEGMENT_EXT = ".mp4"

# MP4 tracks can only hold 1/den time bases and hide frames before pts 0, so a
# segment stores pts - origin (origin: its first pts) in 1/den ticks, and the
# writer's exact time base and origin ride in the container's comment tag.
_CLOCK_TAG = "farm-segment"

# swscale's default RGB<->YUV matrix, written into the segments so players agree.
_BT601, _LIMITED_RANGE = 6, 1  # AVCOL_SPC_SMPTE170M, AVCOL_RANGE_MPEG
_I = Interpolation
_TO_RGB = _I.BILINEAR | _I.ACCURATE_RND | _I.FULL_CHR_H_INT | _I.FULL_CHR_H_INP
_TO_YUV = _I.AREA | _I.ACCURATE_RND  # 2x2 chroma average: the inverse of the bilinear upsampling above

# Audio codecs that MP4 players handle; anything else (PCM, Vorbis, ...) is re-encoded to AAC.
# FFmpeg would mux more (its MP4 PCM and Vorbis mappings are new or non-standard).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}

# Demuxers that open pictures or text as one-frame "video": refused as not a video.
_STILL_FORMATS = {"image2", "image2pipe", "tty", "bin", "xbin", "adf", "idf"}

# Magic numbers of common video containers, to tell "corrupt video" from "not a video".
_CONTAINER_MAGIC: tuple[tuple[int, bytes], ...] = (
    (4, b"ftyp"), (4, b"moov"), (4, b"mdat"), (4, b"free"), (4, b"wide"), (4, b"skip"),
    (0, b"\x1a\x45\xdf\xa3"), (8, b"AVI "), (0, b"FLV"), (0, b"OggS"), (0, b"\x00\x00\x01\xba"),
    (0, b"nut/multimedia container"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"),
)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0,1] (a painted frame) → uint8, rounded, out-of-range values clipped."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# --------------------------------------------------------------------------- probe


class VideoInfo(BaseModel):
    """What the pipeline needs to know about a source video, read without decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    width: int
    height: int
    out_width: int  # rounded up to even for yuv420p (last column repeated)
    out_height: int  # rounded up to even for yuv420p (last row repeated)
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

    @property
    def time_base(self) -> Fraction:
        """The video stream's time base: the unit of every Frame.pts."""
        return Fraction(self.time_base_num, self.time_base_den)


class _PacketStats(NamedTuple):
    frames: int
    first_pts: int
    end_pts: int | None  # pts + duration of the latest frame, None when no timestamps


def probe(path: str | Path) -> VideoInfo:
    """Describe the video at ``path``; InputError (one line) if it cannot be used."""
    path = Path(path)
    _check_file(path)
    with _open_input(path) as container:
        _refuse_stills(container, path)
        stream = _video_stream(container, path)
        stats = _scan_packets(container, stream, path)
        return _info(path, container, stream, stats)


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
def _open_input(path: Path) -> Iterator[av.container.InputContainer]:
    """av.open with its failures turned into one-line InputErrors."""
    try:
        container = av.open(str(path), "r")
    except av.error.FFmpegError as err:
        if _looks_like_container(path):
            raise InputError(f"{path}: truncated or corrupt video file: "
                             f"its header cannot be read ({_reason(err)})") from None
        raise InputError(f"{path}: not a video (no demuxer recognises it)") from None
    with container:
        yield container


def _looks_like_container(path: Path) -> bool:
    """True when the file starts like a video container (so a failure means damage, not a wrong file)."""
    with path.open("rb") as f:
        head = f.read(189)
    mpeg_ts = len(head) > 188 and head[0] == head[188] == 0x47  # two 188-byte packets' sync bytes
    return mpeg_ts or any(head[at:at + len(magic)] == magic for at, magic in _CONTAINER_MAGIC)


def _reason(err: Exception) -> str:
    """FFmpeg's own words, without PyAV's errno prefix and path suffix."""
    return getattr(err, "strerror", None) or str(err)


def _refuse_stills(container: av.container.InputContainer, path: Path) -> None:
    name = container.format.name
    if name in _STILL_FORMATS or name.endswith("_pipe"):
        raise InputError(f"{path}: not a video (a still image or text, read as '{name}')")


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    """The first real video stream (cover art in a music file does not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    kinds = sorted({s.type for s in container.streams}) or ["no streams"]
    raise InputError(f"{path}: no video stream (the file has {', '.join(kinds)})")


def _scan_packets(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                  path: Path) -> _PacketStats:
    """Count the video packets and find the pts span, without decoding."""
    frames, seen, first, end = 0, 0, None, None
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
            if ts is not None:
                first = ts if first is None else min(first, ts)
                end = ts + (packet.duration or 0) if end is None else max(end, ts + (packet.duration or 0))
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: truncated or corrupt after {frames} frames ({_reason(err)})") from None
    _check_count(path, frames, seen, stream.frames)
    return _PacketStats(frames, 0 if first is None else first, end)


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


# --------------------------------------------------------------------------- decode


class Frame(NamedTuple):
    """One decoded picture: RGB already padded to the even output size, and its source pts."""

    rgb: np.ndarray  # (out_height, out_width, 3) uint8
    pts: int  # in the source stream's time base


def iter_frames(path: str | Path, info: VideoInfo) -> Iterator[Frame]:
    """Decode the video at ``path`` as a stream of Frames (never the whole video at once).

    Raises InputError naming the file and frame index when the data is corrupt,
    or when the file ends before the ``info.frames`` frames probe counted.
    """
    path = Path(path)
    with _open_input(path) as container:
        stream = _video_stream(container, path)
        stream.codec_context.thread_type = "AUTO"  # frame + slice threads; PyAV's default is slice only
        count = 0
        for frame, pts in _timestamps(_decoded(container, stream, path), info):
            yield Frame(to_rgb(frame, info.width, info.height, info.out_width, info.out_height), pts)
            count += 1
    if count < info.frames:
        raise InputError(f"{path}: decoding stopped after {count} of {info.frames} frames "
                         "(the file is truncated or corrupt)")


def _decoded(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
             path: Path) -> Iterator[av.VideoFrame]:
    """container.decode with FFmpeg's errors and corrupt frames turned into InputError."""
    frames, index = container.decode(stream), 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.error.FFmpegError as err:
            raise InputError(f"{path}: corrupt video data near frame {index} ({_reason(err)})") from None
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


def to_rgb(frame: av.VideoFrame, width: int, height: int, out_width: int, out_height: int) -> np.ndarray:
    """The frame as (out_height, out_width, 3) uint8 RGB, edges replicated into the padding."""
    if (frame.width, frame.height) != (width, height):  # a mid-stream size change: back to the probed size
        frame = frame.reformat(width=width, height=height)
    rgb = frame.to_ndarray(format="rgb24", interpolation=_TO_RGB)
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


# --------------------------------------------------------------------------- segments


def _mp4_options(time_base: Fraction, *, faststart: bool = False) -> dict[str, str]:
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

    Input chunks are ``lossless`` (x264 at qp 0, preset veryfast, tune fastdecode:
    exact for the YUV planes it is given); output chunks use the final codec settings, so the
    reducer can stream-copy them. Every segment starts with a keyframe and
    carries its own parameter sets; nothing depends on process state.
    """

    def __init__(self, path: str | Path, width: int, height: int, time_base: Fraction, *, lossless: bool,
                 codec: str = "libx264", crf: int = 18, preset: str = "veryfast", pix_fmt: str = "yuv420p",
                 threads: int = 0) -> None:
        self.path, self.width, self.height = Path(path), width, height
        self.time_base = Fraction(time_base)
        self._tick = Fraction(1, self.time_base.denominator)  # the MP4 track's unit
        self._frames, self._last_pts, self._pix_fmt = 0, None, pix_fmt
        self._pending: av.VideoFrame | None = None  # written once the next pts gives its duration
        self._previous_duration = 0
        self._clock: SegmentClock | None = None  # set by the first frame, before the header is written
        self._container = None
        try:
            self._yuv = not av.VideoFormat(pix_fmt).is_rgb
            self._container = av.open(str(self.path), "w", format="mp4", options=_mp4_options(self.time_base))
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
            ctx.colorspace, ctx.color_range = _BT601, _LIMITED_RANGE
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
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self._yuv:
            frame = frame.reformat(format=self._pix_fmt, interpolation=_TO_YUV,
                                   dst_colorspace="ITU601", dst_color_range="MPEG")
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
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_type = "AUTO"
            stream.codec_context.thread_count = threads
            clock = SegmentClock.read(container, path)
            for frame in container.decode(stream):
                rgb = frame.to_ndarray(format="rgb24", interpolation=_TO_RGB)
                yield Frame(rgb, _exact(clock.seconds(frame.pts, stream.time_base) / clock.time_base, path))
    except (av.error.FFmpegError, IndexError) as err:
        raise CodecError(f"{path}: cannot read segment: {err}") from None


def _exact(value: Fraction, path: Path) -> int:
    """An integer timestamp, or CodecError: a rounded pts would be a silent timing error."""
    if value.denominator != 1:
        raise CodecError(f"{path}: timestamp {value} is not a whole tick of the segment's time base")
    return int(value)


# --------------------------------------------------------------------------- concat (the reducer)


def concat_segments(segments: Sequence[Path], out: Path, *, audio_from: Path | None, time_base: Fraction) -> None:
    """Stream-copy the output segments, in order, into one MP4 (+faststart) at ``out``.

    Video packets are not re-encoded and keep their pts (in ``time_base``);
    the audio of ``audio_from`` is copied unchanged beside them, or re-encoded
    to AAC (with a warning) when its codec cannot go in MP4. ``out`` appears
    only when complete.
    """
    if not segments:
        raise CodecError(f"{out}: no segments to concatenate")
    first = check_concat_compatible(segments)
    out, tick = Path(out), Fraction(1, Fraction(time_base).denominator)
    shift = max(0, -_exact(first.origin * first.time_base / tick, Path(segments[0])))
    if shift:
        log.warning("%s: the video starts before time 0; shifting video and audio by %ss", out, float(shift * tick))
    with atomic_path(out) as tmp:
        try:
            _mux_final(segments, tmp, audio_from, tick, shift)
        except av.error.FFmpegError as err:
            raise CodecError(f"{out}: muxing failed: {err}") from None


_CONCAT_KEYS = ("codec", "width", "height", "pix_fmt", "profile", "extradata", "time base")


def _segment_params(path: Path) -> tuple[tuple, SegmentClock]:
    """What must match between segments for their packets to form one H.264 track, and the clock."""
    try:
        with av.open(str(path)) as container:
            ctx = container.streams.video[0].codec_context
            clock = SegmentClock.read(container, path)
            return (ctx.name, ctx.width, ctx.height, ctx.format.name if ctx.format else None, ctx.profile,
                    bytes(ctx.extradata or b""), clock.time_base), clock
    except (av.error.FFmpegError, IndexError) as err:
        raise CodecError(f"{path}: not a readable video segment ({err})") from None


def check_concat_compatible(segments: Sequence[Path]) -> SegmentClock:
    """CodecError unless every segment has the first one's codec, size, pixel format, profile,
    parameter sets (extradata) and time base; returns the first segment's clock."""
    first, clock = _segment_params(Path(segments[0]))
    for path in segments[1:]:
        params, _ = _segment_params(Path(path))
        diff = [name for name, a, b in zip(_CONCAT_KEYS, first, params) if a != b]
        if diff:
            raise CodecError(f"{path}: cannot be concatenated after {segments[0]}: different {', '.join(diff)}")
    return clock


def _mux_final(segments: Sequence[Path], tmp: Path, audio_from: Path | None, tick: Fraction, shift: int) -> None:
    with ExitStack() as stack:
        out = stack.enter_context(av.open(str(tmp), "w", format="mp4", options=_mp4_options(tick, faststart=True)))
        with av.open(str(segments[0])) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        video.time_base = tick
        streams = [_video_packets(segments, video, tick, shift)]
        if audio_from is not None:
            streams += _audio_packets(stack, Path(audio_from), out, shift * tick)
        for packet in merge(*streams, key=_packet_time):
            out.mux(packet)


def _packet_time(packet: av.Packet) -> Fraction:
    """Decode-order time in seconds, to interleave audio and video in the file."""
    return packet.dts * packet.time_base


def _video_packets(segments: Sequence[Path], stream: av.video.stream.VideoStream, tick: Fraction,
                   shift: int) -> Iterator[av.Packet]:
    """The segments' packets in order, pts kept (in ``tick`` units), dts rebuilt for the whole stream.

    Each segment's encoder starts its dts a B-frame delay before its first pts,
    and a short last chunk may have no B-frames at all: copied as they are, the
    dts would jump at the seams, and MP4 readers derive the frame rate from dts.
    """
    pts = _stream_pts(segments, tick, shift)
    dts = iter(decode_timestamps(pts))
    for path in segments:
        for packet, clock in _demux_video(path):
            packet.pts = _exact(clock.seconds(packet.pts, packet.time_base) / tick, path) + shift
            packet.dts, packet.time_base, packet.stream = next(dts), tick, stream
            yield packet


def _stream_pts(segments: Sequence[Path], tick: Fraction, shift: int) -> list[int]:
    """Pass 1 (demux only): every packet's pts in decode order; CodecError if segments overlap in time."""
    everything: list[int] = []
    for path in segments:
        pts = [_exact(clock.seconds(p.pts, p.time_base) / tick, path) + shift for p, clock in _demux_video(path)]
        if everything and pts and min(pts) <= max(everything):
            raise CodecError(f"{path}: its frames overlap the previous segment's (segments out of order?)")
        everything += pts
    return everything


def decode_timestamps(pts: Sequence[int]) -> list[int]:
    """Strictly increasing dts <= pts for packets given in decode order, with the dts spacing of the pts.

    The i-th packet gets the i-th smallest pts, ``depth`` packets back, where
    depth is the deepest B-frame reordering in the stream (how ffmpeg's H.264
    parser guesses dts); the first ``depth`` packets step back from the first pts.
    """
    order = sorted(pts)
    rank = {p: r for r, p in enumerate(order)}
    depth = max(i - rank[p] for i, p in enumerate(pts)) if pts else 0
    step = order[1] - order[0] if len(order) > 1 else 1
    return [order[i - depth] if i >= depth else order[0] - (depth - i) * step for i in range(len(pts))]


def _demux_video(path: Path) -> Iterator[tuple[av.Packet, SegmentClock]]:
    with av.open(str(path)) as container:
        clock = SegmentClock.read(container, path)
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                yield packet, clock


def _audio_packets(stack: ExitStack, source: Path, out: av.container.OutputContainer,
                   shift: Fraction) -> list[Iterator[av.Packet]]:
    """The source's first audio stream as packets for ``out``, ``shift`` seconds later (like the video):
    copied, or re-encoded to AAC when MP4 players would not take its codec."""
    container = stack.enter_context(av.open(str(source)))
    if not container.streams.audio:
        return []
    stream = container.streams.audio[0]
    if stream.codec_context.name in _MP4_AUDIO:
        target = out.add_stream_from_template(stream)
        return [_copied(container, stream, target, shift)]
    log.warning("%s: audio codec %s cannot go in MP4; re-encoding it to AAC", source, stream.codec_context.name)
    return [_reencoded(container, stream, out, shift)]


def _copied(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
            target: av.audio.stream.AudioStream, shift: Fraction) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if packet.size and packet.dts is not None:
            offset = round(shift / packet.time_base)
            packet.dts += offset
            if packet.pts is not None:
                packet.pts += offset
            packet.stream = target
            yield packet


def _reencoded(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
               out: av.container.OutputContainer, shift: Fraction) -> Iterator[av.Packet]:
    """Decode and encode to AAC at the source's rate, starting at the source's first audio pts."""
    rate = stream.codec_context.sample_rate
    target = out.add_stream("aac", rate=rate, layout=_aac_layout(stream.codec_context.layout.nb_channels))
    target.time_base = Fraction(1, rate)
    for frame in container.decode(stream):
        if frame.pts is not None:
            frame.pts = round((frame.pts * frame.time_base + shift) * rate)
        frame.time_base = Fraction(1, rate)
        yield from _stamped(target.encode(frame))
    yield from _stamped(target.encode(None))


def _aac_layout(channels: int) -> str:
    """A named layout for AAC: sources often say only "N channels", which the encoder refuses."""
    return {1: "mono", 2: "stereo"}.get(channels) or av.AudioLayout(channels).name


def _stamped(packets: list[av.Packet]) -> Iterator[av.Packet]:
    for packet in packets:
        if packet.dts is not None:
            yield packet


# --------------------------------------------------------------------------- GIF


class GifInfo(NamedTuple):
    """What make_gif wrote."""

    frames: int
    width: int
    height: int


def make_gif(video: Path, out: Path, *, width: int = 480, fps: float = 12.0, max_seconds: float = 10.0) -> GifInfo:
    """A GIF preview of the first ``max_seconds`` of ``video``, with one global palette.

    ffmpeg's two-pass recipe (palettegen, then paletteuse) through PyAV filter
    graphs: pass 1 builds one palette from every frame, pass 2 maps every
    frame onto it, so colours do not shimmer from frame to frame.

    The palette's statistics are gathered at half the GIF's width: palettegen
    costs grow with pixels, and the colours of a frame barely change with
    scale (bikes.mp4: 5.1 s instead of 8.6 s for the GIF; error against the
    source frames, blurred σ 1.5, 6.39 instead of 6.27 of 255).
    """
    video, out = Path(video), Path(out)
    info = probe(video)
    gif_width = min(width, info.width)
    scale = f"{gif_width}:-2:flags=lanczos"  # -2: keep the height even
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(out) as tmp:
        try:
            palette = _palette(video, info, rate, f"{max(2, gif_width // 2)}:-2:flags=lanczos", max_seconds)
            return _write_gif(video, info, tmp, palette, rate, scale, max_seconds)
        except av.error.FFmpegError as err:
            raise CodecError(f"{out}: GIF encoding failed: {err}") from None


def _capped_frames(video: Path, info: VideoInfo, max_seconds: float) -> Iterator[av.VideoFrame]:
    """Decoded frames of the first ``max_seconds`` of the video (raw, for the filter graph)."""
    with _open_input(video) as container:
        stream = _video_stream(container, video)
        stream.codec_context.thread_type = "AUTO"
        limit = info.first_pts + max_seconds / info.time_base
        for frame in _decoded(container, stream, video):
            if frame.pts is not None and frame.pts >= limit:
                return
            yield frame


def _palette(video: Path, info: VideoInfo, rate: Fraction, scale: str, max_seconds: float) -> av.VideoFrame:
    """Pass 1: fps, scale, palettegen over the whole capped clip, one palette frame out."""
    graph = av.filter.Graph()
    chain = [_buffer(graph, info), graph.add("fps", str(rate)), graph.add("scale", scale),
             graph.add("palettegen", "stats_mode=diff"), graph.add("buffersink")]
    graph.link_nodes(*chain).configure()
    for frame in _capped_frames(video, info, max_seconds):
        graph.push(frame)
    graph.push(None)  # palettegen emits only at end of stream
    return graph.pull()


def _buffer(graph: av.filter.Graph, info: VideoInfo) -> av.filter.context.FilterContext:
    return graph.add_buffer(width=info.width, height=info.height, format=info.pix_fmt,
                            time_base=info.time_base, name="video")


def _write_gif(video: Path, info: VideoInfo, tmp: Path, palette: av.VideoFrame, rate: Fraction, scale: str,
               max_seconds: float) -> GifInfo:
    """Pass 2: the same fps and scale, then paletteuse with the pass-1 palette, into the GIF encoder."""
    graph, source, sink = _paletteuse_graph(info, palette, rate, scale)  # graph: keeps the filters alive
    frames, size = 0, (0, 0)
    with av.open(str(tmp), "w", format="gif") as container:
        stream = container.add_stream("gif", rate=rate)
        stream.pix_fmt = "pal8"
        for frame in _filtered(source, sink, _capped_frames(video, info, max_seconds)):
            if not frames:
                stream.width, stream.height = size = (frame.width, frame.height)
            container.mux(stream.encode(frame))
            frames += 1
        container.mux(stream.encode(None))
    return GifInfo(frames, *size)


def _paletteuse_graph(info: VideoInfo, palette: av.VideoFrame, rate: Fraction, scale: str
                      ) -> tuple[av.filter.Graph, av.filter.context.FilterContext, av.filter.context.FilterContext]:
    """buffer -> fps -> scale -> paletteuse <- palette; the palette is pushed (and closed) here."""
    graph = av.filter.Graph()
    source = _buffer(graph, info)
    pal = graph.add_buffer(width=palette.width, height=palette.height, format=palette.format,
                           time_base=info.time_base, name="palette")
    # ordered (bayer) dithering: the same colour gets the same pattern in every frame, where error
    # diffusion would make still areas crawl, the very flicker this project removes
    use = graph.add("paletteuse", "dither=bayer:bayer_scale=4:diff_mode=rectangle")
    sink = graph.add("buffersink")
    graph.link_nodes(source, graph.add("fps", str(rate)), graph.add("scale", scale), use, sink)
    pal.link_to(use, 0, 1)
    graph.configure()
    palette.pts, palette.time_base = min(info.first_pts, 0), info.time_base  # in place before the first frame
    pal.push(palette)
    pal.push(None)
    return graph, source, sink


def _filtered(source: av.filter.context.FilterContext, sink: av.filter.context.FilterContext,
              frames: Iterable[av.VideoFrame]) -> Iterator[av.VideoFrame]:
    """Push frames through the graph, yielding whatever comes out, then drain it at end of stream."""
    for frame in frames:
        source.push(frame)
        yield from _drain(sink)
    source.push(None)
    yield from _drain(sink)


def _drain(sink: av.filter.context.FilterContext) -> Iterator[av.VideoFrame]:
    while True:
        try:
            yield sink.pull()
        except (BlockingIOError, av.error.EOFError):
            return
