"""What a worker's painter costs per frame, network included, in this checkout against another revision's
(``--against DIR``): farm's ``painter_for`` (HostPainter: DIS on the CPU) over a clip's frames, one frame per
call as a CPU worker paints, each revision in its own process, taking turns each round; CPU seconds of the
process per frame (``time.process_time``: on a shared machine the wall clock includes waiting for a core).

    PYTHONPATH=$PWD .venv/bin/python bench/painter_ab.py --against /tmp/old --name painter_ab

The frames are bigbuckbunny.mp4's from ``--start`` (24: the camera is moving, so the painting grid moves too,
farm/styles/grid.py), resized to ``--size``. One thread (torch and OpenCV), vangogh, default temporal options.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, load_note, median, sample, table, write_result  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_once(root: Path, size: tuple[int, int], start: int, count: int, precision: str) -> dict:
    """One revision's painter over the frames: runs in a child process whose farm is ``root``'s."""
    sys.path.insert(0, str(root))
    import time

    import av
    import cv2
    import numpy as np
    import torch

    from farm.config import TemporalOptions
    from farm.paint import painter_for
    from farm.pipeline import Timer
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    assert Path(sys.modules["farm"].__file__).resolve().is_relative_to(root.resolve())
    cv2.setNumThreads(1)
    frames = []
    with av.open(str(sample("bigbuckbunny"))) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= start:
                frames.append(frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray())
            if len(frames) == count:
                break
    stylizer = Stylizer(load_catalog().resolve("vangogh"), device="cpu", threads=1, precision=precision)
    painter = painter_for(stylizer, TemporalOptions(), Timer())
    painter(frames[0][None])  # first call: allocations, DIS set-up
    t0 = time.process_time()
    out = [painter(f[None])[0] for f in frames[1:]]
    seconds = (time.process_time() - t0) / (len(frames) - 1)
    return {"cpu_s_per_frame": seconds, "checksum": float(np.mean([o.mean() for o in out])),
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", type=Path, help="another checkout (its farm/ is timed)")
    parser.add_argument("--size", default="1920x1080")
    parser.add_argument("--start", type=int, default=24)
    parser.add_argument("--frames", type=int, default=13)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"))
    parser.add_argument("--name", default="painter_ab")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    if args.child:
        print(json.dumps(run_once(args.child, size, args.start, args.frames, args.precision)))
        return
    if args.against is None:
        parser.error("--against DIR is required")
    env = environment()
    revisions = {"this checkout": ROOT, "against": args.against}
    runs: dict[str, list[dict]] = {name: [] for name in revisions}
    for r in range(args.rounds):
        order = list(revisions) if r % 2 == 0 else list(reversed(revisions))
        for name in order:
            child = subprocess.run([sys.executable, __file__, "--child", str(revisions[name]), "--size", args.size,
                                    "--start", str(args.start), "--frames", str(args.frames), "--precision",
                                    args.precision], capture_output=True, text=True, check=True)
            result = json.loads(child.stdout.strip().splitlines()[-1])
            runs[name].append(result)
            print(f"round {r + 1} {name:<14} {result['cpu_s_per_frame']:.3f} CPU s/frame", flush=True)
    rows = [[name, str(revisions[name]), f"{median([x['cpu_s_per_frame'] for x in runs[name]]):.3f}",
             " ".join(f"{x['cpu_s_per_frame']:.3f}" for x in runs[name])] for name in revisions]
    print(table(["revision", "checkout", "median CPU s/frame", "rounds"], rows,
                f"\nfarm's painter (network + upsampling + temporal pass), {args.size}, bigbuckbunny from frame "
                f"{args.start}, {args.frames - 1} frames timed, one thread, precision {args.precision}"))
    print(load_note(env))
    result = {"environment": env, "args": {k: str(v) for k, v in vars(args).items()}, "runs": runs}
    print(f"wrote {write_result(args.name, result)}")


if __name__ == "__main__":
    main()
