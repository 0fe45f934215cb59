"""Input chunks by stream copy: the source's own packets, remuxed into MP4 without decoding, and read back.

A copied chunk starts at a keyframe at or before its first warm-up frame, so the worker decodes ``lead``
frames and drops them; what it keeps are the source's own pictures, decoded with the source's facts
(orientation, colour matrix, HDR tone-map), i.e. exactly what decoding the source gives. Re-encoding, even
losslessly, is not exact in RGB (bench/README.md, input_codec.py). pts are kept exact as segments keep
them (farm/video/segments.py: track timescale = the time base's denominator, origin in the comment tag).
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from farm.errors import CodecError
from farm.video.decode import Frame, to_rgb
from farm.video.probe import VideoInfo, open_input, video_stream
from farm.video.segments import SegmentClock, mp4_options, open_segment, segment_format


def copy_packets(source: Path, key_pts: int, frames: int, path: Path) -> bool:
    """Write to ``path`` the source's packets (decode order) from its keyframe at ``key_pts`` through the
    last one the first ``frames`` frames from that keyframe (presentation order) need. False, and no file,
    when that cannot be done exactly: the seek missed the keyframe, a packet has no pts, the file ends
    first, or the muxer refuses the stream."""
    try:
        with open_input(source) as container:
            stream = video_stream(container, source)
            packets = _gop_packets(container, stream, key_pts, frames)
            if packets is None:
                return False
            _mux(packets, stream, key_pts, path)
        return True
    except (av.error.FFmpegError, ValueError):
        path.unlink(missing_ok=True)
        return False


def _gop_packets(container, stream, key_pts: int, frames: int) -> list[av.Packet] | None:
    container.seek(key_pts, stream=stream, backward=True, any_frame=False)
    packets: list[av.Packet] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's flush
        if packet.pts is None or packet.is_discard:
            return None  # an edit list hides pictures a copy might need to decode: not safe to copy
        if not packets and (not packet.is_keyframe or packet.pts != key_pts):
            return None  # an edit list or a damaged index: the seek did not land where the table said
        if packet.pts < key_pts:
            continue  # open-GOP leading pictures of our keyframe: frames of the GOP before (shard._seeked)
        # a later keyframe with enough frames before it in decode order: every frame we need is among them
        # (a keyframe's own leading pictures follow, in presentation order, every frame decoded before it)
        if packet.is_keyframe and len(packets) >= frames:
            break
        packets.append(packet)
    if len(packets) < frames:
        return None
    last = sorted(p.pts for p in packets)[frames - 1]
    # through the last packet (decode order) presenting one of our frames: every reference precedes it
    end = max(i for i, p in enumerate(packets) if p.pts <= last)
    return packets[:end + 1]


def _mux(packets: list[av.Packet], stream, key_pts: int, path: Path) -> None:
    clock = SegmentClock(stream.time_base, key_pts)
    tick = Fraction(1, stream.time_base.denominator)
    with av.open(str(path), "w", format=segment_format(stream.codec_context.name),
                 options=mp4_options(stream.time_base)) as out:
        out.metadata["comment"] = clock.tag()
        copy = out.add_stream_from_template(stream)
        for packet in packets:
            pts, dts = packet.pts, packet.dts
            packet.stream = copy
            packet.time_base = tick
            packet.pts = clock.to_ticks(pts)
            packet.dts = None if dts is None else clock.to_ticks(dts)
            out.mux(packet)


def read_copied(path: str | Path, info: VideoInfo, lead: int, count: int, threads: int = 0) -> Iterator[Frame]:
    """The ``count`` frames after the first ``lead`` of a copied chunk, as the source's decoding gives them
    (``info``: the source's facts); the ``lead`` frames are decoded but not converted."""
    path = Path(path)
    try:
        with open_segment(path, threads) as (container, stream, clock):
            seen = 0
            for frame in container.decode(stream):
                if frame.pts is None or frame.is_corrupt:
                    raise CodecError(f"{path}: a corrupt copied frame after {seen} frames")
                pts = clock.pts_of(frame, stream, path)
                if pts < clock.origin:
                    continue  # leading pictures the copy does not hold the references of
                if seen >= lead:
                    rgb = to_rgb(frame, info.width, info.height, info.out_width, info.out_height, info.orientation,
                                 info.colour)
                    yield Frame(rgb, pts)
                seen += 1
                if seen == lead + count:
                    return
    except (av.error.FFmpegError, IndexError) as err:
        raise CodecError(f"{path}: cannot read copied chunk: {err}") from None
    raise CodecError(f"{path}: copied chunk ends after {max(seen - lead, 0)} of {count} frames")
