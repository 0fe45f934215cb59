"""Colour: the source's colour description, carried to the output, and the RGB <-> YUV conversions
that use it.

A video's colour description is four numbers (ITU-T H.273, FFmpeg's AVCOL_*):
primaries, transfer, matrix and range. The matrix and range decide how YUV
becomes the RGB the networks paint and back; primaries and transfer say what
the RGB means. farm reads them from the source's first decoded frame, uses the
matrix and range for every conversion (decode, segments, back to the
output's YUV) and tags every segment and the output with all four, so an HD
clip tagged BT.709 comes out tagged BT.709. An untagged source gets what
players assume for it (BT.709 for HD, BT.601 for SD) and the output says so
in its tags. HDR (PQ or HLG transfer, BT.2020) is tone-mapped to SDR BT.709 on
decode (farm/video/hdr.py), said in a note: the networks paint SDR pictures,
and an 8-bit GIF cannot show HDR.

Conversions use accurate rounding and full (bilinear) chroma on the way to
RGB. (swscale's fast default path is off by 1-2 levels on most pixels and
upsamples chroma by repetition.) A lossless segment keeps exactly the YUV
planes it is given; the loss in source -> RGB -> yuv420p -> RGB is the 4:2:0
chroma itself: within +-1 for 99.6 % of values on bikes.mp4, 93.6 % on
bigbuckbunny.mp4 (saturated cartoon edges), far less on hard-edged synthetic
colour patterns. pix_fmt="yuv444p" keeps every value within +-2;
codec="libx264rgb", pix_fmt="rgb24" is bit-exact RGB (about 3x the bytes).
"""

from __future__ import annotations

import av
import numpy as np
from av.video.reformatter import Interpolation
from pydantic import BaseModel, ConfigDict

from farm.video import hdr

_I = Interpolation
TO_RGB = _I.BILINEAR | _I.ACCURATE_RND | _I.FULL_CHR_H_INT | _I.FULL_CHR_H_INP
TO_YUV = _I.AREA | _I.ACCURATE_RND  # 2x2 chroma average: the inverse of the bilinear upsampling above

# AVCOL_* numbers (libavutil/pixfmt.h, the same as H.273's)
UNSPECIFIED = 2
BT709, BT470BG, SMPTE170M, SMPTE240M, FCC, BT2020NC, BT2020C = 1, 5, 6, 7, 4, 9, 10
LIMITED, FULL = 1, 2  # AVCOL_RANGE_MPEG, AVCOL_RANGE_JPEG
PQ, HLG = 16, 18  # AVCOL_TRC_SMPTE2084, AVCOL_TRC_ARIB_STD_B67

# the matrices swscale converts with, by AVCOL_SPC
_SWSCALE_MATRIX = {BT709: "ITU709", BT470BG: "ITU601", SMPTE170M: "ITU601", SMPTE240M: "SMPTE240M", FCC: "FCC",
                   BT2020NC: "BT2020", BT2020C: "BT2020"}
_TRANSFER_NAMES = {PQ: "PQ", HLG: "HLG"}


class Colour(BaseModel):
    """A colour description (AVCOL_* numbers). The default is what farm's segments always were:
    BT.601 matrix, limited range, primaries and transfer unspecified."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    primaries: int = UNSPECIFIED
    transfer: int = UNSPECIFIED
    matrix: int = SMPTE170M
    range: int = LIMITED

    @property
    def swscale_matrix(self) -> str:
        return _SWSCALE_MATRIX.get(self.matrix, "ITU601")

    @property
    def swscale_range(self) -> str:
        return "JPEG" if self.range == FULL else "MPEG"

    @property
    def output(self) -> Colour:
        """What farm writes for a source of this colour: the same, except HDR, which becomes SDR BT.709."""
        return SDR_BT709 if self.hdr else self

    @property
    def hdr(self) -> str | None:
        """"PQ" or "HLG" for an HDR transfer, else None."""
        return _TRANSFER_NAMES.get(self.transfer)

    def tag(self, target: av.video.codeccontext.VideoCodecContext) -> None:
        """Write the description into an encoder's context (and so into the stream's headers)."""
        target.colorspace, target.color_range = self.matrix, self.range
        target.color_primaries, target.color_trc = self.primaries, self.transfer


SDR_BT709 = Colour(primaries=BT709, transfer=BT709, matrix=BT709, range=LIMITED)


def hdr_note(colour: Colour) -> str | None:
    """What the user should know about an HDR source, or None for SDR."""
    if colour.hdr is None:
        return None
    return (f"HDR source ({colour.hdr}, BT.2020): tone-mapped to SDR BT.709 (extended Reinhard, "
            f"{hdr.PEAK_NITS:g}-nit peak, {hdr.REFERENCE_WHITE:g}-nit reference white); the video and GIF are SDR")


def describe(frame: av.VideoFrame) -> Colour:
    """The colour description of a decoded frame; an unspecified matrix or range gets what players
    assume (BT.709 from 1280x720 up, BT.601 below; full range for JPEG-style pixel formats)."""
    hd = frame.width >= 1280 or frame.height > 576
    matrix = frame.colorspace if frame.colorspace in _SWSCALE_MATRIX else (BT709 if hd else SMPTE170M)
    full = frame.format.name.startswith("yuvj")
    colour_range = frame.color_range if frame.color_range in (LIMITED, FULL) else (FULL if full else LIMITED)
    return Colour(primaries=frame.color_primaries, transfer=frame.color_trc, matrix=matrix, range=colour_range)


def to_rgb_array(frame: av.VideoFrame, colour: Colour) -> np.ndarray:
    """A decoded frame as (H, W, 3) uint8 RGB through ``colour``'s matrix and range; an HDR frame
    tone-mapped to SDR BT.709 (farm/video/hdr.py)."""
    if frame.format.is_rgb:
        return frame.to_ndarray(format="rgb24")
    if colour.hdr:
        rgb16 = frame.to_ndarray(format="rgb48le", interpolation=TO_RGB, src_colorspace=colour.swscale_matrix,
                                 src_color_range=colour.swscale_range)
        return hdr.to_sdr(rgb16, colour.hdr)
    return frame.to_ndarray(format="rgb24", interpolation=TO_RGB, src_colorspace=colour.swscale_matrix,
                            src_color_range=colour.swscale_range)


def from_rgb_array(rgb: np.ndarray, pix_fmt: str, colour: Colour) -> av.VideoFrame:
    """(H, W, 3) uint8 RGB as a frame of ``pix_fmt`` through ``colour``'s matrix and range, tagged with it."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    if av.VideoFormat(pix_fmt).is_rgb:
        return frame if pix_fmt == "rgb24" else frame.reformat(format=pix_fmt)
    # primaries and transfer are tags only (the encoder's context writes them): asking swscale for them
    # would make it convert the colours (FFmpeg 8 manages colour), and the RGB already means them
    return frame.reformat(format=pix_fmt, interpolation=TO_YUV, dst_colorspace=colour.swscale_matrix,
                          dst_color_range=colour.swscale_range)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float RGB in [0,1] (a painted frame) → uint8, rounded, out-of-range values clipped."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
