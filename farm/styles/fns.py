"""Bring-your-own style: the ``TransformerNet`` of pytorch/examples ``fast_neural_style``.

Johnson, Alahi & Fei-Fei (ECCV 2016, "Perceptual losses for real-time style
transfer and super-resolution") with instance normalisation (Ulyanov et al.
2016) and nearest-upsample + conv decoding in place of transposed convs, as
that example implements it. The layer names below are the example's, so its
checkpoints (candy, mosaic, udnie, rain_princess ``.pth``) load as they are:

    conv1 (9×9, 3→32) in1 · conv2 (3×3/2, →64) in2 · conv3 (3×3/2, →128) in3
    res1..res5: conv1 in1 ReLU conv2 in2, plus the input
    deconv1 (×2, 3×3, →64) in4 · deconv2 (×2, 3×3, →32) in5 · deconv3 (9×9, →3)

Every conv is reflect-padded by kernel//2 and has a bias; every InstanceNorm2d
is affine. The network works on 0–255 pixels; :meth:`TransformerNet.stylize`
wraps it for farm's [0,1] frames.

Checkpoints are opened with ``torch.load(weights_only=True)``, which refuses
any pickle that would build objects other than tensors and plain containers,
so a malicious file is rejected without running its code.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from farm.errors import InputError, StyleError
from farm.sources import localize
from farm.store import sha256_file
from farm.styles.multistyle import pad_to_multiple

#: instance-norm buffers that torch < 0.4 saved and the example deletes before loading
LEGACY_KEY = re.compile(r"in\d+\.(running_mean|running_var|num_batches_tracked)$")


class ConvLayer(nn.Module):
    """Reflection padding of kernel//2, then a conv with bias (``conv2d``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(self.reflection_pad(x))


class UpsampleConvLayer(nn.Module):
    """Nearest-neighbour upsampling, then :class:`ConvLayer`'s padding and conv (fewer checkerboards than deconv)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int | None = None):
        super().__init__()
        self.upsample = upsample
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))) (He et al. 2016, as used by Johnson et al. 2016)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, kernel_size=3, stride=1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        return self.in2(self.conv2(out)) + x


class TransformerNet(nn.Module):
    """The fast-neural-style network: (N,3,H,W) 0–255 pixels in, unclamped 0–255-ish pixels out.

    ``forward`` is the example's, number for number; farm calls
    :meth:`stylize` ([0,1] in and out, any H and W).
    """

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, kernel_size=9, stride=1)
        self.in1 = nn.InstanceNorm2d(32, affine=True)
        self.conv2 = ConvLayer(32, 64, kernel_size=3, stride=2)
        self.in2 = nn.InstanceNorm2d(64, affine=True)
        self.conv3 = ConvLayer(64, 128, kernel_size=3, stride=2)
        self.in3 = nn.InstanceNorm2d(128, affine=True)
        self.res1 = ResidualBlock(128)
        self.res2 = ResidualBlock(128)
        self.res3 = ResidualBlock(128)
        self.res4 = ResidualBlock(128)
        self.res5 = ResidualBlock(128)
        self.deconv1 = UpsampleConvLayer(128, 64, kernel_size=3, stride=1, upsample=2)
        self.in4 = nn.InstanceNorm2d(64, affine=True)
        self.deconv2 = UpsampleConvLayer(64, 32, kernel_size=3, stride=1, upsample=2)
        self.in5 = nn.InstanceNorm2d(32, affine=True)
        self.deconv3 = ConvLayer(32, 3, kernel_size=9, stride=1)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.in1(self.conv1(x)))
        y = self.relu(self.in2(self.conv2(y)))
        y = self.relu(self.in3(self.conv3(y)))
        y = self.res5(self.res4(self.res3(self.res2(self.res1(y)))))
        y = self.relu(self.in4(self.deconv1(y)))
        y = self.relu(self.in5(self.deconv2(y)))
        return self.deconv3(y)

    def stylize(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) in [0,1] → stylized (N,3,H,W) in [0,1]: ×255 in, clamp to 0–255 and ÷255 out, as the example saves.

        Odd sizes would come back a few pixels larger (two stride-2 convs, two
        ×2 upsamplings), so frames are reflect-padded to a multiple of 4 and cropped.
        """
        padded, h, w = pad_to_multiple(x)
        return self.unit_range(padded)[..., :h, :w]

    def unit_range(self, x: torch.Tensor) -> torch.Tensor:
        """The network on [0,1] frames whose sides are multiples of 4: ×255 in, clamp to 0–255 and ÷255 out."""
        return self(x * 255.0).clamp(0.0, 255.0) / 255.0


