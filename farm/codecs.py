"""Which video encoder a worker uses for output chunks, and its options.

``--codec auto`` (the default) is ``h264_nvenc`` on a GPU worker whose GPU has
an NVENC unit (L4, A10G, T4, RTX cards: the encode then costs the worker's
CPU next to nothing) and ``libx264`` everywhere else: CPU workers, and GPUs
without NVENC (A100, H100, H200). PyAV's wheels carry the nvenc encoder; the
probe opens it once per process, which fails cleanly where there is no GPU,
no NVENC unit or no driver library.

Both encoders keep the same output contract: H.264, yuv420p, every frame once
with its timestamp; crf maps to NVENC's constant-quality ``cq`` and the x264
preset names to NVENC's p1 (fastest) … p7 (best).
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache

SOFTWARE = "libx264"
NVENC = "h264_nvenc"

#: x264 preset → NVENC preset (p1 fastest … p7 slowest/best), by their place in each scale
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p1", "veryfast": "p2", "faster": "p3", "fast": "p4",
                 "medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7"}


def resolve_codec(codec: str, device_type: str) -> str:
    """The encoder to open: ``auto`` → NVENC on a CUDA device that has it, else libx264; a name stays."""
    if codec != "auto":
        return codec
    return NVENC if device_type == "cuda" and nvenc_works() else SOFTWARE


@cache
def nvenc_works() -> bool:
    """Whether an h264_nvenc encoder opens in this process (a tiny one, once)."""
    import av

    if NVENC not in av.codecs_available:
        return False
    try:
        ctx = av.CodecContext.create(NVENC, "w")
        ctx.width, ctx.height, ctx.pix_fmt, ctx.time_base = 256, 256, "yuv420p", Fraction(1, 25)
        ctx.open()
    except Exception:  # no GPU, no NVENC unit, no libnvidia-encode: FFmpeg says so in many ways
        return False
    return True


def encoder_options(codec: str, *, lossless: bool, crf: int, preset: str) -> dict[str, str]:
    """Options for ``codec``; the segment writer keeps only those the encoder knows."""
    if lossless:  # input chunks: x264 at qp 0, preset superfast, tune fastdecode (CAVLC, no deblocking):
        # bench/input_codec.py, bench/README.md
        return {"qp": "0", "preset": "superfast", "tune": "fastdecode"}
    if codec == NVENC:  # constant quality: cq plays crf's part once the bitrate cap is off (b=0)
        return {"rc": "vbr", "cq": str(crf), "b": "0", "preset": NVENC_PRESETS.get(preset, preset), "tune": "hq"}
    return {"crf": str(crf), "preset": preset}
