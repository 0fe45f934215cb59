"""The reducer's muxing: output segments stream-copied into one MP4, the source's audio beside them."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from fractions import Fraction
from heapq import merge
from pathlib import Path

import av

from farm.errors import CodecError
from farm.files import atomic_path
from farm.video.segments import SegmentClock, exact, mp4_options

log = logging.getLogger(__name__)

# Audio codecs that MP4 players handle; anything else (PCM, Vorbis, ...) is re-encoded to AAC.
# FFmpeg would mux more (its MP4 PCM and Vorbis mappings are new or non-standard).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}


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
    shift = max(0, -exact(first.origin * first.time_base / tick, Path(segments[0])))
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
        out = stack.enter_context(av.open(str(tmp), "w", format="mp4", options=mp4_options(tick, faststart=True)))
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

