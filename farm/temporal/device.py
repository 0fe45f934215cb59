"""The pixel maths of :mod:`farm.temporal.dis` as torch functions, on any device, batched.

Gray conversion, warping with ``grid_sample``, the forward–backward
reliability mask with motion boundaries (Ruder et al. 2016, Sec. 3.2), the
separable Gaussian base layer and the two-band blend. Each takes and returns
(B,C,H,W) float32 tensors and matches its numpy twin in dis.py on the same
inputs (tests/test_temporal_torch.py): same flow convention, same thresholds,
same σ = 3 px kernel and reflected borders. The flow itself is in
:mod:`farm.temporal.tvl1`; the sequential blend in
:mod:`farm.temporal.device_coherence`.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from farm.temporal.dis import BASE_SIGMA

#: ITU-R BT.601 luma weights, as OpenCV's RGB2GRAY (what dis.to_gray uses)
LUMA = (0.299, 0.587, 0.114)


def channels_first(frames: torch.Tensor) -> torch.Tensor:
    """(B,H,W,3) → (B,3,H,W); a (B,3,H,W) or (B,1,H,W) tensor passes through."""
    if frames.ndim == 4 and frames.shape[-1] == 3 and frames.shape[1] != 3:
        return frames.permute(0, 3, 1, 2)
    return frames


def to_gray(frames: torch.Tensor) -> torch.Tensor:
    """RGB frames (B,H,W,3) or (B,3,H,W), uint8 or float in [0,1], → gray float32 (B,1,H,W) in [0, 1].

    A gray (B,H,W) or (B,1,H,W) input is only converted to float in [0, 1]."""
    x = frames.float() * (1 / 255 if frames.dtype == torch.uint8 else 1.0)
    if x.ndim == 3:
        return x[:, None]
    x = channels_first(x)
    if x.shape[1] == 1:
        return x
    # Python scalars, not a weight tensor: nothing to copy to the device on every call
    return x[:, 0:1] * LUMA[0] + x[:, 1:2] * LUMA[1] + x[:, 2:3] * LUMA[2]


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (B,C,H,W) at (x, y) + flow (B,2,H,W): ``out[y, x] = image[y + fy, x + fx]``.

    Bilinear, borders replicated; ``align_corners=True`` puts -1 and +1 on the
    centres of the first and last pixels, so integer coordinates are pixel
    centres, as in ``cv2.remap``."""
    _, _, h, w = flow.shape
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w)
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1)
    gx = (xs + flow[:, 0]) * (2.0 / max(w - 1, 1)) - 1.0
    gy = (ys + flow[:, 1]) * (2.0 / max(h - 1, 1)) - 1.0
    grid = torch.stack((gx, gy), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)


def _sq_norm(flow: torch.Tensor) -> torch.Tensor:
    return flow[:, :1] ** 2 + flow[:, 1:2] ** 2


def reliability_mask(flow_fwd: torch.Tensor, flow_bwd: torch.Tensor, *, boundary_weight: float = 0.0,
                     entered: bool = False) -> torch.Tensor:
    """dis.reliability_mask for (B,2,H,W) flows → float32 (B,1,H,W), 1 where frame t-1 can be trusted.

    Disoccluded: |w̃ + ŵ|² > 0.01(|w̃|² + |ŵ|²) + 0.5 with w̃ the forward flow
    warped onto frame t; motion boundary: |∇û|² + |∇v̂|² > 0.01|ŵ|² + 0.002
    (Ruder et al. 2016, Sec. 3.2; ``torch.gradient`` differences like ``np.gradient``);
    boundary pixels get ``boundary_weight``; with ``entered``, pixels whose flow leads
    out of frame t-1 get 0 (see dis.reliability_mask)."""
    w_tilde = warp(flow_fwd, flow_bwd)
    occluded = _sq_norm(w_tilde + flow_bwd) > 0.01 * (_sq_norm(w_tilde) + _sq_norm(flow_bwd)) + 0.5
    if entered:
        occluded |= _outside(flow_bwd)
    du_dy, du_dx = torch.gradient(flow_bwd[:, :1], dim=(-2, -1))
    dv_dy, dv_dx = torch.gradient(flow_bwd[:, 1:2], dim=(-2, -1))
    boundary = du_dx**2 + du_dy**2 + dv_dx**2 + dv_dy**2 > 0.01 * _sq_norm(flow_bwd) + 0.002
    mask = torch.where(boundary, boundary_weight, 1.0).to(torch.float32)
    return mask.masked_fill_(occluded, 0.0)


def _outside(flow: torch.Tensor) -> torch.Tensor:
    """(B,1,H,W): pixels whose flow lands outside the frame (beyond the outermost pixel centres)."""
    _, _, h, w = flow.shape
    x = torch.arange(w, device=flow.device, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
    y = torch.arange(h, device=flow.device, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
    return ((x < 0) | (x > w - 1) | (y < 0) | (y > h - 1)).unsqueeze(1)


@lru_cache(maxsize=16)
def _kernel(sigma: float, device: torch.device) -> torch.Tensor:
    """OpenCV's Gaussian for float images: 2·round(4σ)+1 taps (cv2.GaussianBlur with ksize (0,0))."""
    size = int(round(sigma * 8 + 1)) | 1
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return (k / k.sum()).to(device=device, dtype=torch.float32)


def _symmetric_index(n: int, r: int, device: torch.device) -> torch.Tensor:
    """Indices of a length-n axis padded by r on each side, OpenCV's BORDER_REFLECT (fedcba|abcdef|fedcba)."""
    i = torch.arange(-r, n + r, device=device)
    period = 2 * n
    i = torch.remainder(i, period)
    return torch.where(i < n, i, period - 1 - i)


def lowpass(image: torch.Tensor, sigma: float = BASE_SIGMA) -> torch.Tensor:
    """Separable Gaussian base layer of (B,C,H,W), reflected borders: dis.lowpass's twin."""
    k = _kernel(float(sigma), image.device).to(image.dtype)
    r = k.numel() // 2
    b, c, h, w = image.shape
    x = image.reshape(b * c, 1, h, w)
    x = x.index_select(-1, _symmetric_index(w, r, image.device))
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = x.index_select(-2, _symmetric_index(h, r, image.device))
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x.reshape(b, c, h, w)


def blend_bands(stylized: torch.Tensor, warped_prev: torch.Tensor, mask: torch.Tensor, strength: float,
                base_strength: float, sigma: float = BASE_SIGMA) -> torch.Tensor:
    """dis.blend_bands on (B,3,H,W) images and a (B,1,H,W) mask: the detail (image − lowpass) keeps
    ``mask·strength`` of the warped history, the base layer ``mask·base_strength``.

    One blur of the difference d = warped_prev − stylized does, the blur being linear:
    out = stylized + mask·(strength·d − (strength − base_strength)·lowpass(d))."""
    d = warped_prev - stylized
    base = lowpass(d, sigma)
    return stylized + mask * (strength * d - (strength - base_strength) * base)

