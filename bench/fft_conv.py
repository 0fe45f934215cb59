"""The network's two 9x9 convolutions computed through FFTs instead of directly (issue 18: fewer
multiplications without changing the look). Tried, not kept: see bench/README "Round 6".

Run by hand (never in CI), natively and held to AVX2 (MKL, which runs torch.fft, held too):

    .venv/bin/python bench/fft_conv.py
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
        .venv/bin/python bench/fft_conv.py --name fft_conv_avx2

One thread, float32, a 640x360 frame (the padded 648x368 the layers see), median ms of ``--calls`` calls:
the whole eager network (farm's ``cpu_eager``) for scale, then each 9x9 layer's convolution direct
(oneDNN, NCHW and channels-last) against the same cross-correlation as one circular FFT convolution of
the padded frame's size (the valid part of a circular correlation of that size has no wrap-around), the
kernels' spectra made once. The first layer (3 → 32 channels) is 40 % of the network's 4.47 GMAC; the
last (4 → 3) 5 %. Also the three parts of the FFT route for the first layer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, median, table, write_result  # noqa: E402

from farm.styles import multistyle  # noqa: E402


def timed(fn, calls: int) -> float:
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return median(seconds) * 1000.0


def fft_correlation(kernel: torch.Tensor, size: tuple[int, int]):
    """``F.conv2d(x, kernel)`` (valid) for frames of ``size`` as a function of x, through one rfft2 of the
    frame, a product with the kernels' conjugate spectra summed over input channels, and irfft2."""
    height, width = size
    padded = torch.zeros(*kernel.shape[:2], height, width)
    padded[..., :kernel.shape[-2], :kernel.shape[-1]] = kernel
    spectra = torch.fft.rfft2(padded).conj().resolve_conj()
    out_h, out_w = height - kernel.shape[-2] + 1, width - kernel.shape[-1] + 1

    def forward(x: torch.Tensor) -> torch.Tensor:
        product = (spectra * torch.fft.rfft2(x)[:, None]).sum(2)
        return torch.fft.irfft2(product, s=size)[..., :out_h, :out_w]

    return forward, spectra


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=9)
    parser.add_argument("--name", default="fft_conv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    env = environment()
    net = multistyle.load_multistyle()
    weights = torch.zeros(multistyle.NUM_STYLES)
    weights[19] = 1.0
    frame = torch.rand(1, 3, 360, 640, generator=torch.Generator().manual_seed(0))
    rows, out = [], {"environment": env, "frame": [640, 360], "layers": {}}
    with torch.inference_mode():
        out["network_ms"] = timed(lambda: net(frame, weights), args.calls)
        rows.append(["whole network (cpu_eager)", out["network_ms"], "-", "-", "-"])
        for name, layer in (("first 9x9, 3 -> 32", net.contract[0]), ("last 9x9, 4 -> 3", net.expand[2])):
            x = torch.rand(1, layer.w.shape[1], 368, 648, generator=torch.Generator().manual_seed(1))
            last = x.contiguous(memory_format=torch.channels_last)
            fft, spectra = fft_correlation(layer.w, (368, 648))
            direct = F.conv2d(x, layer.w)
            error = float((fft(x) - direct).abs().max() / direct.abs().max())
            row = {"direct_nchw_ms": timed(lambda: F.conv2d(x, layer.w), args.calls),
                   "direct_nhwc_ms": timed(lambda: F.conv2d(last, layer.w), args.calls),
                   "fft_ms": timed(lambda: fft(x), args.calls), "fft_relative_error": error,
                   "spectra_mib": spectra.numel() * spectra.element_size() / 2**20}
            if layer is net.contract[0]:
                signal = torch.fft.rfft2(x)[:, None]
                product = (spectra * signal).sum(2)
                row["fft_parts_ms"] = {
                    "rfft2 (3 channels)": timed(lambda: torch.fft.rfft2(x), args.calls),
                    "spectra product": timed(lambda: (spectra * signal).sum(2), args.calls),
                    "irfft2 (32 channels)": timed(lambda: torch.fft.irfft2(product, s=(368, 648)), args.calls)}
            out["layers"][name] = row
            rows.append([name, row["direct_nchw_ms"], row["direct_nhwc_ms"], row["fft_ms"], error])
    print(table(["layer", "direct NCHW ms", "direct NHWC ms", "FFT ms", "FFT max rel. error"], rows))
    print("first layer's FFT route, ms:", out["layers"]["first 9x9, 3 -> 32"]["fft_parts_ms"])
    write_result(args.name, out)


if __name__ == "__main__":
    main()
