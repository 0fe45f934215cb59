"""The same look at any output size: working sizes, guided upsampling, the stroke-length measure, and
--stroke-scale reaching the network (farm/styles/scale.py, farm/metrics.py, farm/styles/model.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm import metrics
from farm.config import RenderOptions, StyleChoice
from farm.styles import scale
from farm.styles.catalog import CATALOG_FILE, config_dir, load_catalog
from farm.styles.model import Stylizer
from tests.clips import pattern

REAL_CATALOG = config_dir() / CATALOG_FILE  # the repo's, read at import: tests run with small reference sides


def blurred_noise(sigma: float, size: int = 192, seed: int = 0) -> np.ndarray:
    """Grey texture whose grain is about ``sigma`` pixels long, as uint8 RGB."""
    import cv2

    noise = np.random.default_rng(seed).normal(size=(size, size)).astype(np.float32)
    grain = cv2.GaussianBlur(noise, (0, 0), sigma)
    grain = (grain - grain.mean()) / grain.std() * 40 + 128
    return np.repeat(np.clip(grain, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


# -- the measure ------------------------------------------------------------------------------------------------


def test_stroke_length_orders_known_textures():
    lengths = [metrics.stroke_length(blurred_noise(s), width=192) for s in (0.7, 1.5, 3.0)]
    assert lengths[0] < lengths[1] < lengths[2]


def test_stroke_length_is_relative_to_the_frame():
    """The same picture at twice the size has the same strokes relative to the frame."""
    import cv2

    small = blurred_noise(2.0)
    large = cv2.resize(small, (384, 384), interpolation=cv2.INTER_CUBIC)
    a, b = metrics.stroke_length(small, width=192), metrics.stroke_length(large, width=192)
    assert abs(a - b) / a < 0.15


def test_look_differences():
    flat, noisy = np.full((90, 160, 3), 128, np.uint8), blurred_noise(0.5, 160)[:90]
    assert metrics.lowpass_difference(flat, flat) == 0.0
    assert metrics.lowpass_difference(flat, np.full_like(flat, 138)) == pytest.approx(10.0, abs=0.01)
    assert metrics.laplacian_variance(noisy) > 10 * metrics.laplacian_variance(flat) + 1.0


# -- working sizes and upsampling -------------------------------------------------------------------------------


@pytest.mark.parametrize("height, width", [(5, 7), (33, 17), (272, 640), (360, 640), (1080, 1920), (2160, 3840)])
@pytest.mark.parametrize("stroke", [0.25, 1.0, 2.0, 4.0])
def test_working_short_side_is_the_reference_over_the_stroke_scale(height, width, stroke):
    h, w = scale.working_size(height, width, 360, stroke)
    assert min(h, w) == round(expected_side(min(height, width), 360 / stroke))
    assert abs(w / h - width / height) < 0.25 * max(1.0, width / height)


def expected_side(short: int, side: float) -> float:
    """A frame at least ``side`` is painted at ``side``; a smaller one at its own size, or at ``side`` / 1.33."""
    return side if short >= side else max(short, side / 1.33)


def test_a_smaller_frame_is_painted_at_its_own_size_or_with_strokes_at_most_a_third_larger():
    assert scale.working_size(300, 400, 360) == (300, 400)  # no resizing at all
    assert scale.working_size(272, 640, 360) == (272, 640)  # bikes.mp4: strokes 360/272 = 1.32x the style's
    assert scale.working_size(240, 320, 360) == (271, 361)  # enlarged until they are 1.33x
    assert scale.working_size(90, 160, 360) == (271, 481)
    assert scale.working_size(360, 640, 360, 2.0) == (180, 320)


def test_a_thin_frame_is_not_blown_up():
    assert scale.working_size(5, 4000, 360) == (5, 4000)
    h, w = scale.working_size(20, 400, 360)
    assert w <= 4 * 360 and h >= 20


def test_guided_upsampling_restores_edges_the_painting_follows():
    """A painting that is a linear function of the frame comes back as that function of the
    full-resolution frame: sharp where interpolation alone would blur."""
    frame = torch.zeros(1, 3, 64, 64)
    frame[..., :, 31:] = 1.0  # a vertical edge between two low-resolution pixels
    low = scale.resize(frame, (16, 16))
    painting = 0.5 * low + 0.2
    up = scale.guided_upsample(painting, low, frame)
    interpolated = scale.resize(painting, (64, 64))
    target = 0.5 * frame + 0.2
    assert up.shape == frame.shape
    assert (up - target).abs().mean() < 0.5 * (interpolated - target).abs().mean()


def test_guided_upsampling_keeps_texture_the_frame_lacks():
    """Strokes on a flat frame are interpolated (steepening off), not smoothed away, and the frame adds
    nothing."""
    frame = torch.full((1, 3, 48, 48), 0.5)
    painting = torch.rand(1, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    low = scale.resize(frame, (12, 12))
    torch.testing.assert_close(scale.guided_upsample(painting, low, frame, steep=1.0),
                               scale.resize(painting, (48, 48)), atol=1e-5, rtol=0)


def test_upsampled_strokes_are_sharper_than_interpolated_ones_and_keep_their_colours():
    """A stroke edge on a flat frame comes out steeper than interpolation makes it, with no value
    outside the painting's own range (no halo), and the same mean colour."""
    frame = torch.full((1, 3, 72, 72), 0.5)
    painting = torch.full((1, 3, 12, 12), 0.2)
    painting[..., 6:] = 0.8  # a vertical stroke edge
    low = scale.resize(frame, (12, 12))
    up = scale.guided_upsample(painting, low, frame)
    interpolated = scale.resize(painting, (72, 72))
    row, ref = up[0, 0, 36], interpolated[0, 0, 36]
    assert row.diff().abs().max() > 1.3 * ref.diff().abs().max()
    assert up.min() >= 0.2 - 1e-5 and up.max() <= 0.8 + 1e-5
    assert abs(up.mean() - interpolated.mean()) < 0.01


