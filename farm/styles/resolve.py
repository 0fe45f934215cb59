"""What the user typed (``--style``, ``--style-image``, ``--model``) → the :class:`StyleChoice` a job carries.

Three sources of a look, one result type:

- a catalog name or spec (``vangogh``, ``3:0.5,12:0.5``) or a user style saved
  with ``farm styles add`` (farm/styles/user.py);
- paintings (``--style-image``): their embeddings (Ghiasi et al. 2017), blended
  with equal weights when there are several, computed once per job;
- a fast-neural-style checkpoint (``--model``), checked and hashed here, so a
  bad file is refused before anything is started or written.

Strength for the arbitrary network is a mix in embedding space toward the
clip's own style (the paper's "identity" style), which needs the clip's first
frame: callers pass it lazily, since the other networks never need it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from farm.config import StyleChoice
from farm.errors import InputError, StyleError
from farm.styles import user
from farm.styles.catalog import load_catalog

#: the clip's first frame, computed only when a painting's strength needs it
Content = Callable[[], np.ndarray]


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 array from a picture file; a bad file is the user's error."""
    from PIL import Image, UnidentifiedImageError

    try:
        return np.asarray(Image.open(path).convert("RGB"))
    except FileNotFoundError:
        raise InputError(f"image not found: {path}") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"cannot read image {path}: {exc}") from None


def painting_vector(images: Sequence[Path]) -> np.ndarray:
    """The style embedding of one painting, or the equal blend of several."""
    from farm.styles.arbitrary import blend_vectors, load_predictor, style_vector

    predictor = load_predictor()
    vectors = [style_vector(read_image(path), predictor) for path in images]
    return vectors[0] if len(vectors) == 1 else blend_vectors(vectors, [1.0] * len(vectors))


def painting_style(name: str, vector: Sequence[float], strength: float, content: Content) -> StyleChoice:
    """A painting's embedding as a job's style; strength < 1 mixes toward the clip's own embedding."""
    vector = np.asarray(vector, dtype=np.float32)
    if strength < 1.0:
        from farm.styles.arbitrary import identity_mix, style_vector

        vector = identity_mix(vector, style_vector(content()), strength)
    return StyleChoice(name=name, network="arbitrary", weights=tuple(float(v) for v in vector))


def checkpoint_style(uri: str, strength: float, name: str | None = None) -> StyleChoice:
    """A fast-neural-style checkpoint (a path or ``s3://``), opened safely and pinned by its SHA-256."""
    from farm.sources import is_remote
    from farm.store import sha256_file
    from farm.styles.fns import load_fns, local_checkpoint

    path = local_checkpoint(uri)
    load_fns(path)  # refuses anything but a TransformerNet state dict, without running pickled code
    where = uri if is_remote(uri) else str(path)
    return StyleChoice(name=name or model_label(uri), network="fast-neural-style", strength=strength,
                       model=where, model_sha256=sha256_file(path))


def model_label(uri: str) -> str:
    """``udnie`` for ``path/to/udnie.pth`` or ``s3://bucket/udnie.pth``: the style's name in file names."""
    from farm.sources import source_name

    return Path(source_name(uri)).stem


def named_style(name: str, strength: float, content: Content) -> StyleChoice:
    """A user style saved with ``farm styles add``, else a catalog name or spec."""
    saved = user.user_styles()
    mine = saved.get(name.strip().lower())
    if mine is None:
        return load_catalog(extra_names=tuple(saved)).resolve(name, strength=strength)
    if mine.network == "arbitrary":
        return painting_style(mine.name, mine.vector, strength, content)
    assert mine.model is not None
    choice = checkpoint_style(mine.model, strength, mine.name)
    if choice.model_sha256 != mine.model_sha256:
        raise StyleError(f"style {mine.name}: {mine.model} changed since it was added; "
                         f"`farm styles add {mine.name} --model {mine.model} --force` accepts the new file")
    return choice


def add_style(name: str, *, images: Sequence[Path] = (), model: str | None = None, description: str = "",
              replace: bool = False) -> user.UserStyle:
    """Save a named user style from paintings or from a checkpoint; its name may not hide a catalog name."""
    if bool(images) == bool(model):
        raise StyleError("give --image (one or more) or --model, not both")
    user.check_name(name)
    if name in load_catalog():
        raise StyleError(f"{name!r} is a built-in style name; choose another")
    if name in user.user_styles() and not replace:
        raise StyleError(f"you already have a style called {name!r} (--force replaces it)")
    if model:
        choice = checkpoint_style(model, 1.0, name)
        style = user.new_style(name, "fast-neural-style", model, description=description, model=choice.model,
                               model_sha256=choice.model_sha256)
        user.save(style)
        return style
    vector = painting_vector(images)
    origin = " + ".join(Path(p).name for p in images)
    style = user.new_style(name, "arbitrary", origin, description=description,
                           vector=tuple(float(v) for v in vector))
    user.save(style, thumbnail=read_image(images[0]))
    return style
