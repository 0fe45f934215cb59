"""`farm eval flicker --plot / --side-by-side`: the series behind the plot, the PNG, the comparison video."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from farm.config import JobSpec, RenderOptions
from farm.flickerview import Marks, draw_plot, marks_of, plot_series
from farm.jobs import find_render
from farm.metrics import FlickerSeries
from farm.plan import Layout, Manifest, plan_chunks
from farm.store import LocalStore
from tests.test_job_store import VANGOGH
from tests.motion import hard_cut
from tests.test_cuts import write_video


def series(frames: int = 10) -> FlickerSeries:
    render = [0.001 * (1 + t) for t in range(frames - 1)]
    return FlickerSeries(frames=frames, render=render, input=[0.0001] * (frames - 1), per_frame=[0.01] * (frames - 1))


def test_seams_and_cuts_land_in_the_plots_data():
    data = plot_series(series(10), Marks(seams=[4, 8, 0, 12, 4], cuts=[6]))
    assert data.frames == list(range(1, 10))  # frame t shows the pair (t-1, t)
    assert data.seams == [4, 8] and data.cuts == [6]  # out of the video, or repeated: dropped
    at = dict(zip(data.frames, data.render))
    assert at[6] is None and data.per_frame[5] is None and data.input[5] is None  # the pair across the cut
    assert at[4] == pytest.approx(0.004) and at[7] == pytest.approx(0.007)
    seam_mean = (0.004 + 0.008) / 2
    interior = [0.001 * t for t in (1, 2, 3, 5, 7, 9)]
    assert data.seam_over_interior == pytest.approx(seam_mean / (sum(interior) / len(interior)))
    bare = plot_series(FlickerSeries(frames=3, render=[0.1, 0.2], input=[0.0, 0.0]), Marks())
    assert bare.per_frame is None and bare.seam_over_interior is None and bare.seams == bare.cuts == []


def test_the_plot_is_an_image_of_sensible_size(tmp_path):
    data = plot_series(series(30), Marks(seams=[10, 20], cuts=[15]))
    path = draw_plot(data, tmp_path / "flicker.png", "a title")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1000, 400)
        assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10  # something was drawn
    assert [p.name for p in tmp_path.iterdir()] == ["flicker.png"]  # no temp file left beside it


def put_manifest(store: LocalStore, job_id: str, output: str, created: str, cuts: list[int]) -> None:
    spec = JobSpec(job_id=job_id, source="/clips/a.mp4", render=RenderOptions(style=VANGOGH), store=store.uri,
                   output=output)
    manifest = Manifest(spec=spec, source_info={"frames": 40}, chunks=plan_chunks(40, 16, 12), cuts=cuts,
                        model_id="m", created=created)
    store.put_bytes(Layout(job_id).manifest, manifest.model_dump_json().encode())


def test_a_render_is_found_by_its_path_and_its_manifest_gives_the_marks(tmp_path):
    store = LocalStore(tmp_path / "store")
    put_manifest(store, "old", "/out/a.mp4", "2026-11-01T00:00:00+00:00", [])
    put_manifest(store, "new", "/out/a.mp4", "2026-12-01T00:00:00+00:00", [20])
    put_manifest(store, "other", "/out/b.mp4", "2026-12-02T00:00:00+00:00", [])
    found = find_render(store, "/out/a.mp4")
    assert found.spec.job_id == "new"
    assert marks_of(found) == Marks(seams=[16, 32], cuts=[20], job_id="new")
    assert find_render(store, "/out/c.mp4") is None
    assert find_render(LocalStore(tmp_path / "empty"), "/out/a.mp4") is None


@pytest.fixture
def two_shots(tmp_path) -> Path:
    return write_video(tmp_path / "two.mp4", hard_cut(frames=22, width=96, height=64, cut=15).all_frames())


def test_without_a_job_cuts_are_found_on_the_input_and_seams_are_as_given(cli, two_shots, tmp_path, private_store):
    copy = shutil.copy(two_shots, tmp_path / "copy.mp4")
    result = cli("eval", "flicker", two_shots, copy, "--seams", "5,40", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["job_id"] is None and report["cuts"] == [15] and report["seams"] == [5]


def test_a_renders_job_gives_seams_cuts_plot_and_side_by_side(cli, two_shots, tmp_path, private_store):
    # strokes 4x as large: the network paints (and the per-frame reference, in the job's style, repaints)
    # every frame at a quarter of the working size, which keeps the test short
    made = cli("submit", two_shots, "--job-id", "shots", "--chunk-frames", "8", "--stroke-scale", "4", "--no-gif",
               "--json")
    assert made.code == 0, made.stderr
    output = json.loads(made.stdout)["output"]
    result = cli("eval", "flicker", two_shots, output, "--plot", "f.png", "--side-by-side", "cmp.mp4", "--json")
    assert result.code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["job_id"] == "shots" and report["seams"] == [8, 16] and report["cuts"] == [15]  # boundaries do not snap to cuts
    assert report["ratio"] < 1 and report["lowfreq_deviation"] is not None  # per-frame in the job's style
    with Image.open(tmp_path / "f.png") as image:
        assert image.size == (1000, 400)
    with av.open(str(tmp_path / "cmp.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 3 * 96, 64)
        assert sum(1 for _ in container.decode(stream)) == 22


def test_bad_views_exit_2_with_one_line(cli, two_shots, tmp_path, private_store, monkeypatch):
    copy = shutil.copy(two_shots, tmp_path / "copy.mp4")
    cases = [("--side-by-side", "cmp.avi"), ("--side-by-side", "cmp.mp4"),  # no style, no job: no per-frame
             ("--side-by-side", str(copy)), ("--plot", "f.jpg"), ("--seams", "a,b"), ("--job", "nope")]
    for option, value in cases:
        result = cli("eval", "flicker", two_shots, copy, option, value)
        assert result.code == 2 and "Traceback" not in result.stderr, (option, value, result.stderr)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if farm[plot] were not installed
    result = cli("eval", "flicker", two_shots, copy, "--plot", "f.png")
    assert result.code == 2
    assert result.stderr.strip() == "farm: error: --plot needs matplotlib: pip install 'farm[plot]'"
    assert not (tmp_path / "f.png").exists() and not (tmp_path / "cmp.mp4").exists()
