"""A contact sheet of a few frames of bikes.mp4 painted in style images, and 720p frames/s per network.

    .venv/bin/python bench/style_sheet.py --image a.jpg --image b.jpg [--out sheet.png] [--frames 0,80,160,240]

Rows: the original frames, then one row per style image (Magenta's arbitrary
network, at the clip's own size, as `farm submit --style-image` runs it), then
the built-in `vangogh` for comparison. Without --image, two stand-ins are
made: a frame of bigbuckbunny painted by built-in style 19, and a
high-contrast stripe pattern (no painting files ship with the packages).

It then times each network on 720p frames (batch 4, this process's torch
threads, min of 3 rounds) and writes bench/results/style_sheet.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from common import RESULTS, environment, sample, table, write_result
from farm.styles.catalog import load_catalog
from farm.styles.model import Stylizer
from farm.styles.resolve import painting_style, painting_vector
from farm.styles.sheet import compose, fit_tile, save_atomic
from farm.video import iter_frames, probe, to_uint8


def frames_of(clip: Path, wanted: list[int]) -> list[np.ndarray]:
    info, picked = probe(clip), []
    for i, frame in enumerate(iter_frames(clip, info)):
        if i in wanted:
            picked.append(frame.rgb)
        if i >= max(wanted):
            break
    return picked


def stand_in_images(folder: Path) -> list[Path]:
    from PIL import Image

    frame = frames_of(sample("bigbuckbunny"), [60])[0]
    painted = Stylizer(load_catalog().resolve("vangogh"), device="cpu")(frame[None])[0]
    first = folder / "bbb-vangogh.png"
    Image.fromarray(to_uint8(painted)).save(first)
    y, x = np.mgrid[0:384, 0:384]
    stripes = np.stack([(np.sin((x + 0.6 * y) / 6.0) > 0) * 230, (np.sin(y / 11.0) > 0) * 120 + 60,
                        ((x // 48 + y // 48) % 2) * 200 + 30], axis=-1).astype(np.uint8)
    second = folder / "stripes.png"
    Image.fromarray(stripes).save(second)
    return [first, second]


def fps_720p(style, rounds: int = 3, batch: int = 4) -> float:
    stylizer = Stylizer(style, device="cpu", batch=batch)
    frames = np.random.default_rng(0).integers(0, 256, (batch, 720, 1280, 3), dtype=np.uint8)
    stylizer(frames[:1])  # warm-up
    best = min(_timed(stylizer, frames) for _ in range(rounds))
    return batch / best


def _timed(stylizer, frames) -> float:
    t0 = time.perf_counter()
    stylizer(frames)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", action="append", type=Path, default=[])
    parser.add_argument("--frames", default="0,80,160,240")
    parser.add_argument("--tile", type=int, default=320)
    parser.add_argument("--out", type=Path, default=RESULTS / "style_sheet.png")
    parser.add_argument("--no-fps", action="store_true")
    args = parser.parse_args()
    env = environment()
    images = args.image or stand_in_images(Path("/tmp"))
    frames = [fit_tile(f, args.tile) for f in frames_of(sample("bikes"), [int(i) for i in args.frames.split(",")])]
    batch = np.stack(frames)
    tiles = [(f"original #{i}", f) for i, f in zip(args.frames.split(","), frames)]
    styles = [painting_style(p.stem, painting_vector([p]), 1.0, lambda: batch[0]) for p in images]
    rows = [(s.name, Stylizer(s, device="cpu")(batch)) for s in styles]
    rows.append(("vangogh", Stylizer(load_catalog().resolve("vangogh"), device="cpu")(batch)))
    for name, painted in rows:
        tiles += [(name, to_uint8(p)) for p in painted]
    save_atomic(compose(tiles, columns=len(frames)), args.out)
    print(f"wrote {args.out} ({len(rows) + 1} rows x {len(frames)} frames of bikes.mp4; styles: "
          f"{', '.join(str(p) for p in images)})")
    result = {"environment": env, "sheet": str(args.out), "images": [str(p) for p in images], "fps_720p": {}}
    if not args.no_fps:
        fps = {"multistyle26 (vangogh)": fps_720p(load_catalog().resolve("vangogh")),
               f"arbitrary ({styles[0].name})": fps_720p(styles[0])}
        result["fps_720p"] = fps
        print(table(["network", "720p frames/s"], [[k, v] for k, v in fps.items()], title="network speed, batch 4"))
    write_result("style_sheet", result)


if __name__ == "__main__":
    main()
