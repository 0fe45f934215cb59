"""Everything the final video takes from the source besides the picture: every audio and subtitle
track (with its language and title), the chapters and the container's metadata.

Audio is stream-copied when the output container carries its codec (MP4: the
codecs its players handle), else re-encoded to AAC; text subtitles are copied
when the container holds their codec, else converted (mov_text for MP4/MOV,
subrip for Matroska); image subtitles (DVD, Blu-ray PGS, DVB) are copied into
Matroska and dropped from MP4/MOV with a note, since MP4 players have no bitmap
subtitle track. ``offset`` moves every timestamp
(seconds, output = source + offset) and ``window`` keeps only the source's
[start, end) seconds, so a trim cuts the sound and the subtitles in sync.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import av.subtitles.codeccontext

log = logging.getLogger(__name__)

# Audio codecs that MP4 players handle; anything else (PCM, Vorbis, ...) is re-encoded to AAC.
# FFmpeg would mux more (its MP4 PCM and Vorbis mappings are new or non-standard).
_MP4_AUDIO = {"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"}
_MP4_FAMILY = {"mp4", "mov", "ipod", "3gp"}
_TEXT_SUBTITLES = {"subrip", "srt", "ass", "ssa", "webvtt", "mov_text", "text", "microdvd", "sami"}
# track tags a player shows; everything else in a stream's metadata belongs to the muxer that wrote it
_TRACK_TAGS = ("language", "title", "handler_name")
# container tags owned by the muxer, not the user's
_MUXER_TAGS = {"encoder", "major_brand", "minor_version", "compatible_brands", "duration"}


class Window(NamedTuple):
    """The source's seconds the output keeps, and where they land: output time = source time + offset."""

    offset: Fraction = Fraction(0)
    start: Fraction | None = None
    end: Fraction | None = None

    def keeps(self, seconds: Fraction, duration: Fraction = Fraction(0)) -> bool:
        """True for a packet overlapping [start, end)."""
        return (self.start is None or seconds + duration > self.start) and (self.end is None or seconds < self.end)


def carry_tracks(stack: ExitStack, source: Path, out: av.container.OutputContainer,
                 window: Window = Window()) -> tuple[list[Iterator[av.Packet]], list[str]]:
    """Add the source's audio and subtitle tracks, chapters and tags to ``out`` (before its header is
    written); returns one packet iterator per track, for the caller to interleave, and notes for the user."""
    notes: list[str] = []
    with av.open(str(source)) as container:
        _carry_tags(container, out)
        _carry_chapters(container, out, window)
        kinds = [(s.index, s.type) for s in container.streams if s.type in ("audio", "subtitle")]
    packets = []
    for index, kind in kinds:
        container = stack.enter_context(av.open(str(source)))
        stream = container.streams[index]
        track = _audio(container, stream, out, window) if kind == "audio" else _subtitle(container, stream, out,
                                                                                         window, notes)
        if track is not None:
            packets.append(track)
    return packets, notes


def _carry_tags(container: av.container.InputContainer, out: av.container.OutputContainer) -> None:
    for key, value in container.metadata.items():
        if key.lower() not in _MUXER_TAGS:
            out.metadata[key.lower() if key.isupper() else key] = value  # Matroska's TITLE → MP4's title


def _carry_chapters(container: av.container.InputContainer, out: av.container.OutputContainer,
                    window: Window) -> None:
    chapters = []
    for chapter in container.chapters():
        tb = Fraction(chapter["time_base"])
        start, end = chapter["start"] * tb, chapter["end"] * tb
        if not window.keeps(start, end - start):
            continue
        start = max(start, window.start) if window.start is not None else start
        end = min(end, window.end) if window.end is not None else end
        chapters.append({**chapter, "id": len(chapters) + 1, "time_base": Fraction(1, 1000),
                         "start": round((start + window.offset) * 1000), "end": round((end + window.offset) * 1000)})
    if chapters:
        out.set_chapters(chapters)


def _tag(target: av.stream.Stream, stream: av.stream.Stream) -> None:
    for key in _TRACK_TAGS:
        if key in stream.metadata:
            target.metadata[key] = stream.metadata[key]


# --------------------------------------------------------------------------- audio


def _audio(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
           out: av.container.OutputContainer, window: Window) -> Iterator[av.Packet]:
    if _carries(out, stream.codec_context.name, _MP4_AUDIO):
        target = out.add_stream_from_template(stream)
        _tag(target, stream)
        return _copied(container, stream, target, window)
    log.warning("%s: audio codec %s cannot go in %s; re-encoding it to AAC", container.name,
                stream.codec_context.name, out.format.name)
    return _reencoded(container, stream, out, window)