def test_steepening_grows_with_the_upsampling_factor():
    ks = [scale.steepening(f) for f in (1.0, 2.0, 3.0, 6.0, 12.0)]
    assert ks[0] == 1.0 and ks == sorted(ks) and ks[-1] == scale.STEEPEN_MAX


def test_the_stretch_by_motion_keeps_k_where_still_and_falls_to_one_where_fast():
    speeds = torch.tensor([0.0, 0.25, 0.5, 1.0, 2.0, 4.0])
    flow = torch.stack((speeds * 0.6, speeds * 0.8)).view(1, 2, 1, -1)  # |flow| = speeds, diagonal
    ks = scale.motion_steepening(flow, 1.5, pixel=3.0)[0, 0, 0]  # 1080p painted at 360: a network pixel is 3 px
    assert ks.shape == speeds.shape and ks[0] == 1.5
    assert (ks.diff() < 0).all()  # the faster, the less stretch
    assert ks[3] == pytest.approx(1 + 0.5 / np.e, abs=1e-5)  # a third of a network pixel a frame
    assert 1.0 <= ks[4] < 1.01 and ks[5] == pytest.approx(1.0, abs=1e-6)
    assert scale.motion_steepening(flow, 1.5, pixel=6.0)[0, 0, 0, 4] == ks[3]  # at 4K, twice the pixels
    assert (scale.motion_steepening(flow, 1.0, pixel=3.0) == 1.0).all()


def test_a_uniform_stretch_map_upsamples_as_the_scalar_stretch():
    frame = torch.rand(2, 3, 60, 90, generator=torch.Generator().manual_seed(1))
    low = scale.resize(frame, (20, 30))
    painting = torch.rand(2, 3, 20, 30, generator=torch.Generator().manual_seed(2))
    for k in (1.0, 1.25, 1.5):
        torch.testing.assert_close(scale.guided_upsample(painting, low, frame, steep=torch.full((2, 1, 60, 90), k)),
                                   scale.guided_upsample(painting, low, frame, steep=k), atol=1e-6, rtol=0)
    # a map stretches each pixel by its own k
    half = torch.full((2, 1, 60, 90), 1.5)
    half[..., 45:] = 1.0
    mixed = scale.guided_upsample(painting, low, frame, steep=half)
    torch.testing.assert_close(mixed[..., :45], scale.guided_upsample(painting, low, frame, steep=1.5)[..., :45])
    torch.testing.assert_close(mixed[..., 45:], scale.guided_upsample(painting, low, frame, steep=1.0)[..., 45:],
                               atol=1e-5, rtol=0)


def test_to_output_same_size_is_untouched_and_larger_is_averaged_down():
    painting = torch.rand(1, 3, 20, 30)
    assert scale.to_output(painting, painting, painting) is painting
    frame = torch.rand(1, 3, 10, 15)
    assert scale.to_output(painting, painting, frame).shape == frame.shape


