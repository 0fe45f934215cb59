"""The torch temporal pass (farm.temporal.tvl1 / device / device_coherence) against known motion and
against its numpy twin in farm.temporal.dis. CPU tensors; the same functions run on a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farm.config import TemporalOptions
from farm.metrics import warp_error_known
from farm.temporal import dis, tvl1
from farm.temporal.device import blend_bands, lowpass, reliability_mask, to_gray, warp
from farm.temporal.device_coherence import DeviceCoherence
from tests.motion import CLIPS, endpoint_error
from tests.test_temporal import fake_stylize, smooth_image

H, W = 120, 160


def nchw(image: np.ndarray) -> torch.Tensor:
    """(H,W,C) numpy → (1,C,H,W) tensor."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None]


def hwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor[0].permute(1, 2, 0).numpy()


@pytest.fixture(scope="module")
def clips():
    """Three frames of each standard known-motion clip at 160x120, with true flows and masks."""
    return {name: (make(frames=3, width=W, height=H)) for name, make in CLIPS.items()}


def torch_flow(src: np.ndarray, dst: np.ndarray, **kwargs) -> np.ndarray:
    """tvl1.estimate_flow on one pair of RGB uint8 frames → (H,W,2) numpy."""
    return hwc(tvl1.estimate_flow(nchw(src), nchw(dst), **kwargs))


# ---------------------------------------------------------------- the flow


#: mean endpoint error (px, valid pixels, farm's flow scale 0.5) the torch flow stays under on 160x120 clips
EPE_BOUND = {"pan": 0.2, "zoom+rotate": 0.2, "crossing": 0.3, "fast pan": 0.3}


@pytest.mark.parametrize("name", list(CLIPS))
def test_torch_flow_recovers_the_known_motion(clips, name):
    clip = clips[name]
    frames = [clip.frame(t) for t in range(3)]
    for t in (1, 2):
        truth, valid = clip.flow(t)
        flow = torch_flow(frames[t], frames[t - 1])  # backward: frame t's pixels in frame t-1
        assert endpoint_error(flow, truth, valid) < EPE_BOUND[name]


def test_torch_flow_follows_the_object_not_the_background(clips):
    clip = clips["crossing"]
    truth, valid = clip.flow(2)
    flow = torch_flow(clip.frame(2), clip.frame(1))
    on_disc = valid * (clip._layers(2, clip.xs, clip.ys) > 0)
    assert on_disc.sum() > 500
    assert endpoint_error(flow, truth, on_disc) < 0.5
    # the discs move several px against the background, so a flow that ignored them would fail above
    assert endpoint_error(np.zeros_like(truth) + truth[0, 0], truth, on_disc) > 2.0


def test_torch_flow_batches_pairs_and_takes_any_input_layout(clips):
    a, b, c = (clips["pan"].frame(t) for t in range(3))
    src = torch.from_numpy(np.stack([b, c]))  # (B,H,W,3) uint8
    dst = torch.from_numpy(np.stack([a, b]))
    batched = tvl1.estimate_flow(src, dst)
    single = tvl1.estimate_flow(src[1:], dst[1:])
    gray = tvl1.estimate_flow(to_gray(src[1:]), to_gray(dst[1:]))  # (B,1,H,W) float in [0,1]
    assert batched.shape == (2, 2, H, W) and batched.dtype == torch.float32
    # a batch of two sums in another order than a batch of one on some CPUs, and TV-L1's iterations carry
    # that rounding on: up to 6.5e-4 px apart on an AMD EPYC (AVX-512), 1e-4 on a Xeon
    torch.testing.assert_close(batched[1:], single, atol=1e-3, rtol=0)
    torch.testing.assert_close(gray, single, atol=1e-3, rtol=0)


def test_warping_along_the_torch_flow_reproduces_the_frame(clips):
    clip = clips["zoom+rotate"]
    src, dst = clip.frame(2), clip.frame(1)
    flow = tvl1.estimate_flow(nchw(src), nchw(dst))
    warped = warp(nchw(dst).float(), flow)
    _, valid = clip.flow(2)
    err = (hwc(warped) - src).__abs__().mean(-1)
    assert (err * valid).sum() / valid.sum() < 2.0  # levels of 255


# ---------------------------------------------------------------- the torch pixel maths = the numpy one


def smooth_flow(h: int = H, w: int = W) -> np.ndarray:
    ys, xs = np.indices((h, w), dtype=np.float32)
    return np.stack([2.5 * np.sin(xs / 23) + 1.0, 1.5 * np.cos(ys / 17) - 0.5], -1).astype(np.float32)


def test_torch_warp_equals_cv2_remap():
    image = smooth_image(H, W).astype(np.float32)
    flow = smooth_flow()
    ours = hwc(warp(nchw(image), nchw(flow)))
    # cv2.remap quantises sample positions to 1/32 px: the two agree to that resolution
    np.testing.assert_allclose(ours, dis.warp(image, flow), atol=5e-3)


def test_torch_lowpass_equals_the_cv2_gaussian():
    image = np.random.default_rng(0).random((H, W, 3)).astype(np.float32)
    np.testing.assert_allclose(hwc(lowpass(nchw(image))), dis.lowpass(image), atol=1e-5)