def drop_legacy_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove the instance norms' ``running_mean``/``running_var`` that old checkpoints carry (the example does too)."""
    return {key: value for key, value in state.items() if not LEGACY_KEY.search(key)}


def read_checkpoint(path: Path) -> object:
    """``torch.load`` with ``weights_only=True``: tensors and containers only, never code from the pickle."""
    if not path.is_file():
        raise StyleError(f"model file not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pickle-protocol notes; a refusal raises and says why
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise StyleError(
            f"{path}: refused by torch's weights-only loader ({refusal_reason(exc)}); "
            "only plain state dicts load, code in a checkpoint never runs"
        ) from None
    except Exception as exc:  # RuntimeError (bad zip, magic number), EOFError, KeyError ... from a non-checkpoint
        raise StyleError(f"{path} is not a torch checkpoint ({type(exc).__name__}: {one_line(exc)})") from None


def refusal_reason(exc: BaseException) -> str:
    """The specific line of a weights-only refusal (which global or opcode), without torch's generic advice."""
    generic = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith(generic)]
    return one_line(specific[0] if specific else "not a weights-only pickle")


def one_line(text: object, limit: int = 160) -> str:
    """First line of a message, shortened: errors reach the CLI as one line."""
    lines = str(text).strip().splitlines()
    return (lines[0] if lines else "")[:limit]


def check_state_dict(state: object, expected: Mapping[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors if they are exactly the example's keys and shapes; a StyleError naming the first misfit."""
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise StyleError(f"{path} is not a state dict (found {type(state).__name__}); expected a TransformerNet .pth")
    state = drop_legacy_keys(state)
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        count = len(missing) + len(unexpected)
        raise StyleError(f"{path} is not a fast-neural-style TransformerNet: {what} ({count} key(s) differ)")
    for key, reference in expected.items():
        value = state[key]
        if not isinstance(value, torch.Tensor) or not value.is_floating_point():
            raise StyleError(f"{path}: {key!r} is not a float tensor")
        if value.shape != reference.shape:
            raise StyleError(f"{path}: {key!r} has shape {tuple(value.shape)}, expected {tuple(reference.shape)}")
    return {key: state[key].to(torch.float32) for key in expected}


def load_fns(path: Path | str) -> TransformerNet:
    """A fast-neural-style ``.pth`` (a TransformerNet state dict) as a ready, frozen network on the CPU."""
    path = Path(path)
    net = TransformerNet()
    state = check_state_dict(read_checkpoint(path), net.state_dict(), path)
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


class CheckpointNetwork(nn.Module):
    """A TransformerNet behind the interface farm's other networks have: (frames in [0,1], style vector) → [0,1].

    A checkpoint is one style, so the style vector is empty and ignored; the
    caller pads to a multiple of 4 and crops, as for the built-in network.
    """

    def __init__(self, net: TransformerNet):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        return self.net.unit_range(x)


def local_checkpoint(uri: str) -> Path:
    """The checkpoint as a local file: the path itself, or an ``s3://`` object fetched to scratch."""
    try:
        path = localize(uri)
    except InputError:
        raise StyleError(f"model file not found: {uri}") from None
    if path.is_dir():
        raise StyleError(f"{uri} is a folder, not a model file")
    return path


def fetch_checkpoint(uri: str, sha256: str) -> Path:
    """:func:`local_checkpoint`, checked against the hash the job recorded."""
    path = local_checkpoint(uri)
    actual = sha256_file(path)
    if actual != sha256:
        raise StyleError(f"{uri} changed since the style was recorded (sha256 {actual[:12]}, expected {sha256[:12]}); "
                         "submit it again as a new job or re-add the style")
    return path
