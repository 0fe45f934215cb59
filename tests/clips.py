"""Synthetic clips for tests: small, generated on the fly, never committed.

The picture is a textured pattern that drifts and a disc that crosses it, so
optical flow has texture to lock on to and stylization has edges to paint.
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_RATE = 48000
_VFR_STEPS_MS = (33, 50, 42, 67, 21)  # irregular frame durations, repeated
_SWS = {1: "ITU709", 6: "ITU601", 9: "BT2020"}  # AVCOL_SPC → swscale's matrix names


def pattern(index: int, width: int, height: int) -> np.ndarray:
    """Frame ``index`` of the moving test pattern as an (H, W, 3) uint8 array."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    shift = 1.5 * index  # pixels per frame: small enough for flow to follow
    r = 128 + 90 * np.sin((x - shift) / 4.0) * np.cos(y / 6.0)
    g = 128 + 90 * np.sin((x + y - shift) / 7.0)
    b = np.where(((x - shift) // 8 + y // 8) % 2 == 0, 200.0, 60.0)
    cx, cy = (width * 0.2 + 2.5 * index) % width, height / 2
    disc = (x - cx) ** 2 + (y - cy) ** 2 < (min(width, height) / 5) ** 2
    rgb = np.stack([r, g, b], axis=-1)
    rgb[disc] = (250, 240, 30)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def frame_pts(frames: int, fps: Fraction, time_base: Fraction, vfr: bool) -> list[int]:
    """Presentation timestamps in ``time_base``: a steady 1/fps, or irregular steps for VFR."""
    if vfr:
        ms = [0]
        for i in range(frames - 1):
            ms.append(ms[-1] + _VFR_STEPS_MS[i % len(_VFR_STEPS_MS)])
        return [int(Fraction(m, 1000) / time_base) for m in ms]
    return [int(Fraction(i) / fps / time_base) for i in range(frames)]


def _pix_fmt(codec: str, width: int, height: int) -> str:
    """A pixel format the codec accepts at this size (4:2:0 needs even sizes)."""
    if codec == "libx264rgb":
        return "rgb24"
    if codec == "libx264":
        return "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return av.codec.Codec(codec, "w").video_formats[0].name


def _add_audio(container: av.container.OutputContainer, seconds: float, codec: str = "aac") -> list[av.Packet]:
    """Encode a 440 Hz sine of ``seconds`` (AAC unless told); returns the packets to mux."""
    stream = container.add_stream(codec, rate=AUDIO_RATE, layout="mono")
    total = int(round(seconds * AUDIO_RATE))
    packets, size = [], 1024
    for start in range(0, total, size):
        n = min(size, total - start)
        t = (np.arange(start, start + n) / AUDIO_RATE).astype(np.float32)
        samples = (0.3 * np.sin(2 * math.pi * 440 * t)).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, start
        packets += stream.encode(frame)
    return packets + stream.encode(None)


def make_clip(path: Path, *, frames: int = 24, width: int = 96, height: int = 64, fps: Fraction = Fraction(24),
              audio: bool = False, vfr: bool = False, time_base: Fraction | None = None,
              codec: str = "libx264", faststart: bool = False, audio_codec: str = "aac", rotation: float = 0,
              hflip: bool = False, colour: tuple[int, int, int] | None = None, gop: int = 12) -> Path:
    """Write a synthetic clip to ``path`` (container from the suffix) and return the path.

    ``time_base`` defaults to 1/1000 for VFR and 1/fps otherwise; the muxer may
    refine it (MP4 raises small timescales), as real files do. The audio is a
    sine tone as long as the video. ``rotation`` (degrees counter-clockwise) and
    ``hflip`` go into the display matrix, as a phone writes it: the pixels stay
    as they are, a player turns them. ``colour`` (primaries, transfer, matrix:
    AVCOL_* numbers) tags the stream, and its matrix converts the pattern to YUV.
    """
    fps = Fraction(fps)
    time_base = time_base or (Fraction(1, 1000) if vfr else 1 / fps)
    pts = frame_pts(frames, fps, time_base, vfr)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = _add_video(container, codec, width, height, fps, time_base, gop)
        if rotation or hflip:
            stream.set_display_rotation(rotation, hflip=hflip)
        if colour:
            ctx = stream.codec_context
            ctx.color_primaries, ctx.color_trc, ctx.colorspace = colour
            ctx.color_range = 1
        audio_packets = _add_audio(container, float(pts[-1] * time_base + 1 / fps), audio_codec) if audio else []
        for i, p in enumerate(pts):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            if colour:
                frame = frame.reformat(format=stream.pix_fmt, dst_colorspace=_SWS[colour[2]], dst_color_range="MPEG")
            frame.pts, frame.time_base = p, time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        container.mux(audio_packets)
    return path


def _add_video(container: av.container.OutputContainer, codec: str, width: int, height: int, fps: Fraction,
               time_base: Fraction, gop: int = 12) -> av.video.stream.VideoStream:
    stream = container.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    stream.pix_fmt = _pix_fmt(codec, width, height)
    stream.time_base = stream.codec_context.time_base = time_base
    stream.options = {"g": str(gop)}  # a few keyframes, so seeking and cutting have something to find
    return stream


def make_audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An AAC file (use a .m4a or .mp4 suffix) with no video stream."""
    with av.open(str(path), "w") as container:
        container.mux(_add_audio(container, seconds))
    return path


def make_truncated(path: Path) -> Path:
    """A valid clip cut in half: the header (moved to the front) survives, half the frames do not."""
    full = path.with_name(path.stem + ".full" + path.suffix)
    make_clip(full, frames=48, width=96, height=64, faststart=True)
    data = full.read_bytes()
    full.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def make_not_a_video(path: Path) -> Path:
    """A text file wearing a video's name."""
    path.write_text("These are my notes, not a video.\n" * 20)
    return path


def make_zero_frames(path: Path) -> Path:
    """A Matroska file (use .mkv) that declares a video stream but holds only audio packets."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.mux(_add_audio(container, 0.5))
    return path


def make_film(path: Path, *, frames: int = 24, width: int = 64, height: int = 48) -> Path:
    """A Matroska film as a user has them: two tagged audio tracks, a text and a picture subtitle track,
    chapters, a title, a creation time and a location."""
    fps = Fraction(24)
    seconds = frames / fps
    with av.open(str(path), "w") as container:
        video = _add_video(container, "libx264", width, height, fps, 1 / fps)
        audio = []
        for language, title in (("eng", "Main"), ("fra", "Commentary")):
            packets = _add_audio(container, float(seconds))
            packets[0].stream.metadata.update({"language": language, "title": title})
            audio += packets
        text = container.add_mux_stream("subrip")
        text.metadata.update({"language": "deu", "title": "Deutsch"})
        picture = container.add_mux_stream("dvd_subtitle")
        picture.metadata["language"] = "spa"
        container.metadata.update({"title": "My film", "creation_time": "2024-05-01T10:00:00.000000Z",
                                   "location": "+48.8584+002.2945/"})
        half = int(seconds * 500)
        container.set_chapters([
            {"id": 1, "start": 0, "end": half, "time_base": Fraction(1, 1000), "metadata": {"title": "Opening"}},
            {"id": 2, "start": half, "end": 2 * half, "time_base": Fraction(1, 1000), "metadata": {"title": "End"}},
        ])
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(pattern(i, width, height), format="rgb24")
            frame.pts, frame.time_base = i, 1 / fps
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        container.mux(audio)
        for stream, data, start in ((text, b"Hallo Welt", 100), (picture, b"\x00" * 16, 200)):
            packet = av.Packet(data)
            packet.pts = packet.dts = start
            packet.duration, packet.time_base, packet.stream = 300, Fraction(1, 1000), stream
            container.mux(packet)
    return path
