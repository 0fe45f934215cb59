"""Colour conversions between the RGB the networks paint and the YUV the codecs store.

RGB <-> YUV conversions use swscale's default matrix (BT.601) both ways, with
accurate rounding and full (bilinear) chroma on the way to RGB; the segments
are tagged BT.601. (swscale's fast default path is off by 1-2 levels on most
pixels and upsamples chroma by repetition.) A lossless segment keeps exactly
the YUV planes it is given; the loss in source -> RGB -> yuv420p -> RGB is the
4:2:0 chroma itself: within +-1 for 99.6 % of values on bikes.mp4, 93.6 % on
bigbuckbunny.mp4 (saturated cartoon edges), far less on hard-edged synthetic
colour patterns. pix_fmt="yuv444p" keeps every value within +-2;
codec="libx264rgb", pix_fmt="rgb24" is bit-exact RGB (about 3x the bytes).
"""

from __future__ import annotations

import numpy as np
from av.video.reformatter import Interpolation

# swscale's default RGB<->YUV matrix, written into the segments so players agree.
BT601, LIMITED_RANGE = 6, 1  # AVCOL_SPC_SMPTE170M, AVCOL_RANGE_MPEG
_I = Interpolation
TO_RGB = _I.BILINEAR | _I.ACCURATE_RND | _I.FULL_CHR_H_INT | _I.FULL_CHR_H_INP
TO_YUV = _I.AREA | _I.ACCURATE_RND  # 2x2 chroma average: the inverse of the bilinear upsampling above


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0,1] (a painted frame) → uint8, rounded, out-of-range values clipped."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