# -- through the Stylizer ---------------------------------------------------------------------------------------


class Recorder(torch.nn.Module):
    """Stands in for a network: records the input sizes it is given, paints grey."""

    def __init__(self):
        super().__init__()
        self.sizes: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        self.sizes.append(tuple(x.shape[-2:]))
        return torch.full_like(x, 0.5)


@pytest.fixture(scope="module")
def vangogh() -> StyleChoice:
    return load_catalog(REAL_CATALOG).resolve("vangogh")


@pytest.mark.parametrize("stroke", [0.5, 1.0, 2.0])
def test_stroke_scale_reaches_the_network_at_every_output_size(vangogh, stroke):
    base = Stylizer(vangogh, device="cpu", precision="float32", reference_side=360)
    base.net = recorder = Recorder()
    stylizer = base.with_style(vangogh, stroke)
    for height, width in [(5, 5), (7, 13), (48, 64), (360, 640), (1080, 1920)]:
        out = stylizer(np.zeros((1, height, width, 3), np.uint8))
        assert out.shape == (1, height, width, 3)
        h, w = recorder.sizes[-1]
        assert min(h, w) - round(expected_side(min(height, width), 360 / stroke)) in range(4)  # padded to 4


def test_stroke_scale_is_part_of_the_jobs_identity(vangogh):
    one, two = RenderOptions(style=vangogh), RenderOptions(style=vangogh, stroke_scale=2.0)
    assert one.model_dump() != two.model_dump()
    with pytest.raises(ValueError):
        RenderOptions(style=vangogh, stroke_scale=5.0)


def test_odd_and_tiny_sizes_render(vangogh):
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=32)
    for height, width in [(5, 5), (7, 13), (33, 17), (61, 45)]:
        out = stylizer(pattern(1, width, height)[None])
        assert out.shape == (1, height, width, 3) and 0.0 <= out.min() and out.max() <= 1.0


def test_larger_stroke_scale_paints_longer_strokes(vangogh):
    """The real network on a real-looking picture: strokes at scale 2 longer than at 1."""
    frame = pattern(3, 256, 144)
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=96)
    one = stylizer(frame[None])[0]
    two = stylizer.with_style(vangogh, 2.0)(frame[None])[0]
    assert metrics.stroke_length(two, width=256) > 1.3 * metrics.stroke_length(one, width=256)


@pytest.mark.parametrize("value", ["0.1", "5"])
def test_stroke_scale_out_of_range_is_a_usage_error(tmp_path, value):
    from tests.clips import make_clip
    from tests.conftest import run_cli

    clip = make_clip(tmp_path / "a.mp4", frames=2, width=32, height=24)
    result = run_cli("submit", clip, "--stroke-scale", value, "-o", tmp_path / "out.mp4")
    assert result.code == 2 and not (tmp_path / "out.mp4").exists()


def test_sheet_takes_the_stroke_scale(vangogh, tmp_path):
    """Two tiles' worth of sheet at two stroke scales: the larger one paints longer strokes."""
    from farm.styles.catalog import Catalog
    from farm.styles.sheet import render_sheet

    entry = next(e for e in load_catalog(REAL_CATALOG).entries if e.name == "vangogh")
    one_style = Catalog([entry], reference_sides={"multistyle26": 48})
    image = pattern(2, 192, 128)
    sheets = [render_sheet(one_style, image, tmp_path / f"s{s}.png", tile=128, device="cpu", stroke_scale=s)
              for s in (1.0, 2.0)]
    from PIL import Image

    tiles = [np.asarray(Image.open(p).convert("RGB")) for p in sheets]
    assert tiles[0].shape == tiles[1].shape and np.abs(tiles[0].astype(int) - tiles[1]).mean() > 5


