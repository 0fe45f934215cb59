"""Flicker metrics: the warping error of Lai et al., ECCV 2018 ("Learning Blind
Video Temporal Consistency"), and how far an output strays from a reference.

E_warp = mean over frame pairs (t-1, t) of

    Σ_x M_t(x) · ‖O_t(x) − Ô_{t-1}(x)‖² / Σ_x M_t(x)

where Ô_{t-1} is O_{t-1} warped into frame t along the flow of the *input*
video (full resolution), M_t the occlusion + motion-boundary mask of
Ruder et al. (:func:`farm.temporal.reliability_mask`), and the squared norm is
averaged over the RGB channels in [0, 1] (as in Lai et al.'s evaluation code,
which divides by the masked pixel count times the channels).

Blur and ghosting also lower E_warp, so it proves nothing alone: report it with
:func:`deviation` / :func:`lowfreq_deviation` against the per-frame
stylization. All functions stream: they take iterables and hold two frames.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
from pydantic import BaseModel, ConfigDict

from farm import temporal
from farm.temporal import estimate_flow, reliability_mask, to_gray, warp

#: σ in pixels of the blur before :func:`lowfreq_deviation` (strokes gone, colours and shapes kept)
LOWFREQ_SIGMA = 3.0


def to_unit(image: np.ndarray) -> np.ndarray:
    """uint8 in [0,255] or float in [0,1] → float32 in [0,1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return np.asarray(image, dtype=np.float32)


def masked_sq_error(current: np.ndarray, warped_prev: np.ndarray, mask: np.ndarray) -> float:
    """Lai et al.'s per-pair term: squared RGB difference averaged over channels and masked pixels."""
    sq = ((to_unit(current) - to_unit(warped_prev)) ** 2).mean(axis=-1)
    weight = float(mask.sum())
    if weight == 0.0:  # nothing reliable: Lai et al. fall back to every pixel
        return float(sq.mean())
    return float((sq * mask).sum() / weight)


#: the flow of one pair of input frames (t-1, t) → (backward flow on t's grid, reliability mask on t's grid)
PairFlow = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def dis_pair(prev: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:data:`PairFlow` by OpenCV DIS at full resolution (the measure's reference)."""
    prev, current = to_gray(prev), to_gray(current)
    bwd = estimate_flow(current, prev, scale=1.0)
    fwd = estimate_flow(prev, current, scale=1.0)
    return bwd, reliability_mask(fwd, bwd)


def torch_pair(prev: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:data:`PairFlow` by farm's torch flow (farm.temporal.tvl1) at full resolution, on the CPU."""
    import torch

    from farm.temporal import device, tvl1

    with torch.inference_mode():
        a, b = (torch.from_numpy(to_gray(f)).float().div_(255.0)[None] for f in (prev, current))
        flows = tvl1.estimate_flow(torch.cat([b, a]), torch.cat([a, b]), scale=1.0)  # backward, forward
        mask = device.reliability_mask(flows[1:], flows[:1])
        return flows[0].permute(1, 2, 0).numpy(), mask.reshape(mask.shape[-2:]).numpy()


def pair_flow(name: str) -> PairFlow:
    """The :data:`PairFlow` a ``--flow`` name measures with (``auto``: DIS)."""
    return torch_pair if name == "torch" else dis_pair


def input_flows(inputs: Iterable[np.ndarray], flow: PairFlow = dis_pair) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For each pair (t-1, t) of input frames: (backward flow on t's grid, reliability mask)."""
    prev = None
    for frame in inputs:
        if prev is not None:
            yield flow(prev, frame)
        prev = frame


def pair_errors(frames: Iterable[np.ndarray], flows: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[float]:
    """Per-pair E_warp terms of ``frames`` given (backward flow, mask) per pair (t-1, t)."""
    frames = iter(frames)
    prev = next(frames, None)
    for current, (flow, mask) in zip(frames, flows, strict=True):
        yield masked_sq_error(current, warp(to_unit(prev), flow), mask)
        prev = current


def mean_of(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else 0.0


def warp_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> float:
    """E_warp of ``outputs`` (uint8 or [0,1] float frames), flow and mask from ``inputs`` (uint8 RGB)."""
    return mean_of(pair_errors(outputs, input_flows(inputs)))


def warp_error_known(outputs: Iterable[np.ndarray], flows: Iterable[np.ndarray],
                     masks: Iterable[np.ndarray] | None = None) -> float:
    """E_warp with true motion: ``flows[i]`` is the backward flow of pair (i, i+1) on frame i+1's grid
    (frame_{i+1}[y,x] = frame_i[y+fy, x+fx]); ``masks[i]`` its validity (1 = visible in both), default all 1."""
    flows = iter(flows)
    masks = iter(masks) if masks is not None else None
    pairs = ((f, next(masks) if masks is not None else np.ones(f.shape[:2], np.float32)) for f in flows)
    return mean_of(pair_errors(outputs, pairs))


def deviation(outputs: Iterable[np.ndarray], reference: Iterable[np.ndarray]) -> float:
    """Mean absolute difference in [0,1] between outputs and a per-frame reference."""
    return mean_of(float(np.abs(to_unit(o) - to_unit(r)).mean()) for o, r in zip(outputs, reference, strict=True))


def lowpass(image: np.ndarray, sigma: float = LOWFREQ_SIGMA) -> np.ndarray:
    """Gaussian blur of σ = ``sigma`` px of an image in [0,1] (uint8 converted)."""
    return temporal.lowpass(to_unit(image), sigma)


def lowfreq_deviation(outputs: Iterable[np.ndarray], reference: Iterable[np.ndarray],
                      sigma: float = LOWFREQ_SIGMA) -> float:
    """:func:`deviation` after a Gaussian blur of σ = ``sigma`` px on both: drift, ghosting and
    smearing show here; repainted brush strokes (which coherence must change) do not."""
    return deviation((lowpass(o, sigma) for o in outputs), (lowpass(r, sigma) for r in reference))


class FlickerSeries(BaseModel):
    """E_warp pair by pair: index i of each list is the pair (i, i+1), seen at frame i+1."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: int
    #: the output's terms, flow from the input
    render: list[float]
    #: the input's own terms (its floor)
    input: list[float]
    #: the per-frame stylization's terms along the same flow, when a reference was given
    per_frame: list[float] | None = None
    #: per frame: mean |output − reference| in [0,1], and the same after a σ=3 px blur of both
    deviation: list[float] | None = None
    lowfreq_deviation: list[float] | None = None
    #: per frame: the output's Laplacian variance over the reference's (:func:`sharpness_kept`)
    sharpness_kept: list[float] | None = None


class FlickerReport(BaseModel):
    """Flicker of an output video next to its floor (the input's own E_warp) and its drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: E_warp of the output (Lai et al. 2018), flow from the input
    e_warp: float
    #: E_warp of the input itself: what a perfectly coherent restyling of it would roughly score
    e_warp_input: float
    frames: int
    #: mean |output − reference| in [0,1], when a per-frame reference was given
    deviation: float | None = None
    #: the same after a σ=3 px blur of both
    lowfreq_deviation: float | None = None
    #: E_warp of the per-frame reference itself (what coherence removes flicker from), and e_warp over it
    e_warp_per_frame: float | None = None
    ratio: float | None = None
    #: how much of the per-frame reference's sharpness the output keeps, the median over frames
    #: (:func:`sharpness_kept`): E_warp and the deviations all reward a blur, this shows it
    sharpness_kept: float | None = None


#: one frame of each video: input, output, and the per-frame reference (None without one)
Triple = tuple[np.ndarray, np.ndarray, np.ndarray | None]


def triples(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray],
            reference_frames: Iterable[np.ndarray] | None = None) -> Iterator[Triple]:
    """The videos frame by frame; ValueError when their frame counts or sizes differ."""
    refs = iter(reference_frames) if reference_frames is not None else None
    for index, (frame_in, frame_out) in enumerate(zip(input_frames, output_frames, strict=True)):
        if frame_in.shape[:2] != frame_out.shape[:2]:
            raise ValueError(f"frame {index}: input {frame_in.shape[:2]} and output {frame_out.shape[:2]} differ")
        ref = next(refs, None) if refs is not None else None
        if refs is not None and ref is None:
            raise ValueError(f"the reference ends after {index} frames")
        yield frame_in, frame_out, ref


def flicker_series(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray],
                   reference_frames: Iterable[np.ndarray] | None = None, flow: PairFlow = dis_pair) -> FlickerSeries:
    """One streaming pass: each input flow is computed once and scores the output, the input and the reference.

    The videos must have the same frame count and size (ValueError otherwise)."""
    return series_of(triples(input_frames, output_frames, reference_frames), reference_frames is not None, flow)


def series_of(frames: Iterable[Triple], with_reference: bool, flow: PairFlow = dis_pair) -> FlickerSeries:
    """:func:`flicker_series` of a stream of :data:`Triple` (a caller that also writes them somewhere)."""
    out_terms, in_terms, ref_terms, dev, low, sharp = [], [], [], [], [], []
    prev: Triple | None = None
    count = 0
    for count, (frame_in, frame_out, ref) in enumerate(frames, start=1):
        if with_reference:
            dev.append(deviation([frame_out], [ref]))
            low.append(lowfreq_deviation([frame_out], [ref]))
            sharp.append(sharpness_kept(frame_out, ref))
        if prev is not None:
            flow_t, mask = flow(prev[0], frame_in)
            out_terms.append(masked_sq_error(frame_out, warp(to_unit(prev[1]), flow_t), mask))
            in_terms.append(masked_sq_error(frame_in, warp(to_unit(prev[0]), flow_t), mask))
            if with_reference:
                ref_terms.append(masked_sq_error(ref, warp(to_unit(prev[2]), flow_t), mask))
        prev = (frame_in, frame_out, ref)
    if not with_reference:
        return FlickerSeries(frames=count, render=out_terms, input=in_terms)
    return FlickerSeries(frames=count, render=out_terms, input=in_terms, per_frame=ref_terms, deviation=dev,
                         lowfreq_deviation=low, sharpness_kept=sharp)


def report_of(series: FlickerSeries) -> FlickerReport:
    """The means of a :class:`FlickerSeries`."""
    e_warp = mean_of(series.render)
    per_frame = mean_of(series.per_frame) if series.per_frame is not None else None
    return FlickerReport(e_warp=e_warp, e_warp_input=mean_of(series.input), frames=series.frames,
                         deviation=mean_of(series.deviation) if series.deviation is not None else None,
                         lowfreq_deviation=(mean_of(series.lowfreq_deviation)
                                            if series.lowfreq_deviation is not None else None),
                         e_warp_per_frame=per_frame, ratio=e_warp / per_frame if per_frame else None,
                         sharpness_kept=(float(np.median(series.sharpness_kept))
                                         if series.sharpness_kept else None))


def flicker_report(input_frames: Iterable[np.ndarray], output_frames: Iterable[np.ndarray],
                   reference_frames: Iterable[np.ndarray] | None = None, flow: PairFlow = dis_pair) -> FlickerReport:
    """:func:`flicker_series`, averaged."""
    return report_of(flicker_series(input_frames, output_frames, reference_frames, flow))


# -- the look across output sizes (bench/look.py) ---------------------------------------------------------------

#: the width, in pixels, at which looks are compared: stroke lengths are quoted in pixels of this width
LOOK_WIDTH = 640
#: σ (pixels of LOOK_WIDTH) of the blur whose residual is the detail layer the strokes live in: wide enough
#: to hold the strokes of --stroke-scale 2 (a narrower band caps the lengths it can measure)
DETAIL_SIGMA = 8.0


def detail_layer(gray: np.ndarray, sigma: float = DETAIL_SIGMA) -> np.ndarray:
    """What a Gaussian blur of σ = ``sigma`` removes: the strokes and fine texture of a picture."""
    return gray - temporal.lowpass(gray, sigma)


def autocorrelation_half_length(layer: np.ndarray) -> float:
    """Lag in pixels at which the normalised autocorrelation of ``layer`` first falls to 0.5 (mean of the
    horizontal and vertical profiles, linearly interpolated): the typical length of its texture."""
    h, w = layer.shape
    spectrum = np.fft.rfft2(layer - layer.mean(), s=(2 * h, 2 * w))
    ac = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * h, 2 * w))
    if ac[0, 0] <= 0:
        return 0.0
    n = min(h, w) // 2
    profile = (ac[0, :n] + ac[:n, 0]) / (2 * ac[0, 0])
    below = np.flatnonzero(profile < 0.5)
    if below.size == 0:
        return float(n)
    r = int(below[0])
    return float(r - 1 + (profile[r - 1] - 0.5) / (profile[r - 1] - profile[r]))


def stroke_length(image: np.ndarray, width: int = LOOK_WIDTH, sigma: float = DETAIL_SIGMA) -> float:
    """Stroke length of a painting in pixels of a ``width``-wide frame: the autocorrelation half-length of
    its detail layer (luma minus a blur of σ = ``sigma`` pixels of that width), measured at the image's own
    size and scaled to ``width``. Measuring at the image's own size matters: a downscaled copy would
    average away strokes finer than its pixels."""
    gray = to_gray(to_unit(image))
    scale = gray.shape[1] / width
    return autocorrelation_half_length(detail_layer(gray, sigma * scale)) / scale


def lowpass_difference(a: np.ndarray, b: np.ndarray, width: int = LOOK_WIDTH, sigma: float = LOWFREQ_SIGMA) -> float:
    """Mean absolute difference, in levels of 255, between two renders brought to ``width`` and blurred by
    σ = ``sigma``: colours and large shapes, not the exact strokes."""
    import cv2

    def low(image: np.ndarray) -> np.ndarray:
        unit = to_unit(image)
        height = max(1, round(unit.shape[0] * width / unit.shape[1]))
        return lowpass(cv2.resize(unit, (width, height), interpolation=cv2.INTER_AREA), sigma)

    return float(np.abs(low(a) - low(b)).mean() * 255.0)


def sharpness_kept(output: np.ndarray, reference: np.ndarray) -> float:
    """How much of ``reference``'s sharpness ``output`` keeps: the ratio of their :func:`laplacian_variance`
    (1: as sharp; a flat reference counts as sharpness 1e-9). A temporal pass that averages the strokes
    of successive paintings scores well on E_warp and on the deviations, and low here (bench/README, "The
    strokes the blend averages away")."""
    return laplacian_variance(output) / max(laplacian_variance(reference), 1e-9)


def laplacian_variance(image: np.ndarray) -> float:
    """Variance of the Laplacian of the luma (0-255 scale): the usual sharpness measure."""
    import cv2

    gray = to_gray(to_unit(image)) * 255.0
    return float(cv2.Laplacian(gray.astype(np.float32), cv2.CV_32F).var())
