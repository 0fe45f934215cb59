"""Bring-your-own fast-neural-style checkpoints: exact key layout, shape-preserving, and safe to open."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from farm.errors import StyleError
from farm.styles.fns import TransformerNet, load_fns

NORMS = ["in1", "in2", "in3", "in4", "in5"] + [f"res{i}.in{j}" for i in range(1, 6) for j in (1, 2)]


def example_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict laid out like the downloadable candy/mosaic .pth: random weights plus the legacy running_* keys."""
    torch.manual_seed(seed)
    state = TransformerNet().state_dict()
    for name in NORMS:
        channels = state[f"{name}.weight"].shape[0]
        state[f"{name}.running_mean"] = torch.zeros(channels)
        state[f"{name}.running_var"] = torch.ones(channels)
    return state


def test_layout_is_the_examples():
    keys = set(TransformerNet().state_dict())
    assert {"conv1.conv2d.weight", "in1.weight", "in1.bias", "res1.conv1.conv2d.weight", "res5.in2.bias",
            "deconv1.conv2d.weight", "deconv3.conv2d.bias"} <= keys
    assert len(keys) == 2 * (3 + 2 * 5 + 3) + 2 * (3 + 2 * 5 + 2)  # convs (w, b) + affine norms (w, b)


def test_checkpoint_loads_and_keeps_the_frame_size(tmp_path):
    path = tmp_path / "candy.pth"
    state = example_checkpoint()
    torch.save(state, path)
    net = load_fns(path)
    frame = torch.rand(2, 3, 37, 53)
    with torch.inference_mode():
        out = net.stylize(frame)
    assert out.shape == frame.shape
    assert 0.0 <= float(out.min()) and float(out.max()) <= 1.0
    reference = TransformerNet()
    reference.load_state_dict({k: v for k, v in state.items() if "running_" not in k})
    with torch.inference_mode():
        expected = reference(frame[..., :36, :52] * 255.0).clamp(0, 255) / 255.0
        torch.testing.assert_close(net.stylize(frame[..., :36, :52]), expected)


def test_missing_key_is_refused(tmp_path):
    state = example_checkpoint()
    del state["res3.conv1.conv2d.weight"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(StyleError, match="missing 'res3.conv1.conv2d.weight'"):
        load_fns(tmp_path / "broken.pth")


def test_wrong_shape_is_refused(tmp_path):
    state = example_checkpoint()
    state["conv1.conv2d.weight"] = torch.zeros(16, 3, 9, 9)
    torch.save(state, tmp_path / "narrow.pth")
    with pytest.raises(StyleError, match="conv1.conv2d.weight.*shape"):
        load_fns(tmp_path / "narrow.pth")


def test_other_objects_are_refused(tmp_path):
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(StyleError, match="not a state dict"):
        load_fns(tmp_path / "tensor.pth")
    torch.save({"model": example_checkpoint()}, tmp_path / "nested.pth")
    with pytest.raises(StyleError, match="not a fast-neural-style"):
        load_fns(tmp_path / "nested.pth")


class Payload:
    """Unpickling this would run a shell command (the classic malicious checkpoint)."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return os.system, (f"touch {self.target}",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_malicious_pickle_is_refused_without_running(tmp_path, writer):
    target = tmp_path / "pwned"
    state = example_checkpoint()
    state["conv1.conv2d.weight"] = Payload(target)
    path = tmp_path / "evil.pth"
    if writer == "torch.save":
        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))
    with pytest.raises(StyleError) as err:
        load_fns(path)
    assert not target.exists()
    assert "\n" not in str(err.value) and "weights-only" in str(err.value)


def test_non_torch_files_are_refused(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello, I am not a model\n")
    png = tmp_path / "style.pth"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    for path in (text, png, tmp_path / "absent.pth", tmp_path):
        with pytest.raises(StyleError) as err:
            load_fns(path)
        assert "\n" not in str(err.value)
