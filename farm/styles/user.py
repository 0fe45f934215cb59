"""The user's own named styles: a painting's style vector, or a fast-neural-style checkpoint.

``farm styles add NAME --image painting.jpg`` stores the painting's 100-number
embedding (Ghiasi et al. 2017) and a thumbnail; ``farm styles add NAME --model
udnie.pth`` (or ``s3://bucket/udnie.pth``) stores where the checkpoint is and
its SHA-256. Either way ``--style NAME`` then works in later jobs, and on a
cluster too: the job spec carries the vector or the checkpoint's URI, never a
path into this folder.

One JSON file per style (``<name>.json``, a :class:`UserStyle`) and, for image
styles, ``<name>.jpg``, in ``$FARM_STYLES_DIR`` or else the per-user config
folder platformdirs names (``~/.config/farm/styles`` on Linux). One file per
style keeps adds and removes atomic without a lock.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, ValidationError

from farm.config import Model, StyleChoice
from farm.errors import ConfigError, StyleError
from farm.files import atomic_path
from farm.styles.catalog import NAME_PATTERN, StyleName

ENV_VAR = "FARM_STYLES_DIR"
THUMBNAIL_SIDE = 256


class UserStyle(Model):
    """One saved style, as stored in ``<name>.json``."""

    name: StyleName
    network: Literal["arbitrary", "fast-neural-style"]
    description: str = ""
    #: what it was made from: the painting's file name, or the checkpoint's URI
    origin: str
    created: str
    #: the painting's embedding (arbitrary network)
    vector: tuple[float, ...] = Field(default=(), max_length=100)
    #: the checkpoint (fast-neural-style): where to read it and what it must hash to
    model: str | None = None
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @property
    def kind_label(self) -> str:
        return f"image {self.origin}" if self.network == "arbitrary" else f"model {self.origin}"

    def choice(self, strength: float = 1.0) -> StyleChoice:
        """The style a job carries (strength for image styles is applied by the caller, in embedding space)."""
        return StyleChoice(name=self.name, network=self.network, weights=self.vector, strength=strength,
                           model=self.model, model_sha256=self.model_sha256)


def styles_dir() -> Path:
    """``$FARM_STYLES_DIR``, else the per-user config folder's ``styles/``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("farm")) / "styles"


def user_styles(folder: Path | None = None) -> dict[str, UserStyle]:
    """Every saved style by name; a damaged file is a ConfigError naming it."""
    folder = folder or styles_dir()
    found = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else ():
        try:
            style = UserStyle.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            raise ConfigError(f"{path}: not a farm style ({str(exc).splitlines()[0]}); remove or fix it") from None
        found[style.name] = style
    return found


def save(style: UserStyle, thumbnail: np.ndarray | None = None, folder: Path | None = None) -> Path:
    """Write ``<name>.json`` (and the thumbnail first, so a listed style always has one); returns the JSON path."""
    folder = folder or styles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    if thumbnail is not None:
        from PIL import Image

        picture = Image.fromarray(thumbnail)
        picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
        with atomic_path(folder / f"{style.name}.jpg") as tmp:
            picture.save(tmp, format="JPEG", quality=90)
    path = folder / f"{style.name}.json"
    with atomic_path(path) as tmp:
        tmp.write_text(style.model_dump_json(indent=2))
    return path


def remove(name: str, folder: Path | None = None) -> None:
    folder = folder or styles_dir()
    if name not in user_styles(folder):
        raise StyleError(f"no user style called {name!r} (`farm styles` lists them)")
    (folder / f"{name}.json").unlink()
    (folder / f"{name}.jpg").unlink(missing_ok=True)


def check_name(name: str) -> str:
    """The name as stored, or a one-line StyleError saying what a name may be."""
    if not (len(name) <= 40 and re.fullmatch(NAME_PATTERN, name)):
        raise StyleError(f"bad style name {name!r}: use lower-case letters, digits and dashes, "
                         "starting with a letter (at most 40)")
    return name


def new_style(name: str, network: Literal["arbitrary", "fast-neural-style"], origin: str, *,
              description: str = "", vector: tuple[float, ...] = (), model: str | None = None,
              model_sha256: str | None = None) -> UserStyle:
    """A :class:`UserStyle` stamped now."""
    return UserStyle(name=check_name(name), network=network, description=description, origin=origin,
                     created=datetime.now(timezone.utc).isoformat(timespec="seconds"), vector=vector,
                     model=model, model_sha256=model_sha256)