def test_the_temporal_pass_splits_the_bands_at_the_paintings_scale(vangogh):
    """Strokes painted at the working size and shown f times larger are f times as wide in the frame's pixels:
    the temporal pass splits strokes from their base at BASE_SIGMA pixels of the painting, not of the frame."""
    from farm.config import TemporalOptions
    from farm.paint import band_sigma, painter_for
    from farm.pipeline import Timer
    from farm.temporal import BASE_SIGMA

    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=360)
    assert band_sigma(stylizer, 1080, 1920) == pytest.approx(3 * BASE_SIGMA)
    assert band_sigma(stylizer.with_style(vangogh, 2.0), 1080, 1920) == pytest.approx(6 * BASE_SIGMA)
    assert band_sigma(stylizer, 360, 640) == band_sigma(stylizer, 272, 640) == BASE_SIGMA
    small = Stylizer(vangogh, device="cpu", precision="float32", reference_side=16)
    for flow in ("dis", "torch"):
        painter = painter_for(small, TemporalOptions(flow=flow), Timer())
        painter(np.stack([pattern(i, 96, 48) for i in range(2)]))
        assert painter.coherence.base_sigma == pytest.approx(3 * BASE_SIGMA)


def painted(stylizer, frames: np.ndarray, flow: str, warmup_from: int | None = None) -> np.ndarray:
    """A painter's output for ``frames`` in one call per frame; with ``warmup_from`` a chunk starting there,
    its earlier frames stepped through as warm-up and dropped, as a worker does."""
    from farm.config import TemporalOptions
    from farm.paint import painter_for
    from farm.pipeline import Timer

    painter = painter_for(stylizer, TemporalOptions(flow=flow), Timer())
    out = np.stack([painter(f[None])[0] for f in frames])
    return out if warmup_from is None else out[warmup_from:]


@pytest.mark.parametrize("flow", ["dis", "torch"])
def test_a_chunked_render_painted_at_the_working_size_matches_the_sequential_one(vangogh, flow):
    """Painted at a working size below the frame and upsampled, a chunk that steps through its warm-up frames
    comes out as the sequential render does: exactly before the seam, within a level after it."""
    from tests.motion import SUITE

    frames = np.stack(SUITE["pan"](frames=20, width=96, height=64).all_frames())
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=24)
    assert stylizer.working_size(64, 96) < (64, 96)
    whole = painted(stylizer, frames, flow)
    first, second = painted(stylizer, frames[:10], flow), painted(stylizer, frames, flow, warmup_from=10)
    second = second[2:]  # this chunk's own frames after 12 of warm-up: frames 12-19 here
    np.testing.assert_array_equal(first, whole[:10])
    assert np.abs(second.astype(int) - whole[12:]).mean() < 1.0


def test_with_the_temporal_pass_the_render_is_sharper_than_the_upscaled_preview(vangogh):
    """A render 3x the preview's size, temporal pass included, is sharper than the preview (painted at its own
    size, same pictures, same pass) upscaled 3x with Lanczos."""
    import cv2

    from tests.motion import SUITE

    big = np.stack(SUITE["pan"](frames=4, width=288, height=192).all_frames())
    small = np.stack([cv2.resize(f, (96, 64), interpolation=cv2.INTER_AREA) for f in big])
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=64)
    render, preview = painted(stylizer, big, "dis"), painted(stylizer, small, "dis")
    upscaled = [cv2.resize(f, (288, 192), interpolation=cv2.INTER_LANCZOS4) for f in preview]
    ratio = (np.mean([metrics.laplacian_variance(f) for f in render])
             / np.mean([metrics.laplacian_variance(f) for f in upscaled]))
    assert ratio > 1.5


@pytest.mark.parametrize("flow", ["dis", "torch"])
def test_odd_and_tiny_sizes_render_with_the_temporal_pass(vangogh, flow):
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=12)
    for height, width in [(5, 5), (7, 13), (33, 17), (61, 45)]:
        frames = np.stack([pattern(i, width, height) for i in range(3)])
        out = painted(stylizer, frames, flow)
        assert out.shape == frames.shape and out.dtype == np.uint8


# -- the stretch by motion, through both painters ---------------------------------------------------------------


def moving_square(frames: int, speed: int = 10, width: int = 288, height: int = 192) -> np.ndarray:
    """A still textured background with a 64 px textured square crossing it ``speed`` px a frame to the right,
    rows 64-127 (at a smaller size DIS's flow, computed at half of it, spreads the square's motion far over the
    background)."""
    from tests.motion import texture

    background = (texture(height, width, 3) * 255).astype(np.uint8)
    square = (texture(64, 64, 4) * 255).astype(np.uint8)
    out = []
    for t in range(frames):
        image = background.copy()
        x = 16 + speed * t
        image[64:128, x:x + 64] = square
        out.append(image)
    return np.stack(out)


