"""Dense optical flow in torch with no weights: TV-L1, coarse to fine.

The method is the duality-based TV-L1 of Zach, Pock & Bischof 2007 ("A duality
based approach for realtime TV-L1 optical flow") with the improvements of
Wedel, Pock, Zach, Bischof & Cremers 2009 ("An improved algorithm for TV-L1
optical flow"): several warps per pyramid level and a median filter of the
flow after each warp; the numerical scheme follows Sánchez Pérez, Meinhardt-
Llopis & Facciolo 2013 (IPOL, "TV-L1 optical flow estimation").

Why TV-L1 and not DIS-style patch search: every step of TV-L1 is the same
pointwise or 3x3-stencil operation over all pixels of all frame pairs at once
(thresholding, a projected gradient step, ``grid_sample`` for the warps), which
is what a GPU runs well and what batches for free; DIS's inverse search is a
per-patch Gauss-Newton loop with data-dependent patch overlaps, far from a
tensor program. The price is iterations: on a CPU, OpenCV's DIS stays cheaper
(bench/flow_quality.py measures both).

Flow convention as in :mod:`farm.temporal.dis`: ``estimate_flow(src, dst)`` is
(B,2,H,W) float32 with (dx, dy) per pixel of ``src``, such that
``src[y, x] ≈ dst[y + fy, x + fx]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from farm.temporal.device import to_gray, warp

#: data-term weight λ for intensities in [0, 255] (IPOL's default; 0.08 and 0.3 measured no better overall)
LAMBDA = 0.15
#: coupling θ between the data and the smoothness sub-problems (Zach et al.: 0.3)
THETA = 0.3
#: dual step τ (≤ 1/8 for the scheme to converge; IPOL uses 0.25 with their forward/backward differences)
TAU = 0.25
#: warps per pyramid level (Wedel et al.: the linearisation is only valid near the current estimate) and
#: fixed-point iterations per warp. bench/flow_quality.py --sweep on the known-motion clips at 320x240: 4 x 15
#: is within 1.03x of DIS's E_warp ratio on every clip (mean 0.92x); 2 x 10 costs a third (1.05x, 0.95x) but
#: misses a 6.5 px/frame pan at 160x120 (EPE 1.16 px vs 0.09): too few steps on a 2-level pyramid
WARPS = 4
ITERATIONS = 15
#: pyramid: each level is this fraction of the one above; the coarsest is at least MIN_SIZE px tall/wide
PYRAMID_FACTOR = 0.5
MIN_SIZE = 16
MAX_LEVELS = 6


def _gaussian_kernel(sigma: float, device: torch.device) -> torch.Tensor:
    radius = max(1, math.ceil(2 * sigma))
    x = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (replicated borders) of a (B,1,H,W) image: anti-aliasing before a downsample."""
    k = _gaussian_kernel(sigma, image.device)
    r = k.numel() // 2
    x = F.pad(image, (r, r, 0, 0), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, r, r), mode="replicate")
    return F.conv2d(x, k.view(1, 1, -1, 1))


def _resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)


