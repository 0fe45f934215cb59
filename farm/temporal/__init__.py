"""Temporal coherence: optical flow, reliability masks, warping and blending.

``dis`` holds the CPU path (OpenCV DIS flow and numpy/OpenCV pixel maths,
after Ruder et al. 2016); its public names are re-exported here.
"""

from farm.temporal.dis import (
    BASE_SIGMA,
    BASE_STRENGTH,
    DIS_PRESET,
    WARP_INTERPOLATION,
    Coherence,
    blend,
    blend_bands,
    estimate_flow,
    lowpass,
    reliability_mask,
    to_gray,
    warp,
)

__all__ = [
    "BASE_SIGMA", "BASE_STRENGTH", "DIS_PRESET", "WARP_INTERPOLATION", "Coherence", "blend", "blend_bands",
    "estimate_flow", "lowpass", "reliability_mask", "to_gray", "warp",
]