def recorded_stretch(stylizer, frames: np.ndarray, flow: str, reset_before: int | None = None) -> list[np.ndarray]:
    """Each frame's stretch map (H,W) as the painter handed it to ``Stylizer.finish``, one call per frame."""
    from farm.config import TemporalOptions
    from farm.paint import painter_for
    from farm.pipeline import Timer

    seen: list[np.ndarray] = []
    finish = stylizer.finish

    def spy(painting, guide, x, steep=None, shifts=None, light=None):  # x: the planar frames (N,3,H,W)
        whole = stylizer.steepening(*x.shape[-2:]) if steep is None else steep  # None: the upsampling's own
        for i in range(len(x)):
            k = whole[i, 0] if isinstance(whole, torch.Tensor) else torch.full(x.shape[-2:], float(whole))
            seen.append(k.numpy().copy())
        return finish(painting, guide, x, steep, shifts, light)

    stylizer.finish = spy
    painter = painter_for(stylizer, TemporalOptions(flow=flow), Timer())
    for t, frame in enumerate(frames):
        if t == reset_before:
            painter.reset()
        painter(frame[None])
    return seen


@pytest.mark.parametrize("flow", ["dis", "torch"])  # HostPainter and DevicePainter
def test_the_strokes_are_steepened_less_only_where_the_frame_moves(vangogh, flow):
    frames = moving_square(4)
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=64)
    k_max = stylizer.steepening(192, 288)
    assert k_max == scale.STEEPEN_MAX  # painted at a third of the size
    ks = recorded_stretch(stylizer, frames, flow)
    assert (ks[0] == k_max).all()  # the first frame: nothing to move from
    for t in (1, 2, 3):
        x = 16 + 10 * t
        assert ks[t][72:120, x + 8:x + 56].mean() < 1.05  # inside the square, moving 10 px a frame
        for still in (ks[t][:40], ks[t][152:], ks[t][:, x + 110:]):  # the background above, below, ahead
            assert still.mean() > k_max - 0.01 and (still > k_max - 0.1).mean() > 0.97  # the flow's own spill


@pytest.mark.parametrize("flow", ["dis", "torch"])
def test_a_still_clip_and_the_first_frame_after_a_cut_keep_the_full_stretch(vangogh, flow):
    still = np.repeat(moving_square(1), 3, axis=0)
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=64)
    for k in recorded_stretch(stylizer, still, flow):
        assert k.min() > scale.STEEPEN_MAX - 0.01
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=64)
    ks = recorded_stretch(stylizer, moving_square(4), flow, reset_before=2)
    assert ks[1].min() < 1.1 and (ks[2] == scale.STEEPEN_MAX).all() and ks[3].min() < 1.1


def test_the_torch_painter_steepens_as_the_dis_painter_does(vangogh):
    """The two flows differ, not the rule: the stretch maps agree but for a band along the moving edges."""
    frames = moving_square(4)
    maps = {flow: recorded_stretch(Stylizer(vangogh, device="cpu", precision="float32", reference_side=64), frames,
                                   flow) for flow in ("dis", "torch")}
    for a, b in zip(maps["dis"], maps["torch"]):
        # the square is 7 % of the frame; DIS, computed at half size, spreads its motion over a wider band around
        # it, where a third of a network pixel a frame already lowers the stretch
        assert np.abs(a - b).mean() < 0.05 and (np.abs(a - b) > 0.1).mean() < 0.12


def test_painted_at_the_frames_own_size_nothing_is_steepened(vangogh):
    """k = 1 at the frames' size: nothing to steepen, still or moving."""
    stylizer = Stylizer(vangogh, device="cpu", precision="float32", reference_side=360)
    assert stylizer.steepening(192, 288) == 1.0
    for flow in ("dis", "torch"):
        assert all((k == 1.0).all() for k in recorded_stretch(stylizer, moving_square(3), flow))


@pytest.mark.parametrize("shape", [(1, 3, 36, 64), (2, 3, 1, 1), (1, 3, 1, 7), (1, 3, 5, 1), (1, 1, 2, 2)])
def test_local_range_is_the_3x3_minimum_and_maximum(shape):
    """The strokes' local range, two 3-tap passes each, is exactly a 3×3 min/max pool (borders shrunk)."""
    from torch.nn import functional as F

    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    low, high = scale.local_range(x)
    assert torch.equal(low, -F.max_pool2d(-x, 3, stride=1, padding=1))
    assert torch.equal(high, F.max_pool2d(x, 3, stride=1, padding=1))