def _pyramid(image: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """Finest first; each level blurred by IPOL's σ = 0.8·sqrt(1/η² − 1) before it is resampled."""
    sigma = 0.8 * math.sqrt(1 / PYRAMID_FACTOR**2 - 1)
    out = [image]
    for _ in range(levels - 1):
        h, w = out[-1].shape[-2:]
        size = (max(1, round(h * PYRAMID_FACTOR)), max(1, round(w * PYRAMID_FACTOR)))
        out.append(_resize(_smooth(out[-1], sigma), size))
    return out


def _levels(h: int, w: int, max_levels: int) -> int:
    levels = 1
    while levels < max_levels and min(h, w) * PYRAMID_FACTOR**levels >= MIN_SIZE:
        levels += 1
    return levels


def _centred_gradient(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    gy, gx = torch.gradient(image, dim=(-2, -1))
    return gx, gy


def _forward_gradient(u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward differences, zero on the last column/row (Neumann boundary, IPOL's scheme)."""
    gx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1, 0, 0))
    gy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return gx, gy


def _divergence(px: torch.Tensor, py: torch.Tensor) -> torch.Tensor:
    """The negative adjoint of :func:`_forward_gradient` (backward differences).

    The duals' last column (px) and row (py) stay 0, as the forward gradient is 0 there,
    so px[x] − px[x−1] with px[−1] = 0 gives the boundary cases too."""
    div = px + py
    div[..., :, 1:] -= px[..., :, :-1]
    div[..., 1:, :] -= py[..., :-1, :]
    return div


def _sort2(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.minimum(a, b), torch.maximum(a, b)


def _median3_of(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.maximum(torch.minimum(a, b), torch.minimum(torch.maximum(a, b), c))


def _median3(u: torch.Tensor) -> torch.Tensor:
    """Exact 3x3 median (replicated borders): Wedel et al.'s outlier removal after each warp.

    Sort each vertical triple once; the median of the 9 is then the median of
    (max of the 3 minima, median of the 3 medians, min of the 3 maxima) of the
    three neighbouring columns — 20 min/max operations instead of a sort."""
    x = F.pad(u, (1, 1, 1, 1), mode="replicate")
    top, mid, bot = x[..., :-2, :], x[..., 1:-1, :], x[..., 2:, :]
    lo, hi = _sort2(top, mid)
    hi, high = _sort2(hi, bot)
    low, middle = _sort2(lo, hi)  # each column sorted: low <= middle <= high
    cols = lambda t: (t[..., :-2], t[..., 1:-1], t[..., 2:])  # noqa: E731
    l0, l1, l2 = cols(low)
    m0, m1, m2 = cols(middle)
    h0, h1, h2 = cols(high)
    max_low = torch.maximum(torch.maximum(l0, l1), l2)
    min_high = torch.minimum(torch.minimum(h0, h1), h2)
    return _median3_of(max_low, _median3_of(m0, m1, m2), min_high)


def _dual_step(u: torch.Tensor, px: torch.Tensor, py: torch.Tensor, step: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Chambolle's projected gradient step for the duals of one flow component (Zach et al. eq. 13)."""
    gx, gy = _forward_gradient(u)
    norm = torch.sqrt(gx * gx + gy * gy).mul_(step).add_(1.0)
    return (px + step * gx).div_(norm), (py + step * gy).div_(norm)


def _iterate(u1, u2, p11, p12, p21, p22, rho_c, wx, wy, inv_g2, lt: float, theta: float, step: float,
             iterations: int):
    """``iterations`` fixed-point steps of Zach et al.'s scheme at one warp: the data term, then the TV term."""
    for _ in range(iterations):
        # the data term's pointwise minimiser (Zach et al. eq. 11) is a clamped step along the gradient:
        # v = u − clamp(ρ/|∇I1|², −λθ, λθ)·∇I1
        c = (rho_c + wx * u1 + wy * u2).mul_(inv_g2).clamp_(-lt, lt)
        u1 = u1 - c * wx + theta * _divergence(p11, p12)
        u2 = u2 - c * wy + theta * _divergence(p21, p22)
        p11, p12 = _dual_step(u1, p11, p12, step)
        p21, p22 = _dual_step(u2, p21, p22, step)
    return u1, u2, p11, p12, p21, p22


def _solve_level(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, *, lam: float, theta: float,
                 tau: float, warps: int, iterations: int, median: bool) -> torch.Tensor:
    """Refine the flow ``u`` (B,2,H,W) between ``i0`` and ``i1`` (B,1,H,W, in [0,255]) at one level."""
    i1x, i1y = _centred_gradient(i1)
    grads = torch.cat((i1, i1x, i1y), dim=1)
    u1, u2 = u[:, :1].contiguous(), u[:, 1:].contiguous()
    duals = [torch.zeros_like(u1) for _ in range(4)]  # p11, p12, p21, p22: duals of u1 and u2 (x, y each)
    for _ in range(warps):
        w1 = warp(grads, torch.cat((u1, u2), dim=1))
        iw, wx, wy = w1[:, :1], w1[:, 1:2], w1[:, 2:3]
        inv_g2 = 1.0 / (wx * wx + wy * wy).clamp_min(1e-6)
        rho_c = iw - wx * u1 - wy * u2 - i0
        u1, u2, *duals = _iterate(u1, u2, *duals, rho_c, wx, wy, inv_g2, lam * theta, theta, tau / theta,
                                  iterations)
        if median:
            u1, u2 = _median3(u1), _median3(u2)
    return torch.cat((u1, u2), dim=1)


def _prepare(image: torch.Tensor) -> torch.Tensor:
    """Gray (B,H,W) / (B,1,H,W) or RGB frames, uint8 or float in [0,1] → float32 (B,1,H,W) in [0, 255]:
    the range λ's customary values are given for."""
    return to_gray(image) * 255.0


def estimate_flow(src: torch.Tensor, dst: torch.Tensor, *, scale: float = 0.5, lam: float = LAMBDA,
                  theta: float = THETA, tau: float = TAU, warps: int = WARPS, iterations: int = ITERATIONS,
                  max_levels: int = MAX_LEVELS, median: bool = True) -> torch.Tensor:
    """Dense TV-L1 flow from ``src`` to ``dst`` for a batch of pairs → float32 (B,2,H,W) as (dx, dy).

    ``src``/``dst``: gray (B,H,W) or (B,1,H,W), or RGB (B,3,H,W); uint8 or
    float in [0,1]; on any device. ``src[y,x] ≈ dst[y + F[:,1,y,x], x + F[:,0,y,x]]``.
    With ``scale < 1`` the flow is computed on frames resized by ``scale``
    (area-averaged, as dis.py does) and brought back to full size with its
    vectors multiplied by the inverse factors.
    """
    i0, i1 = _prepare(src), _prepare(dst)
    h, w = i0.shape[-2:]
    sh, sw = max(8, round(h * scale)), max(8, round(w * scale))
    if (sh, sw) != (h, w):
        i0, i1 = (F.interpolate(x, size=(sh, sw), mode="area") for x in (i0, i1))
    levels = _levels(sh, sw, max_levels)
    pyr0, pyr1 = _pyramid(i0, levels), _pyramid(i1, levels)
    ch, cw = pyr0[-1].shape[-2:]
    u = torch.zeros(i0.shape[0], 2, ch, cw, device=i0.device, dtype=torch.float32)
    for a, b in zip(reversed(pyr0), reversed(pyr1)):
        u = _upscale(u, a.shape[-2:])
        u = _solve_level(a, b, u, lam=lam, theta=theta, tau=tau, warps=warps, iterations=iterations,
                         median=median)
    return _upscale(u, (h, w))


def _upscale(flow: torch.Tensor, size) -> torch.Tensor:
    """Resize a flow field and scale its vectors by the size ratios."""
    h, w = flow.shape[-2:]
    th, tw = int(size[0]), int(size[1])
    if (th, tw) == (h, w):
        return flow
    out = _resize(flow, (th, tw))
    return torch.cat((out[:, :1] * (tw / w), out[:, 1:] * (th / h)), dim=1)
