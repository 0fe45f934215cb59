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


def test_preview_is_the_first_seconds_small_and_made_once(tmp_path):
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


@pytest.mark.parametrize("size", [(1920, 1080), (3840, 2160), (1081, 721), (640, 272), (400, 300), (33, 17)])
@pytest.mark.parametrize("stroke", [1.0, 2.0])
def test_the_preview_is_painted_at_the_full_renders_working_size(size, stroke):
    """The preview's strokes are the full render's: both are painted with the same working short side."""
    from farm.styles.scale import working_size

    def side(width, height):
        return min(working_size(height, width, preview.PREVIEW_SIDE, stroke))

    assert side(*preview.preview_size(*size)) == side(*size)
