"""DeviceCoherence: :class:`farm.temporal.dis.Coherence` in torch, for frames already on the device.

Everything but the blend recursion is batched: for a batch of B frames the
2·B flows (backward and forward for each pair, the pair that links the
previous batch's last frame to this batch's first included) go through
:func:`farm.temporal.tvl1.estimate_flow` in one call, the masks in another;
then each output is the blend of its stylization with the previous *output*
warped along the flow, which is sequential by nature (Ruder et al. 2016).
Frames never leave the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from farm.config import TemporalOptions
from farm.temporal import tvl1
from farm.temporal.device import blend_bands, reliability_mask, to_gray, warp
from farm.temporal.dis import BASE_SIGMA, BASE_STRENGTH, BOUNDARY_WEIGHT

#: (src gray, dst gray, scale) → flow, all (B,1,H,W) / (B,2,H,W) tensors
FlowFn = Callable[..., torch.Tensor]


@dataclass(frozen=True)
class Motion:
    """A batch's flows, from :meth:`DeviceCoherence.motion`: computed once, for the steepening by motion
    (farm/paint.py) and for the blend (:meth:`DeviceCoherence.step_batch`)."""

    #: the frames' gray (B,1,H,W) in [0,1]
    gray: torch.Tensor
    #: whether the batch's first frame is blended with the history (else it passes through)
    linked: bool
    #: backward flows (ŵ, px of the frames) of the frames blended: (B,2,H,W) when ``linked``, else (B−1,2,H,W)
    #: for frames 1…B−1
    backward: torch.Tensor
    #: the blend's reliability masks, one per flow (·,1,H,W)
    masks: torch.Tensor


class DeviceCoherence:
    """Keeps the previous input (gray) and output on the device; blends each new frame.

    The first frame (and the first after :meth:`reset`, or after a change of
    frame size) passes through; with ``enabled=False`` or ``strength=0`` every
    frame does, and no flow is computed.
    """

    def __init__(self, options: TemporalOptions | None = None, *, base_strength: float = BASE_STRENGTH,
                 base_sigma: float = BASE_SIGMA, flow: FlowFn = tvl1.estimate_flow):
        self.options = options or TemporalOptions()
        self.base_strength = min(self.options.strength, base_strength)
        #: σ (px of the frames) of the band split, as in :class:`farm.temporal.dis.Coherence`
        self.base_sigma = base_sigma
        self.flow = flow
        self.reset()

    def reset(self) -> None:
        """Forget the history: the next frame passes through."""
        self.prev_gray: torch.Tensor | None = None  # (1,1,H,W) float in [0,1]
        self.prev_out: torch.Tensor | None = None   # (1,3,H,W) float in [0,1]

    @property
    def active(self) -> bool:
        return self.options.enabled and self.options.strength > 0

    def step(self, frame: torch.Tensor, stylized: torch.Tensor) -> torch.Tensor:
        """One frame: uint8 (H,W,3) or (3,H,W), stylization float (3,H,W) in [0,1] → (3,H,W)."""
        return self.step_batch(frame[None], stylized[None])[0]

    def motion(self, frames: torch.Tensor) -> Motion:
        """The flows and masks :meth:`step_batch` blends ``frames`` (uint8 (B,H,W,3) or (B,3,H,W)) with, for
        a caller that needs the motion before it has the stylizations; hand them back to :meth:`step_batch`
        (before any :meth:`reset`). Computes nothing when the pass is off (empty flows)."""
        gray = to_gray(frames)
        if not self.active:
            return Motion(gray, False, *self._flows(gray[:0]))
        linked = self.prev_gray is not None and self.prev_gray.shape[-2:] == gray.shape[-2:]
        seq = torch.cat((self.prev_gray, gray)) if linked else gray
        bwd, masks = self._flows(seq)  # pair k links seq[k] → seq[k+1]
        return Motion(gray, linked, bwd, masks)

    def step_batch(self, frames: torch.Tensor, stylized: torch.Tensor, motion: Motion | None = None) -> torch.Tensor:
        """Frames uint8 (B,H,W,3) or (B,3,H,W) and their stylizations float (B,3,H,W) in [0,1], on one
        device, in order → outputs float32 (B,3,H,W) in [0,1] on that device. ``motion``: these frames'
        :meth:`motion`, when the caller has it already (None: computed here)."""
        motion = self.motion(frames) if motion is None else motion
        gray, linked, bwd, masks = motion.gray, motion.linked, motion.backward, motion.masks
        out = stylized.float()
        if not self.active:
            self.prev_gray, self.prev_out = gray[-1:], out[-1:]
            return out
        prev_out = self.prev_out if linked else None
        results = []
        for i in range(out.shape[0]):
            k = i if linked else i - 1
            if k < 0:
                current = out[i:i + 1]
            else:
                warped = warp(prev_out, bwd[k:k + 1])
                current = blend_bands(out[i:i + 1], warped, masks[k:k + 1], self.options.strength,
                                      self.base_strength, self.base_sigma)
                # the two-band blend is not a convex combination per pixel: keep output and history in range
                current = current.clamp_(0.0, 1.0)
            results.append(current)
            prev_out = current
        self.prev_gray, self.prev_out = gray[-1:], prev_out
        return torch.cat(results)

    def _flows(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For the pairs (seq[k], seq[k+1]): backward flows on seq[k+1]'s grid and reliability masks."""
        if seq.shape[0] < 2:
            return seq.new_zeros(0, 2, *seq.shape[-2:]), seq.new_zeros(0, 1, *seq.shape[-2:])
        prev, cur = seq[:-1], seq[1:]
        flows = self.flow(torch.cat((cur, prev)), torch.cat((prev, cur)), scale=self.options.flow_scale)
        bwd, fwd = flows.split(cur.shape[0])
        return bwd, reliability_mask(fwd, bwd, boundary_weight=BOUNDARY_WEIGHT, entered=True)
