"""The int8 export's activation rounding, rebuilt on top of farm's bare float networks, for the tests only.

Magenta's arbitrary-style exports fake-quantize every activation (the input,
each conv's output, each step of the instance norm, residual sums, the
output). ``farm/styles/arbitrary.py`` keeps its modules bare, as
pytorch/examples keeps ``transformer_net.py``; this module reproduces the
rounding by forward hooks on those modules (and a decomposed normalisation in
place of the fused one), so tests can compare against onnxruntime's literal
int8 semantics.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from farm.styles import arbitrary as A

QuantTable = Mapping[str, tuple[float, int]]


def quant_table(model, values: A.Tensors) -> dict[str, tuple[float, int]]:
    """(scale, zero point) of every activation QuantizeLinear, keyed by the quantized tensor's name."""
    table = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[1] in values and node.input[2] in values:
            table[node.output[0]] = (float(values[node.input[1]]), int(values[node.input[2]]))
    return table


def export_table(path) -> dict[str, tuple[float, int]]:
    """The activation quantization of the export at ``path``."""
    model = A.load_graph(path)
    return quant_table(model, A.graph_constants(model))


def fake_quant(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """QuantizeLinear then DequantizeLinear to int8: round half to even, saturate, scale back."""
    q = torch.clamp(torch.round(x / scale) + zero_point, -128, 127)
    return (q - zero_point) * scale


class QuantInstanceNorm(nn.Module):
    """The export's TF "batchnorm" decomposition, each step rounded to int8 as the graph does:
    μ, (x−μ)², σ², σ²+ε, 1/√·, γ/√·, μγ/√·, β−μγ/√·, xγ/√·. Its input (the conv output) is rounded too."""

    def __init__(self, scope: str, table: QuantTable):
        super().__init__()
        self.scope, self.table = scope, table

    def q(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return fake_quant(x, *self.table[name])

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        q, name = self.q, f"{self.scope}/StyleNorm/"
        x, gamma, beta = q(f"{self.scope}/Conv2D", x), gamma[..., None, None], beta[..., None, None]
        mean = q(name + "moments/mean", x.mean(dim=(2, 3), keepdim=True))
        sq = q(name + "moments/SquaredDifference_int8", (x - mean) ** 2)
        var = q(name + "moments/variance", sq.mean(dim=(2, 3), keepdim=True))
        inv = q(name + "batchnorm/Rsqrt_int8", torch.rsqrt(q(name + "batchnorm/add", var + A.EPS)))
        mul = q(name + "batchnorm/mul", inv * gamma)
        shift = q(name + "batchnorm/sub", beta - q(name + "batchnorm/mul_2", mean * mul))
        return q(name + "batchnorm/mul_1", x * mul) + shift


def round_output(module: nn.Module, name: str, table: QuantTable) -> None:
    module.register_forward_hook(lambda _m, _args, out: fake_quant(out, *table[name]))


def round_input(module: nn.Module, index: int, name: str, table: QuantTable) -> None:
    def hook(_m, args):
        return (*args[:index], fake_quant(args[index], *table[name]), *args[index + 1:])

    module.register_forward_pre_hook(hook)


def output_name(layer: nn.Module) -> str | None:
    """The export's name of the rounded tensor a layer outputs, or None where the graph does not round it."""
    if isinstance(layer, A.MobileConv):
        if layer.scope == "mobilenet_conv/Conv":
            return "mobilenet_conv/Conv/BiasAdd_int8"
        return layer.scope + ("/Relu6" if layer.relu6 else "/BatchNorm/FusedBatchNormV3")
    if isinstance(layer, A.InvertedResidual):
        return f"{layer.scope}/add" if layer.skip else None
    if isinstance(layer, A.GlobalMean):
        return "bottleneck/Mean"
    if isinstance(layer, A.ContractLayer):
        return f"{layer.scope}/Relu"
    if isinstance(layer, A.StyleLayer):
        return f"{layer.scope}/Relu" if layer.relu else f"{layer.scope}/StyleNorm/batchnorm/add_1"
    if isinstance(layer, A.StyleProjection):
        return f"{layer.scope}/BiasAdd"
    if isinstance(layer, A.ResidualBlock):
        return f"{layer.scope}/add"
    return None


def emulate_int8(net: nn.Module, table: QuantTable) -> nn.Module:
    """Make a loaded predictor or transformer round its activations like the export (in place)."""
    for layer in list(net.modules()):
        name = output_name(layer)
        if name is not None:
            round_output(layer, name, table)
        if isinstance(layer, A.StyleLayer):
            layer.norm = QuantInstanceNorm(layer.scope, table)
    if isinstance(net, A.StylePredictor):
        round_input(net, 0, "style_image_int8", table)
    else:
        round_input(net, 1, "mobilenet_conv/Conv/BiasAdd_int8", table)
        round_input(net.contract[0], 0, "transformer/contract/MirrorPad_int8", table)
        round_output(net, "transformer/expand/conv3/conv/Sigmoid_int8", table)
    return net


def load_quantized() -> tuple[A.StylePredictor, A.ArbitraryTransformer]:
    """Both networks, rounding their activations like the int8 exports."""
    predictor = emulate_int8(A.load_predictor(), export_table(A.model_path(A.PREDICT_FILE)))
    transformer = emulate_int8(A.load_transformer(), export_table(A.model_path(A.TRANSFORM_FILE)))
    return predictor, transformer
