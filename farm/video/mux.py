"""The reducer's muxing: output segments stream-copied into one MP4, the source's other tracks beside them."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from fractions import Fraction
from heapq import merge
from pathlib import Path

import av

from farm.errors import CodecError, UserError
from farm.files import atomic_path
from farm.video.segments import SegmentClock, exact, holds, mp4_options
from farm.video.tracks import Window, carry_tracks

log = logging.getLogger(__name__)

def concat_segments(segments: Sequence[Path], out: Path, *, audio_from: Path | None, time_base: Fraction,
                    trim: tuple[Fraction, Fraction] | None = None) -> list[str]:
    """Stream-copy the output segments, in order, into one video at ``out`` (MP4 or MOV with +faststart,
    or Matroska, by its extension); returns notes.

    Video packets are not re-encoded and keep their pts (in ``time_base``).
    Every audio and subtitle track, the chapters and the tags of
    ``audio_from`` (the source) go beside them (farm/video/tracks.py: copied
    where the container takes them, else converted, and said in the notes).
    A ``trim`` ([start, end) source seconds) starts the output at 0 and cuts
    the other tracks and the chapters to it. ``out`` appears only when complete.
    """
    if not segments:
        raise CodecError(f"{out}: no segments to concatenate")
    first = check_concat_compatible(segments)
    out, tick = Path(out), Fraction(1, Fraction(time_base).denominator)
    start = -exact(first.origin * first.time_base / tick, Path(segments[0]))
    shift = start if trim else max(0, start)
    if shift > 0 and not trim:
        log.warning("%s: the video starts before time 0; shifting video and audio by %ss", out, float(shift * tick))
    with atomic_path(out) as tmp:
        try:
            return _mux_final(segments, tmp, audio_from, tick, shift, trim)
        except av.error.FFmpegError as err:
            raise CodecError(f"{out}: muxing failed: {err}") from None


#: the containers the final video may be, by the output's extension
CONTAINERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}


def output_format(path: Path) -> str:
    """FFmpeg's muxer for an output path (UserError for an extension farm does not write)."""
    fmt = CONTAINERS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UserError(f"{Path(path).name}: the video must end in {', '.join(CONTAINERS)} (the container)")
    return fmt


def check_output(path: Path, codec: str) -> None:
    """UserError unless ``codec`` is an encoder FFmpeg has and the output's container can hold it."""
    fmt = output_format(path)
    if codec == "auto":
        return  # H.264 (libx264 or NVENC): every container farm writes holds it
    try:
        av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError):
        raise UserError(f"--codec {codec}: no such video encoder in this FFmpeg") from None
    if not holds(fmt, codec):
        fits = [ext for ext, other in CONTAINERS.items() if holds(other, codec)]
        raise UserError(f"--codec {codec}: a {Path(path).suffix} file cannot hold it"
                        + (f"; use {' or '.join(fits)}" if fits else ""))


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


def _mux_final(segments: Sequence[Path], tmp: Path, audio_from: Path | None, tick: Fraction,
               shift: int, trim: tuple[Fraction, Fraction] | None) -> list[str]:
    with ExitStack() as stack:
        fmt = output_format(tmp)
        options = {} if fmt == "matroska" else mp4_options(tick, faststart=True)
        out = stack.enter_context(av.open(str(tmp), "w", format=fmt, options=options))
        with av.open(str(segments[0])) as first:
            video = out.add_stream_from_template(first.streams.video[0])
        video.time_base = tick
        streams = [_video_packets(segments, video, tick, shift)]
        notes: list[str] = []
        if audio_from is not None:
            window = Window(shift * tick, *trim) if trim else Window(shift * tick)
            tracks, notes = carry_tracks(stack, Path(audio_from), out, window)
            streams += tracks
        for packet in merge(*streams, key=_packet_time):
            out.mux(packet)
    return notes


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
            packet.pts = exact(clock.seconds(packet.pts, packet.time_base) / tick, path) + shift
            packet.dts, packet.time_base, packet.stream = next(dts), tick, stream
            yield packet


def _stream_pts(segments: Sequence[Path], tick: Fraction, shift: int) -> list[int]:
    """Pass 1 (demux only): every packet's pts in decode order; CodecError if segments overlap in time."""
    everything: list[int] = []
    for path in segments:
        pts = [exact(clock.seconds(p.pts, p.time_base) / tick, path) + shift for p, clock in _demux_video(path)]
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