def _carries(out: av.container.OutputContainer, codec: str, mp4_set: set[str]) -> bool:
    """Whether ``out`` takes ``codec`` as it is: for MP4, only what its players handle."""
    if out.format.name.split(",")[0] in _MP4_FAMILY:
        return codec in mp4_set
    return codec in out.supported_codecs


def _copied(container: av.container.InputContainer, stream: av.stream.Stream, target: av.stream.Stream,
            window: Window) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if not packet.size or packet.dts is None:
            continue
        at = (packet.pts if packet.pts is not None else packet.dts) * packet.time_base
        if not window.keeps(at, (packet.duration or 0) * packet.time_base):
            continue
        offset = round(window.offset / packet.time_base)
        packet.dts += offset
        if packet.pts is not None:
            packet.pts += offset
        packet.stream = target
        yield packet


def _reencoded(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
               out: av.container.OutputContainer, window: Window) -> Iterator[av.Packet]:
    """Decode and encode to AAC at the source's rate, starting at the source's first audio pts."""
    rate = stream.codec_context.sample_rate
    target = out.add_stream("aac", rate=rate, layout=_aac_layout(stream.codec_context.layout.nb_channels))
    target.time_base = Fraction(1, rate)
    _tag(target, stream)
    return _encoded(container, stream, target, window)


def _encoded(container: av.container.InputContainer, stream: av.audio.stream.AudioStream,
             target: av.audio.stream.AudioStream, window: Window) -> Iterator[av.Packet]:
    rate = target.codec_context.sample_rate
    for frame in container.decode(stream):
        if frame.pts is not None:
            at = frame.pts * frame.time_base
            if not window.keeps(at, Fraction(frame.samples, rate)):
                continue
            frame.pts = round((at + window.offset) * rate)
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


# --------------------------------------------------------------------------- subtitles


def _subtitle(container: av.container.InputContainer, stream: av.stream.Stream, out: av.container.OutputContainer,
              window: Window, notes: list[str]) -> Iterator[av.Packet] | None:
    codec = stream.codec_context.name
    if _carries(out, codec, {"mov_text"}):
        target = out.add_stream_from_template(stream)
        _tag(target, stream)
        return _copied(container, stream, target, window)
    text = next((c for c in ("mov_text", "subrip") if c in out.supported_codecs), None)
    if codec in _TEXT_SUBTITLES and text:
        return _converted(container, stream, out, window, text)
    notes.append(f"subtitle track {stream.index} ({codec}, {_describe(stream)}) is a picture format "
                 f"{out.format.name.split(',')[0].upper()} cannot carry; it was left out")
    return None


def _describe(stream: av.stream.Stream) -> str:
    return stream.metadata.get("language", "no language") + (f", {stream.metadata['title']!r}"
                                                            if "title" in stream.metadata else "")


def _converted(container: av.container.InputContainer, stream: av.stream.Stream,
               out: av.container.OutputContainer, window: Window, codec: str) -> Iterator[av.Packet]:
    """A text track re-encoded as ``codec`` (mov_text for MP4/MOV, subrip for Matroska): FFmpeg's decoder
    turns it into ASS events, the encoder writes them back (styling the target cannot show is dropped,
    the words are kept)."""
    decoder = stream.codec_context
    decoder.open()  # its ASS header is what the encoder needs before the output's header is written
    target = out.add_stream(codec)
    target.codec_context.subtitle_header = decoder.subtitle_header
    target.codec_context.time_base = stream.time_base or Fraction(1, 1000)
    _tag(target, stream)
    return _reencoded_text(container, stream, target, window)


def _reencoded_text(container: av.container.InputContainer, stream: av.stream.Stream, target: av.stream.Stream,
                    window: Window) -> Iterator[av.Packet]:
    for packet in container.demux(stream):
        if not packet.size or packet.pts is None:
            continue
        at, duration = packet.pts * packet.time_base, (packet.duration or 0) * packet.time_base
        subtitles = stream.codec_context.decode2(packet)
        if subtitles is None or not window.keeps(at, duration):
            continue
        encoded = target.codec_context.encode_subtitle(subtitles)
        encoded.pts = encoded.dts = round((at + window.offset) / packet.time_base)
        encoded.duration, encoded.time_base, encoded.stream = packet.duration, packet.time_base, target
        yield encoded
