"""farm.metrics: E_warp (Lai et al. 2018), deviations, and the FlickerReport."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from farm.metrics import (FlickerReport, deviation, flicker_report, lowfreq_deviation, sharpness_kept, warp_error,
                          warp_error_known)
from tests.test_temporal import fake_stylize, pan_clip, pan_flows, texture


def noisy(frames: list[np.ndarray], sigma: float, seed: int = 0) -> list[np.ndarray]:
    """Frames as floats in [0,1] with fresh Gaussian noise of ``sigma`` each frame."""
    rng = np.random.default_rng(seed)
    return [np.clip(f / 255.0 + rng.normal(0, sigma, f.shape), 0, 1).astype(np.float32) for f in frames]


def test_static_clip_has_no_warping_error():
    frame = texture(120, 160)
    assert warp_error([frame] * 5, [frame] * 5) < 1e-6
    assert warp_error((frame for _ in range(5)), (frame for _ in range(5))) < 1e-6  # streams


def test_warping_error_grows_with_injected_noise():
    frames = pan_clip(6)
    errors = [warp_error(frames, noisy(frames, sigma)) for sigma in (0.0, 0.02, 0.05, 0.1)]
    assert errors == sorted(errors) and errors[-1] > 10 * errors[1]
    # i.i.d. noise of σ on both frames adds ≈ 2σ² (clipping and the input's own floor aside)
    assert errors[2] - errors[0] == pytest.approx(2 * 0.05**2, rel=0.25)


def test_known_flow_error_of_an_exact_pan_is_zero():
    n = 6
    frames = pan_clip(n)
    flows = pan_flows(n)
    assert warp_error_known(frames, (f for f, _ in flows), (m for _, m in flows)) < 1e-10
    # without the masks the pixels entering at the border count, and are wrong
    assert warp_error_known(frames, (f for f, _ in flows)) > 1e-6


def test_estimated_flow_agrees_with_the_known_flow_on_a_pan():
    n = 6
    frames = pan_clip(n)
    outs = [fake_stylize(f, t) for t, f in enumerate(frames)]
    flows = pan_flows(n)
    known = warp_error_known(outs, (f for f, _ in flows), (m for _, m in flows))
    assert warp_error(frames, outs) == pytest.approx(known, rel=0.15)


def test_deviations():
    rng = np.random.default_rng(0)
    ref = [rng.random((40, 50, 3), dtype=np.float32) * 0.5 + 0.25 for _ in range(3)]
    assert deviation(ref, ref) == 0.0 and lowfreq_deviation(ref, ref) == 0.0
    shifted = [r + 0.1 for r in ref]
    assert deviation(shifted, ref) == pytest.approx(0.1, abs=1e-5)
    assert lowfreq_deviation(shifted, ref) == pytest.approx(0.1, abs=1e-5)
    # pixel noise (repainted strokes) counts fully in deviation, hardly after the σ = 3 px blur
    speckled = [r + rng.normal(0, 0.05, r.shape).astype(np.float32) for r in ref]
    assert lowfreq_deviation(speckled, ref) < 0.15 * deviation(speckled, ref)
    # uint8 and [0,1] floats mean the same
    as_u8 = [(r * 255).round().astype(np.uint8) for r in ref]
    assert deviation(as_u8, ref) < 0.002


def test_flicker_report_streams_and_reports_the_floor():
    frames = pan_clip(6)
    outs = noisy(frames, 0.05)
    report = flicker_report(iter(frames), iter(outs), iter(frames))
    assert report.frames == 6
    assert report.e_warp == pytest.approx(warp_error(frames, outs))
    assert report.e_warp_input == pytest.approx(warp_error(frames, frames))
    assert report.e_warp > 10 * report.e_warp_input
    assert report.deviation == pytest.approx(deviation(outs, frames))
    assert report.lowfreq_deviation == pytest.approx(lowfreq_deviation(outs, frames))
    assert report.e_warp_per_frame == pytest.approx(warp_error(frames, frames))  # the reference's own E_warp
    assert report.ratio == pytest.approx(report.e_warp / report.e_warp_per_frame)
    assert report.sharpness_kept > 1.0  # noise on the reference: more Laplacian energy, not less
    bare = flicker_report(frames, outs)
    assert bare.deviation is None and bare.lowfreq_deviation is None and bare.ratio is None
    assert bare.sharpness_kept is None
    assert FlickerReport.model_validate_json(report.model_dump_json()) == report


def test_a_render_that_blurs_its_paintings_keeps_less_of_their_sharpness():
    """E_warp rewards a blur; the report's sharpness_kept is the figure that shows it."""
    import cv2

    frames = pan_clip(5)
    paintings = noisy(frames, 0.05)  # strokes that differ from frame to frame, as a network's do
    blurred = [cv2.GaussianBlur(p, (0, 0), 1.5) for p in paintings]
    assert sharpness_kept(paintings[0], paintings[0]) == pytest.approx(1.0)
    assert sharpness_kept(blurred[0], paintings[0]) < 0.5
    sharp, soft = flicker_report(frames, paintings, paintings), flicker_report(frames, blurred, paintings)
    assert soft.sharpness_kept < 0.5 < sharp.sharpness_kept == pytest.approx(1.0)
    assert soft.e_warp < 0.5 * sharp.e_warp  # what the flicker figures alone would prefer
    flat = np.full_like(paintings[0], 0.5)
    assert np.isfinite(sharpness_kept(paintings[0], flat))


def test_flicker_report_rejects_unknown_keys_and_mismatched_videos():
    with pytest.raises(ValidationError):
        FlickerReport(e_warp=0.0, e_warp_input=0.0, frames=1, typo=1)
    frames = pan_clip(2)
    with pytest.raises(ValueError, match="differ"):
        flicker_report(frames, [f[:-2] for f in frames])
    with pytest.raises(ValueError):
        flicker_report(frames, frames[:1])
    with pytest.raises(ValueError, match="reference"):
        flicker_report(frames, frames, frames[:1])
