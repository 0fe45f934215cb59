"""farm submit --preview: the first seconds at a small size (farm/preview.py)."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from farm import preview, video
from tests.clips import make_clip


@pytest.fixture(autouse=True)
def preview_cache(tmp_path, monkeypatch):
    folder = tmp_path / "previews"
    monkeypatch.setattr(preview, "cache_dir", lambda: folder)
    return folder


@pytest.mark.parametrize("size, expected", [((1920, 1080), (640, 360)), ((640, 272), (640, 272)),
                                            ((3840, 2160), (640, 360)), ((1081, 721), (540, 360)), ((33, 17), (34, 18))])
def test_preview_size_short_side_360_never_enlarged_even(size, expected):
    assert preview.preview_size(*size) == expected


def test_preview_clip_is_the_first_seconds_at_most_the_render_side_and_made_once(tmp_path):
    clip = make_clip(tmp_path / "long.mp4", frames=40, width=96, height=64, fps=Fraction(5))
    info = video.probe(clip)
    out = preview.make_preview(clip, info, seconds=2.0, side=32)
    facts = video.probe(out)
    assert out.name == "long_preview.mp4"
    assert (facts.width, facts.height) == (48, 32) and facts.frames == 10
    stamp = out.stat().st_mtime_ns
    assert preview.make_preview(clip, info, seconds=2.0, side=32) == out and out.stat().st_mtime_ns == stamp


def test_submit_preview_renders_the_preview(cli, tmp_path):
    clip = make_clip(tmp_path / "film.mp4", frames=12, width=96, height=64)
    result = cli("submit", clip, "--preview", "--no-gif", "--json")
    assert result.code == 0, result.stderr
    output = json.loads(result.stdout)["output"]
    assert output.endswith("film_preview_vangogh.mp4")
    assert video.probe(output).frames == 12  # a clip shorter than the preview's seconds is all there


def test_the_preview_is_the_full_render_shown_small(cli, tmp_path, monkeypatch):
    """A clip larger than the preview's side is painted as the full render paints it, temporal pass
    included, and only then brought down: the preview's frames are the full render's, shrunk."""
    import cv2
    import numpy as np

    monkeypatch.setattr(preview, "PREVIEW_SIDE", 32)
    clip = make_clip(tmp_path / "film.mp4", frames=10, width=96, height=64)
    common = ["--no-gif", "--json", "--crf", "0", "--frames-dir"]
    shown = cli("submit", clip, "--preview", *common, tmp_path / "preview", "--output", tmp_path / "p.mp4")
    assert shown.code == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert (report["width"], report["height"]) == (48, 32) == video.probe(tmp_path / "p.mp4").display_size
    painted = preview.make_preview(clip, video.probe(clip))  # the clip the preview painted, from the cache
    full = cli("submit", painted, *common, tmp_path / "full", "--output", tmp_path / "f.mp4")
    assert full.code == 0, full.stderr
    small, big = (sorted((tmp_path / kind).glob("*.png")) for kind in ("preview", "full"))
    assert len(small) == len(big) == 10
    luma = lambda image: cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)  # noqa: E731
    for a, b in zip(small, big):
        mine = luma(cv2.imread(str(a)))
        theirs = luma(cv2.resize(cv2.imread(str(b)), (48, 32), interpolation=cv2.INTER_AREA))
        assert np.abs(mine - theirs).mean() < 1.0  # the same frames (0.4: two encodes), not two paintings


def test_an_output_side_shrinks_the_written_frames_and_is_part_of_the_jobs_identity():
    from farm.config import RenderOptions
    from farm.styles.resolve import named_style
    from farm.worker import output_size

    style = named_style("vangogh", 1.0, lambda: None)
    full, shown = RenderOptions(style=style), RenderOptions(style=style, output_side=360)
    assert full.model_dump() != shown.model_dump()
    assert output_size(1920, 1080, full) == (1920, 1080)
    assert output_size(1920, 1080, shown) == (640, 360)
    assert output_size(1082, 722, shown) == (540, 360)
    assert output_size(640, 272, shown) == (640, 272)  # never enlarged


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (1081, 721), (640, 272), (400, 300), (33, 17)])
@pytest.mark.parametrize("stroke", [1.0, 2.0])
def test_the_preview_is_painted_at_the_full_renders_working_size(size, stroke):
    """The preview's strokes are the full render's: both are painted with the same working short side."""
    from farm.styles.scale import working_size

    def side(width, height):
        return min(working_size(height, width, preview.PREVIEW_SIDE, stroke))

    assert side(*preview.preview_size(*size, preview.PREVIEW_RENDER_SIDE)) == side(*size)
