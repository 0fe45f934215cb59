"""Orientation: how a player turns the decoded picture before showing it (a phone's display matrix,
a photo's EXIF orientation), applied to the pixels so the output needs no matrix at all.

An orientation is the linear part of FFmpeg's display matrix, ``(a, b, c, d)``
with entries in {-1, 0, 1}: a player shows the source pixel ``(x, y)`` at
``(a*x + c*y, b*x + d*y)`` (libavutil/display.h), shifted back into the frame.
Rotations by multiples of 90 degrees and mirrors are the eight such matrices;
any other angle is rounded to the nearest of them.
"""

from __future__ import annotations

import numpy as np

Orientation = tuple[int, int, int, int]
UPRIGHT: Orientation = (1, 0, 0, 1)



def from_display_matrix(matrix: np.ndarray | None) -> Orientation:
    """The orientation of FFmpeg's 3x3 display matrix (9 int32: 16.16 fixed point, row-major); None: upright."""
    if matrix is None:
        return UPRIGHT
    a, b, _, c, d, _, _, _, _ = (float(v) for v in np.asarray(matrix).reshape(9))
    if abs(a) + abs(d) >= abs(b) + abs(c):  # nearest right angle: keep the larger diagonal
        return (_sign(a), 0, 0, _sign(d))
    return (0, _sign(b), _sign(c), 0)


def _sign(value: float) -> int:
    return -1 if value < 0 else 1


def display_size(width: int, height: int, orientation: Orientation) -> tuple[int, int]:
    """The shown picture's (width, height): swapped by a quarter turn."""
    return (width, height) if orientation[1] == 0 else (height, width)


def apply(rgb: np.ndarray, orientation: Orientation) -> np.ndarray:
    """The (H, W, C) picture as a player shows it: pure axis swaps and flips, no resampling."""
    a, b, c, d = orientation
    if b == 0:  # diagonal: x' = a*x, y' = d*y
        out = rgb[::d, ::a]
    else:  # anti-diagonal: x' = c*y, y' = b*x, so the axes swap
        out = rgb.transpose(1, 0, *range(2, rgb.ndim))[::b, ::c]
    return np.ascontiguousarray(out)
