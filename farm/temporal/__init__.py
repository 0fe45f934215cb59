"""Temporal coherence: optical flow, reliability masks, warping and blending.

``dis`` holds the CPU path (OpenCV DIS flow and numpy/OpenCV pixel maths,
after Ruder et al. 2016); its public names are re-exported here. ``device``
is the same pass in torch, on the worker's device (GPU or CPU).
"""

from typing import Literal

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
    "estimate_flow", "lowpass", "reliability_mask", "resolve_flow", "to_gray", "warp",
]


#: what ``flow auto`` means on a CPU worker (bench/README.md, "torch flow on the CPU")
CPU_FLOW: Literal["dis", "torch"] = "dis"


def resolve_flow(flow: str, device_type: str) -> Literal["dis", "torch"]:
    """``auto`` → the torch flow on a CUDA device (nothing per-pixel leaves the GPU), :data:`CPU_FLOW`
    elsewhere; ``dis`` and ``torch`` stay as asked."""
    if flow in ("dis", "torch"):
        return flow
    return "torch" if device_type == "cuda" else CPU_FLOW
