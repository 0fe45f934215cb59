"""The painting grid follows the picture (farm/styles/grid.py): whole-pixel shifts, the phase kept modulo the
network's period, the upsampling reading a moved painting back, a pan's strokes staying on what they paint
through both painters, and chunks that start their grids where the chunk before restarts its own."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.config import TemporalOptions
from farm.plan import plan_chunks
from farm.styles import grid, scale
from farm.styles.catalog import CATALOG_FILE, config_dir, load_catalog
from farm.styles.model import Stylizer
from farm.worker import split_at_cuts
from tests.motion import pan, texture


@pytest.fixture(scope="module")
def vangogh():
    return load_catalog(config_dir() / CATALOG_FILE).resolve("vangogh")


def test_shifted_moves_by_whole_pixels_and_reflects_what_comes_in():
    x = torch.arange(30, dtype=torch.float32).reshape(1, 1, 5, 6)
    out = grid.shifted(x, (2, -1))  # content moves 2 right, 1 up
    assert torch.equal(out[..., :4, 2:], x[..., 1:, :4])
    assert torch.equal(out[..., :4, 0], x[..., 1:, 2]) and torch.equal(out[..., 4, 2:], x[..., 3, :4])  # reflected
    assert grid.shifted(x, grid.NO_SHIFT) is x
    assert torch.equal(grid.shifted(grid.shifted(x, (2, 1)), (-2, -1))[..., 1:4, 2:4], x[..., 1:4, 2:4])
    assert grid.shifted(x, (40, -40)).shape == x.shape  # cut to the frame
    assert grid.shifted_each(x, [grid.NO_SHIFT]) is x


def test_the_phase_follows_the_drift_modulo_the_networks_period():
    assert grid.period((1080, 1920), (360, 640)) == (12.0, 12.0)
    assert grid.period((360, 640), (360, 640)) == (4.0, 4.0)
    phase, periods = grid.GridPhase(), (12.0, 12.0)  # painted at a third of the size: the whole drift
    assert phase.follow(None, periods) == (0, 0)  # the first frame: painted where it is
    assert phase.follow((2.4, -0.6), periods) == (2, -1)
    assert phase.follow((2.4, -0.6), periods) == (5, -1)
    assert phase.follow((2.4, 0.0), periods) == (-5, -1)  # 7.2 wraps to −4.8: a whole period paints the same
    assert phase.follow(None, periods) == (-5, -1)  # no flow: the grid stays
    assert phase.follow((0.7, 0.6), periods) == (-4, -1)  # a slow drift is followed too
    phase.reset()
    assert phase.follow((1.0, 1.0), periods) == (0, 0)  # started over: painted where it is, as a first frame
    assert phase.follow((1.0, 1.0), periods) == (1, 1)


def test_on_a_coarse_grid_only_whole_pixels_of_a_frames_motion_are_followed():
    phase, periods = grid.GridPhase(), (8.0, 8.0)  # painted at half the size
    phase.follow(None, periods)
    assert phase.follow((0.6, -0.9), periods) == (0, 0)  # slower than a pixel a frame: the grid stays
    assert phase.follow((0.6, -0.9), periods) == (0, 0)
    assert phase.follow((2.6, -1.2), periods) == (3, -1)
    assert phase.follow((2.6, -1.2), periods) == (-2, -2)  # 6 wraps to −2
    still = grid.GridPhase()  # painted at the frame's own size: the grid stays put
    assert [still.follow(m, (4.0, 4.0)) for m in (None, (5.0, 2.0), (3.0, 0.0))] == [(0, 0)] * 3


def test_the_drift_is_the_flows_median():
    flow = torch.zeros(2, 2, 64, 64)
    flow[0, 0], flow[0, 1] = 3.0, -1.5
    flow[0, :, :20, :20] = 40.0  # a small fast object does not move the grid
    assert grid.drifts(flow) == [(3.0, -1.5), (0.0, 0.0)]


def test_a_moved_painting_is_read_back_at_the_same_interpolation_positions():
    painting = torch.rand(1, 4, 12, 16)
    up = scale.resize(painting, (36, 48))
    moved = scale.resize_shifted(painting, (36, 48), [(5, -2)])
    torch.testing.assert_close(moved[..., 2:, :43], up[..., :34, 5:], atol=1e-5, rtol=0)


def painted(stylizer, frames: np.ndarray, flow: str, regrid=(), frozen: bool = False,
            untracked: bool = False) -> np.ndarray:
    """A painter's output for ``frames``, one call per frame, its grid started over at ``regrid`` (or kept
    still: ``frozen``, the painting as farm made it before the grid moved; ``untracked``: without the light's
    track, farm/styles/light.py)."""
    from farm.paint import painter_for
    from farm.pipeline import Timer

    painter = painter_for(stylizer, TemporalOptions(flow=flow), Timer())
    if frozen:
        painter.grid.follow = lambda motion, periods: grid.NO_SHIFT
    if untracked:
        painter.light.lights = lambda frames, flows, work: None
    out = []
    for t, frame in enumerate(frames):
        if t in regrid:
            painter.regrid()
        out.append(painter(frame[None])[0])
    return np.stack(out)


def flicker(frames: np.ndarray, clip) -> float:
    from farm.metrics import masked_sq_error
    from farm.temporal import warp

    f = frames.astype(np.float32) / 255.0
    return float(np.mean([masked_sq_error(f[t], warp(f[t - 1], flow), mask)
                          for t, (flow, mask) in enumerate(clip.all_flows(), start=1)]))


@pytest.mark.parametrize("flow", ["dis", "torch"])  # HostPainter and DevicePainter
@pytest.mark.parametrize("side", [64, 128])  # painted at a quarter of the size (the whole drift), at half of it
def test_a_pans_strokes_stay_on_what_they_paint(vangogh, flow, side):
    """A camera pan (1.5-5.7 px a frame, exact motion): with the grid following the picture the render
    flickers less than on a still grid, where the network redraws its strokes for every move off its period
    (measured 0.33-0.35x at a quarter of the size, 0.53-0.57x at half)."""
    clip = pan(frames=6, width=384, height=256, speed=3.0)
    frames = np.stack(clip.all_frames())
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=side)
    moving, still = painted(stylizer, frames, flow), painted(stylizer, frames, flow, frozen=True)
    assert flicker(moving, clip) < 0.75 * flicker(still, clip)
    np.testing.assert_array_equal(moving[0], still[0])  # the first frame is painted where it is


@pytest.mark.parametrize("flow", ["dis", "torch"])
def test_a_chunk_paints_its_warmup_on_the_grid_of_the_chunk_before(vangogh, flow):
    """A chunk's worker starts its grid at its first warm-up frame, where the chunk before restarts its own
    (Chunk.regrid): past the warm-up (26 frames, farm's at the default strength) the two renders agree within a
    level; without the restart they do not."""
    clip = pan(frames=38, width=96, height=64, speed=2.0)
    frames = np.stack(clip.all_frames())
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=32)
    origin, warmup = 8, 26  # the next chunk's first warm-up frame; it emits from 34 on
    chunk = painted(stylizer, frames[origin:], flow)[warmup:]
    before = painted(stylizer, frames, flow, regrid=[origin])[origin + warmup:]
    unaware = painted(stylizer, frames, flow)[origin + warmup:]
    assert np.abs(chunk.astype(int) - before).mean() < 1.0
    assert np.abs(chunk.astype(int) - unaware).mean() > 2.0


def test_each_chunk_restarts_its_grid_where_a_later_chunk_starts_painting():
    for frames, length, warmup in [(100, 30, 12), (100, 10, 26), (61, None, 26)]:
        chunks = plan_chunks(frames, length, warmup, workers=2)
        origins = {c.first for c in chunks}
        for c in chunks:
            assert c.regrid == sorted(o for o in origins if c.first < o < c.end)
    assert plan_chunks(100, 30, 12)[0].regrid == [18]


def test_a_batch_is_split_before_every_frame_the_painter_must_hear_of():
    assert split_at_cuts(list(range(10, 16)), 10, [14, 12, 14]) == [[10, 11], [12, 13], [14, 15]]


def test_a_still_textured_frame_is_painted_as_before(vangogh):
    """Nothing moves: the grid stays, and the painting is the one farm made before the grid moved."""
    frame = (texture(64, 96, 3) * 255).astype(np.uint8)
    frames = np.stack([frame] * 3)
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=32)
    np.testing.assert_array_equal(painted(stylizer, frames, "dis"), painted(stylizer, frames, "dis", frozen=True))