def test_torch_blend_bands_equals_numpy_on_the_same_flow():
    rng = np.random.default_rng(1)
    stylized, prev = (rng.random((H, W, 3)).astype(np.float32) for _ in range(2))
    mask = (rng.random((H, W)) > 0.3).astype(np.float32)
    ours = blend_bands(nchw(stylized), nchw(prev), nchw(mask[..., None]), 0.8, 0.5)
    np.testing.assert_allclose(hwc(ours), dis.blend_bands(stylized, prev.copy(), mask, 0.8, 0.5), atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"boundary_weight": 0.5, "entered": True}])
def test_torch_reliability_mask_equals_numpy_on_the_same_flows(clips, kwargs):
    clip = clips["crossing"]
    g1, g2 = dis.to_gray(clip.frame(1)), dis.to_gray(clip.frame(2))
    bwd, fwd = dis.estimate_flow(g2, g1), dis.estimate_flow(g1, g2)
    ours = hwc(reliability_mask(nchw(fwd), nchw(bwd), **kwargs))[..., 0]
    theirs = dis.reliability_mask(fwd, bwd, **kwargs)
    assert 0.05 < 1 - theirs.mean() < 0.6  # the discs' boundaries and disocclusions are masked
    # thresholds on interpolated flows: a pixel right at a threshold may go either way (remap's 1/32 px)
    assert (ours != theirs).mean() < 0.005


# ---------------------------------------------------------------- DeviceCoherence behaves as dis.Coherence


def flickering(n: int = 6):
    frames = CLIPS["pan"](frames=n, width=W, height=H).all_frames()
    return frames, [fake_stylize(f, t) for t, f in enumerate(frames)]


def dis_flow(src: torch.Tensor, dst: torch.Tensor, *, scale: float) -> torch.Tensor:
    """dis.estimate_flow behind DeviceCoherence's flow seam: isolates the blend from the flow."""
    to_u8 = lambda g: (g[0, 0] * 255).round().to(torch.uint8).numpy()  # noqa: E731
    flows = [dis.estimate_flow(to_u8(s[None]), to_u8(d[None]), scale=scale) for s, d in zip(src, dst)]
    return torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)


def run_device(frames, stylized, options=None, batch: int = 4, **kwargs) -> list[np.ndarray]:
    coherence = DeviceCoherence(options, **kwargs)
    f = torch.from_numpy(np.stack(frames))
    s = torch.from_numpy(np.stack(stylized)).permute(0, 3, 1, 2)
    out = [coherence.step_batch(f[i:i + batch], s[i:i + batch]) for i in range(0, len(frames), batch)]
    return list(torch.cat(out).permute(0, 2, 3, 1).numpy())


def test_device_coherence_equals_dis_coherence_given_the_same_flow():
    frames, stylized = flickering()
    coherence = dis.Coherence()
    expected = [coherence.step(f, s) for f, s in zip(frames, stylized)]
    ours = run_device(frames, stylized, flow=dis_flow)
    for a, b in zip(ours, expected):
        assert np.abs(a - b).mean() < 2e-3


def test_device_coherence_first_frame_passes_through_and_reset_forgets():
    frames, stylized = flickering(4)
    coherence = DeviceCoherence()
    first = coherence.step(torch.from_numpy(frames[0]), nchw(stylized[0])[0])
    np.testing.assert_array_equal(first.permute(1, 2, 0).numpy(), stylized[0])
    blended = coherence.step(torch.from_numpy(frames[1]), nchw(stylized[1])[0])
    assert not np.allclose(blended.permute(1, 2, 0).numpy(), stylized[1])
    coherence.reset()
    again = coherence.step(torch.from_numpy(frames[2]), nchw(stylized[2])[0])
    np.testing.assert_array_equal(again.permute(1, 2, 0).numpy(), stylized[2])


@pytest.mark.parametrize("options", [TemporalOptions(enabled=False), TemporalOptions(strength=0.0)])
def test_device_coherence_off_passes_every_frame_through(options):
    frames, stylized = flickering(4)
    for a, b in zip(run_device(frames, stylized, options, batch=3), stylized):
        np.testing.assert_array_equal(a, b)


def test_device_coherence_batches_split_anywhere_give_the_same_frames():
    frames, stylized = flickering(5)
    whole = run_device(frames, stylized, batch=5)
    for batch in (1, 3):
        for a, b in zip(run_device(frames, stylized, batch=batch), whole):
            np.testing.assert_allclose(a, b, atol=1e-4)


def test_device_coherence_starts_afresh_when_the_frame_size_changes():
    frames, stylized = flickering(2)
    coherence = DeviceCoherence()
    coherence.step(torch.from_numpy(frames[0]), nchw(stylized[0])[0])
    small = stylized[1][:60, :80].copy()
    out = coherence.step(torch.from_numpy(frames[1][:60, :80].copy()), nchw(small)[0])
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), small)


def test_device_coherence_lowers_flicker_along_the_true_motion():
    clip = CLIPS["pan"](frames=8, width=W, height=H)
    frames = clip.all_frames()
    stylized = [fake_stylize(f, t) for t, f in enumerate(frames)]
    flows = clip.all_flows()
    per_frame = warp_error_known(stylized, [f for f, _ in flows], [m for _, m in flows])
    ours = warp_error_known(run_device(frames, stylized), [f for f, _ in flows], [m for _, m in flows])
    assert ours < 0.5 * per_frame
