"""Frames brought down to a smaller short side by area averaging: how a preview is delivered (farm/preview.py)
and how a job with ``RenderOptions.output_side`` writes its frames after the temporal pass (farm/worker.py)."""

from __future__ import annotations

import math

import numpy as np


def shrunk_size(width: int, height: int, side: int) -> tuple[int, int]:
    """(width, height) with the short side at ``side`` at most, the aspect kept, both even (yuv420p)."""
    factor = min(1.0, side / min(width, height))
    even = lambda n: max(2, 2 * math.ceil(round(n * factor, 6) / 2))  # noqa: E731  (odd rounds up, as outputs do)
    return even(width), even(height)


def shrink(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` (H,W,3) at ``size`` (width, height), area-averaged (OpenCV's INTER_AREA); as it is if it fits."""
    import cv2

    if (rgb.shape[1], rgb.shape[0]) == size:
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
