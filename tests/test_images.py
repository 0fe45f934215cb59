"""Photo sequences as a source (farm/video/images.py), on photo folders generated here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from farm import video
from farm.errors import InputError
from farm.video import images
from tests.clips import pattern


def photo(path: Path, index: int, size: tuple[int, int] = (64, 48), orientation: int | None = None) -> np.ndarray:
    """Write frame ``index`` of the test pattern as a photo (format from the suffix); returns its pixels."""
    rgb = pattern(index, *size)
    image = Image.fromarray(rgb)
    exif = image.getexif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, exif=exif) if orientation else image.save(path)
    return rgb


@pytest.fixture
def timelapse(tmp_path) -> tuple[Path, list[np.ndarray]]:
    """IMG_1 .. IMG_12 as PNGs (lossless, so frames can be compared exactly), written out of order."""
    folder = tmp_path / "TimeLapse"
    folder.mkdir()
    pixels = {i: photo(folder / f"IMG_{i}.png", i) for i in (10, 2, 1, 12, 3, 11, 4, 5, 6, 7, 8, 9)}
    (folder / "notes.txt").write_text("not a photo")
    return folder, [pixels[i] for i in sorted(pixels)]


def test_folder_is_read_in_natural_order_at_the_given_rate(timelapse):
    folder, expected = timelapse
    info = images.probe_sequence(folder, fps=12)
    assert (info.frames, info.fps, info.duration, info.width, info.height) == (12, 12.0, 1.0, 64, 48)
    assert info.photos[:3] == ("IMG_1.png", "IMG_2.png", "IMG_3.png") and info.photos[-1] == "IMG_12.png"
    frames = list(video.iter_frames(folder, info))
    assert [f.pts for f in frames] == list(range(12))
    assert all(np.array_equal(f.rgb, want) for f, want in zip(frames, expected, strict=True))


def test_a_glob_picks_its_photos_only(timelapse):
    folder, expected = timelapse
    info = images.probe_sequence(f"{folder}/IMG_1*.png")
    assert info.photos == ("IMG_1.png", "IMG_10.png", "IMG_11.png", "IMG_12.png")


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".tif", ".webp"])
def test_every_photo_format_reads(tmp_path, suffix):
    want = photo(tmp_path / f"a{suffix}", 0)
    frame = next(video.iter_frames(tmp_path, images.probe_sequence(tmp_path)))
    tolerance = 0 if suffix in (".png", ".tif") else 40  # JPEG and lossy WebP change the pattern's sharp edges
    assert np.abs(frame.rgb.astype(int) - want).mean() <= tolerance / 4


@pytest.mark.parametrize("orientation, show", [(3, lambda a: np.rot90(a, 2)), (6, lambda a: np.rot90(a, -1)),
                                               (8, lambda a: np.rot90(a, 1)), (2, lambda a: a[:, ::-1])])
def test_exif_orientation_is_honoured(tmp_path, orientation, show):
    stored = photo(tmp_path / "p.png", 0, orientation=orientation)
    info = images.probe_sequence(tmp_path)
    assert (info.height, info.width) == show(stored).shape[:2]
    assert np.array_equal(next(video.iter_frames(tmp_path, info)).rgb, show(stored))


def test_mixed_sizes_are_fitted_to_the_first_with_a_note(tmp_path):
    photo(tmp_path / "1.png", 0, size=(64, 48))
    photo(tmp_path / "2.png", 1, size=(32, 48))
    info = images.probe_sequence(tmp_path)
    assert len(info.notes) == 1 and "1 of 2 photos differ in size" in info.notes[0]
    second = list(video.iter_frames(tmp_path, info))[1].rgb
    assert second.shape == (48, 64, 3) and not second[:, :8].any() and not second[:, -8:].any()  # black borders


def test_long_side_is_limited_unless_full_size_is_asked(tmp_path):
    photo(tmp_path / "big.png", 0, size=(200, 100))
    assert (images.probe_sequence(tmp_path, long_side=64).width, images.probe_sequence(tmp_path,
                                                                                     long_side=64).height) == (64, 32)
    assert images.probe_sequence(tmp_path, long_side=None).width == 200


def test_a_trim_picks_photos_by_time(timelapse):
    folder, _ = timelapse
    info = images.probe_sequence(folder, fps=4, start=0.5, duration=1.0)
    assert info.photos == ("IMG_3.png", "IMG_4.png", "IMG_5.png", "IMG_6.png")


@pytest.mark.parametrize("make, words", [
    (lambda p: p, "no photos in the folder"),
    (lambda p: f"{p}/*.jpg", "matches no file"),
    (lambda p: (p / "a.png").write_bytes(b"broken") and p, "not a readable photo"),
])
def test_bad_sequences_are_input_errors(tmp_path, make, words):
    with pytest.raises(InputError, match=words):
        images.probe_sequence(make(tmp_path))


def test_natural_sort_reads_numbers_as_numbers():
    names = ["IMG_10.jpg", "IMG_2.jpg", "img_1.jpg", "IMG_100.jpg"]
    assert sorted(names, key=images.natural_key) == ["img_1.jpg", "IMG_2.jpg", "IMG_10.jpg", "IMG_100.jpg"]


# ---------------------------------------------------------------- frames out


def test_frames_are_numbered_pngs_that_sort_in_frame_order_and_match_the_video(tmp_path):
    from tests.clips import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=12, width=64, height=48)
    count = images.write_frames(clip, tmp_path / "frames")
    names = sorted(p.name for p in (tmp_path / "frames").iterdir())
    assert count == 12 and names[0] == "frame_000001.png" and names[-1] == "frame_000012.png"
    for name, frame in zip(names, video.read_all_frames(clip), strict=True):
        assert np.array_equal(np.asarray(Image.open(tmp_path / "frames" / name)), frame.rgb)
    assert images.frame_name(9, 1_234_567) == "frame_0000010.png"  # wider than 6 digits when the film is


def test_frames_never_go_into_a_folder_with_files(tmp_path):
    from tests.clips import make_clip

    clip = make_clip(tmp_path / "c.mp4", frames=2, width=32, height=32)
    (tmp_path / "frames").mkdir()
    (tmp_path / "frames" / "mine.png").write_bytes(b"x")
    with pytest.raises(InputError, match="new or empty"):
        images.write_frames(clip, tmp_path / "frames")
    assert [p.name for p in (tmp_path / "frames").iterdir()] == ["mine.png"]
