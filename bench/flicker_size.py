"""Flicker at a large output size (issue 16, item 3): the temporal suite's clips at 1920x1080, painted three
ways, each followed by farm's temporal pass with its default options.

Run by hand (never in CI; about 25 minutes on a loaded 2-core machine with the defaults below):

    .venv/bin/python bench/flicker_size.py                          # bench/results/flicker_size.json
    .venv/bin/python bench/flicker_size.py --frames 8 --clips pan,bigbuckbunny

Paintings (farm's :class:`~farm.styles.model.Stylizer`, vangogh, one thread, eager):

* ``native``: the network at the output size, as farm painted before issue 16 (reference side = the
  output's short side);
* ``default``: the network at the style's reference side (styles.yaml), brought up by farm's guided
  upsampling with the strokes' edges steepened (farm's painting; farm now steepens less where the frame moves);
* ``guided only``: the same without the steepening (``scale.STEEPEN_MAX = 1``).

Temporal passes (``Coherence``, default options) on each painting: ``σ 3``, the band split at σ = 3 px of the
output as farm has it, and for the paintings made at the working size ``σ scaled``, the split at 3 px of the
working size (3 × 1080 / 360 = 9 px of the output): the strokes of a 360-side painting shown at 1080p are 3x
as wide in output pixels, so a 3 px split sends most of them into the base band, which keeps half the
history the strokes' band keeps.

Clips: tests/motion.py ``SUITE`` generated at 1920x1080 (the same motions in pixels per frame as the
320x240 suite, so relatively slower; the texture has a 1080p frame's fine detail), scored with their exact
flow and visibility; bigbuckbunny's first frames upscaled 1280x720 → 1920x1080 (Lanczos), scored with
Farneback flow and the forward–backward mask, as bench/suite.py scores the real clips. No chunking (the
seams are the suite's business): each clip is one sequential run of ``Coherence``.

``--orders`` (results/flicker_size_order.json) compares where the temporal pass runs, without painting
natively (the native rows are the earlier runs' results, whose pipeline this does not touch): the network
at the working size (farm's :meth:`~farm.styles.model.Stylizer.paint_working`), then either

* ``upsample → temporal``: the painting upsampled (steepened, and with ``guided only`` not), then
  ``Coherence`` at 1920x1080 with the split at 9 px (farm's order, with one k);
* ``temporal → upsample``: ``Coherence`` at the working size on the frames resized to it (the split at 3 px
  of the painting), then the coherent painting upsampled (tried, not kept: bench/README).

* ``upsample (k by motion) → temporal``: farm's order, the steepening's k lowered where the frame moves
  (:data:`MOTION_PX`; the bench's own version, measured before farm had it);
* ``farm painter``: farm's own code, as a worker runs it: :func:`farm.paint.painter_for` (DIS on the CPU:
  ``HostPainter``), one frame per call, over a Stylizer whose ``paint_working`` hands back the paintings
  made above (``suite.Painted``), so the upsampling with the stretch by motion, the flow shared with the
  blend, and the blend are farm's; its uint8 output is scored. Its CPU seconds are the whole painter call
  (upsampling and temporal pass; the network's painting is already made);
* ``farm painter (one k)``: the same with the stretch map dropped (one k, farm before), on the same path.

All are scored on the 1080p render, against the same per-frame 1080p painting; besides the flicker
figures: the temporal pass's CPU seconds per frame (``time.process_time``, every thread) and the Laplacian
variance of the render over the per-frame painting's (how much sharpness the pass keeps).

Per clip and painting: E_warp of the per-frame painting, E_warp of the coherent render, their ratio, and
the low-frequency deviation (σ = 3 px) of the render from its per-frame painting (bench/suite.py's
figures), and the same deviation at σ = 9 px (3 px of a 360p frame: what σ = 3 measures on the 320x240 suite;
at σ = 3 px of a 1080p frame the 360-side painting's strokes still show). Absolute E_warp compares the
paintings with each other; the ratio compares the temporal pass.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import suite  # noqa: E402
from common import environment, load_note, table, write_result  # noqa: E402

from farm.config import TemporalOptions  # noqa: E402
from farm.metrics import lowfreq_deviation  # noqa: E402
from farm.temporal import BASE_SIGMA, Coherence  # noqa: E402

SIZE = (1920, 1080)
CLIPS = ("pan", "zoom+rotate", "crossing", "deform", "fast 24px", "lighting", "bigbuckbunny")
PAINTINGS = ("native", "default", "guided only")


def known_clip(name: str, frames: int) -> suite.Clip:
    from tests.motion import SUITE

    clip = SUITE[name](frames=frames, width=SIZE[0], height=SIZE[1])
    return suite.Clip(name, clip.all_frames(), clip.all_flows(), "exact", list(getattr(clip, "cuts", [])))


def real_clip(name: str, frames: int) -> suite.Clip:
    import av
    import cv2

    from farm.samples import sample_clip

    images = []
    with av.open(str(sample_clip(name))) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            images.append(cv2.resize(rgb, SIZE, interpolation=cv2.INTER_LANCZOS4))
            if len(images) == frames:
                break
    return suite.Clip(name, images, suite.farneback_pairs(images), "farneback")


def stylizer(painting: str, precision: str):
    from farm.styles.catalog import load_catalog
    from farm.styles.model import Stylizer

    side = min(SIZE) if painting == "native" else None
    return Stylizer(load_catalog().resolve("vangogh"), device="cpu", threads=1, precision=precision,
                    reference_side=side)


CACHE = Path(os.environ.get("FARM_SUITE_CACHE", Path(tempfile.gettempdir()) / "farm-suite-cache"))


def paint(painting: str, frames: list[np.ndarray], precision: str) -> tuple[list[np.ndarray], float]:
    """Per-frame paintings, cached (float16) by the frames' bytes and the painting: reruns skip the network."""
    digest = hashlib.sha256(np.stack(frames).tobytes())
    digest.update(f"{painting} {precision} size".encode())
    path = CACHE / f"size-{digest.hexdigest()[:24]}.npz"
    if path.exists():
        data = np.load(path)
        return list(data["paint"].astype(np.float32)), float(data["seconds"])
    out, seconds = paint_now(painting, frames, precision)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, paint=np.stack(out).astype(np.float16), seconds=seconds)
    return [o.astype(np.float16).astype(np.float32) for o in out], seconds


def paint_now(painting: str, frames: list[np.ndarray], precision: str) -> tuple[list[np.ndarray], float]:
    from farm.styles import scale

    kept = scale.STEEPEN_MAX
    # "guided only": no steepening; "steep K": STEEPEN_MAX = K (the default is "default")
    scale.STEEPEN_MAX = 1.0 if painting == "guided only" else (
        float(painting.split()[1]) if painting.startswith("steep ") else kept)
    try:
        net = stylizer(painting, precision)
        t0 = time.perf_counter()
        out = [net(f[None])[0] for f in frames]
        return out, (time.perf_counter() - t0) / len(frames)
    finally:
        scale.STEEPEN_MAX = kept


#: σ (px of the output) of the temporal pass's band split: farm's, and 3 px of the 360-side working size
SIGMAS = {"σ 3": BASE_SIGMA, "σ scaled": BASE_SIGMA * SIZE[1] / 360}


def measure(clip: suite.Clip, painting: str, precision: str) -> list[dict]:
    stylized, seconds = paint(painting, clip.frames, precision)
    per_frame = suite.pair_terms(stylized, clip.pairs)
    rows = []
    for temporal, sigma in SIGMAS.items():
        if painting == "native" and temporal != "σ 3":
            continue  # painted at the output size: 3 px is the split farm was tuned with
        make = lambda options, sigma=sigma: Coherence(options, base_sigma=sigma)  # noqa: E731
        seq = suite.sequential(TemporalOptions(), make)(clip.frames, stylized, clip.cuts)
        row = suite.score(clip, stylized, seq, None, per_frame, [])
        rows.append({"clip": clip.name, "painting": painting, "temporal": temporal, "truth": clip.truth,
                     "frames": len(clip.frames), "e_warp_per_frame": suite.mean(per_frame), **row,
                     "lowfreq_deviation_9px": lowfreq_deviation(seq, stylized, BASE_SIGMA * SIZE[1] / 360),
                     "network_s_per_frame": seconds})
    return rows


ORDERS = ("upsample → temporal", "temporal → upsample", "temporal → upsample (flow 1.0)", "temporal → upsample (full flow)",
          "upsample (k by motion) → temporal", "farm painter", "farm painter (one k)")
#: "k by motion": the steepening's k falls from farm's to 1 as the frame's motion (DIS, px of the output per
#: frame) grows: k = 1 + (k_farm − 1)·exp(−(speed / MOTION_PX)²)
MOTION_PX = 4.0


def upsample_k(painting, guide_low, frame, k):
    """farm.styles.scale.guided_upsample with a per-pixel stretch ``k`` (N,1,H,W)."""
    import torch

    from farm.styles.scale import local_gain, local_range, luma, resize

    low = luma(guide_low)
    gain = local_gain(low, painting)
    offset = painting - gain * low
    coeffs = resize(torch.cat([gain, offset, *local_range(offset)], dim=1), tuple(frame.shape[-2:]))
    x, lo, hi = coeffs[:, 3:6], coeffs[:, 6:9], coeffs[:, 9:12]
    half = ((hi - lo) * 0.5).clamp_min(1e-6)
    mid = lo + half
    strokes = ((x - mid) / half).clamp(-1.0, 1.0).mul(k).clamp(-1.0, 1.0) * half + mid
    return torch.addcmul(strokes, coeffs[:, :3], luma(frame))


def motion_k(frames: list[np.ndarray], k_max: float) -> list[np.ndarray]:
    """Per frame, the stretch from the backward DIS flow's speed (the first frame: no motion, k_max)."""
    from farm.temporal import estimate_flow

    out = [np.full(frames[0].shape[:2], k_max, np.float32)]
    for prev, cur in zip(frames, frames[1:]):
        speed2 = (estimate_flow(cur, prev, scale=0.5) ** 2).sum(-1)
        out.append((1.0 + (k_max - 1.0) * np.exp(-speed2 / MOTION_PX**2)).astype(np.float32))
    return out


def painter_render(net, low, frames: list[np.ndarray], one_k: bool = False) -> tuple[list[np.ndarray], float,
                                                                                 suite.Painted]:
    """farm's painter over the clip, one frame per call as a CPU worker paints (no reset at the cut clip's
    cut, as the other orders here), on the paintings ``low`` already made (:class:`suite.Painted`): the
    render as float, CPU s per frame of the calls (upsampling and temporal pass), the Painted."""
    import torch

    from farm.styles.model import planar

    cache = {suite.Painted.key(planar(torch.from_numpy(f[None]))): p for f, p in zip(frames, low)}
    painted = suite.Painted(net, cache, one_k)
    t = time.process_time()
    out = suite.painter_run(painted, TemporalOptions(), frames, [], 0, len(frames), 0)
    return out, (time.process_time() - t) / len(frames), painted


def preview_render(net, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The clip brought down to 640x360 (area) and painted there: farm's painter at the frames' own size (the
    reference side), temporal pass on; a 360p render, as ``farm submit --preview`` was painted before it
    painted the full render's frames and brought them down (farm/preview.py)."""
    import cv2

    small = [cv2.resize(f, (640, 360), interpolation=cv2.INTER_AREA) for f in frames]
    return suite.painter_run(suite.Painted(net), TemporalOptions(), small, [], 0, len(small), 0)


def look_against(preview: list[np.ndarray], render: list[np.ndarray]) -> dict:
    """bench/look.py's figures for a 1080p render against the 640x360 preview of the same moving frames: stroke
    ratio (render / preview, px of a 640-wide frame, medians over frames) [0.8-1.25], low-pass difference
    [≤ 8 levels], the render's Laplacian variance over the preview's upscaled 3x with Lanczos [≥ 2x]."""
    import cv2

    from farm import metrics

    def u8(images):
        return [(np.clip(i, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8) for i in images]

    preview, render = u8(preview), u8(render)
    up = [cv2.resize(p, SIZE, interpolation=cv2.INTER_LANCZOS4) for p in preview]
    stroke_p = float(np.median([metrics.stroke_length(p) for p in preview]))
    stroke_r = float(np.median([metrics.stroke_length(r) for r in render]))
    return {"look_stroke_preview": stroke_p, "look_stroke_render": stroke_r, "look_stroke_ratio": stroke_r / stroke_p,
            "look_lowpass_diff": float(np.mean([metrics.lowpass_difference(p, r) for p, r in zip(preview, render)])),
            "look_laplacian_ratio": float(np.mean([metrics.laplacian_variance(r) for r in render])
                                          / np.mean([metrics.laplacian_variance(u) for u in up]))}


class FullSizeFlow(Coherence):
    """The blend at the working size with the flow and masks of the full-size frames (DIS at ``flow_scale`` of
    them, as before the pass moved), brought down to the painting's size."""

    def _blend(self, gray, stylized, bwd=None):  # a flow handed in by farm is not used: the variant computes its own
        import cv2

        from farm.temporal.dis import BOUNDARY_WEIGHT, blend_bands, estimate_flow, reliability_mask, warp

        scale = self.options.flow_scale
        bwd = estimate_flow(gray, self.prev_gray, scale=scale, preset=self.preset)
        fwd = estimate_flow(self.prev_gray, gray, scale=scale, preset=self.preset)
        mask = reliability_mask(fwd, bwd, boundary_weight=BOUNDARY_WEIGHT, entered=True)
        (h, w), (big_h, big_w) = stylized.shape[:2], gray.shape
        bwd = cv2.resize(bwd, (w, h), interpolation=cv2.INTER_AREA) * np.float32([w / big_w, h / big_h])
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
        return blend_bands(stylized, warp(self.prev_out, bwd), mask, self.options.strength, self.base_strength,
                           self.base_sigma)


def measure_orders(clip: suite.Clip, precision: str, orders=ORDERS, paintings_asked=("default", "guided only")
                   ) -> list[dict]:
    import torch

    from farm.metrics import laplacian_variance
    from farm.paint import uint8_tensor
    from farm.styles import scale
    from farm.styles.model import finish, planar

    net = stylizer("default", precision)
    t0 = time.perf_counter()
    frames = [planar(torch.from_numpy(f[None])) for f in clip.frames]
    low = [net.paint_working(f) for f in frames]
    seconds = (time.perf_counter() - t0) / len(frames)
    small = [uint8_tensor(g)[0].permute(1, 2, 0).numpy() for _, g in low]
    paintings = [np.clip(p[0].permute(1, 2, 0).numpy(), 0.0, 1.0) for p, _ in low]

    def up(painting: np.ndarray, i: int) -> np.ndarray:
        return finish(torch.from_numpy(painting).permute(2, 0, 1)[None], low[i][1], frames[i], 1.0)[0].numpy()

    def temporal(inputs, stylized, sigma, options=TemporalOptions(), kind=Coherence) -> tuple[list[np.ndarray], float]:
        t = time.process_time()
        out = suite.sequential(options, lambda o: kind(o, base_sigma=sigma))(inputs, stylized, clip.cuts)
        return out, (time.process_time() - t) / len(inputs)

    kept, rows, preview = scale.STEEPEN_MAX, [], None
    for painting in paintings_asked:
        scale.STEEPEN_MAX = 1.0 if painting == "guided only" else kept
        try:
            t_up = time.process_time()
            per_frame_images = [up(p, i) for i, p in enumerate(paintings)]
            up_cpu = (time.process_time() - t_up) / len(paintings)
            per_frame = suite.pair_terms(per_frame_images, clip.pairs)
            sharp = float(np.mean([laplacian_variance(f) for f in per_frame_images]))
            for order in orders:
                if order in ORDERS[5:]:
                    if painting != "default":
                        continue  # farm's painter steepens as farm does
                    seq, cpu, painted = painter_render(net, low, clip.frames, one_k=order == ORDERS[6])
                    # scored against the painter's own per-frame paintings (on its moving grid, farm/styles/grid.py)
                    own = painted.per_frame
                    row = suite.score(clip, own, seq, None, suite.pair_terms(own, clip.pairs), [])
                    if preview is None:
                        preview = preview_render(net, clip.frames)
                    row.update(look_against(preview, seq))
                    rows.append({"clip": clip.name, "painting": painting, "temporal": order, "truth": clip.truth,
                                 "frames": len(clip.frames), "e_warp_per_frame": suite.mean(per_frame),
                                 "e_warp_per_frame_k_by_motion": suite.mean(suite.pair_terms(painted.per_frame,
                                                                                             clip.pairs)),
                                 "mean_k": float(np.mean(painted.mean_k)), **row,
                                 "lowfreq_deviation_9px": lowfreq_deviation(seq, own, BASE_SIGMA * SIZE[1] / 360),
                                 "painter_cpu_s_per_frame": cpu,
                                 "sharpness_kept": float(np.mean([laplacian_variance(f) for f in seq])) / sharp,
                                 "sharpness_per_frame_kept": float(np.mean([laplacian_variance(f)
                                                                            for f in painted.per_frame])) / sharp,
                                 "network_s_per_frame": seconds})
                    continue
                if order == ORDERS[0]:
                    seq, cpu = temporal(clip.frames, per_frame_images, SIGMAS["σ scaled"])
                elif order == ORDERS[4]:
                    k_max = scale.steepening(min(SIZE) / paintings[0].shape[0])
                    ks = motion_k(clip.frames, k_max)
                    moving = []
                    for i, p in enumerate(paintings):
                        x = frames[i].permute(0, 3, 1, 2).float() / 255.0
                        image = upsample_k(torch.from_numpy(p).permute(2, 0, 1)[None], low[i][1], x,
                                           torch.from_numpy(ks[i])[None, None])
                        moving.append(image.clamp(0.0, 1.0)[0].permute(1, 2, 0).numpy())
                    seq, cpu = temporal(clip.frames, moving, SIGMAS["σ scaled"])
                    row = suite.score(clip, per_frame_images, seq, None, per_frame, [])
                    rows.append({"clip": clip.name, "painting": painting, "temporal": order, "truth": clip.truth,
                                 "frames": len(clip.frames), "e_warp_per_frame": suite.mean(per_frame),
                                 "e_warp_per_frame_k_by_motion": suite.mean(suite.pair_terms(moving, clip.pairs)),
                                 "mean_k": float(np.mean(ks)), **row,
                                 "lowfreq_deviation_9px": lowfreq_deviation(seq, per_frame_images,
                                                                            BASE_SIGMA * SIZE[1] / 360),
                                 "temporal_cpu_s_per_frame": cpu,
                                 "sharpness_kept": float(np.mean([laplacian_variance(f) for f in seq])) / sharp,
                                 "sharpness_per_frame_kept": float(np.mean([laplacian_variance(f) for f in moving]))
                                 / sharp, "network_s_per_frame": seconds})
                    continue
                else:
                    if order == ORDERS[1]:
                        coherent, cpu = temporal(small, paintings, BASE_SIGMA)
                    elif order == ORDERS[2]:
                        coherent, cpu = temporal(small, paintings, BASE_SIGMA, TemporalOptions(flow_scale=1.0))
                    else:
                        coherent, cpu = temporal(clip.frames, paintings, BASE_SIGMA, kind=FullSizeFlow)
                    seq = [up(p, i) for i, p in enumerate(coherent)]
                row = suite.score(clip, per_frame_images, seq, None, per_frame, [])
                rows.append({"clip": clip.name, "painting": painting, "temporal": order, "truth": clip.truth,
                             "frames": len(clip.frames), "e_warp_per_frame": suite.mean(per_frame), **row,
                             "lowfreq_deviation_9px": lowfreq_deviation(seq, per_frame_images,
                                                                        BASE_SIGMA * SIZE[1] / 360),
                             "temporal_cpu_s_per_frame": cpu, "upsample_cpu_s_per_frame": up_cpu,
                             "sharpness_kept": float(np.mean([laplacian_variance(f) for f in seq])) / sharp,
                             "network_s_per_frame": seconds})
        finally:
            scale.STEEPEN_MAX = kept
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default=",".join(CLIPS))
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--paintings", default=",".join(PAINTINGS))
    parser.add_argument("--precision", default="auto", choices=("auto", "float32"))
    parser.add_argument("--name", default="flicker_size")
    parser.add_argument("--orders", help="temporal pass before vs after the upsampling: a comma list of ORDERS, or all")
    args = parser.parse_args()
    env = environment()
    rows = []
    for name in args.clips.split(","):
        clip = real_clip(name, args.frames) if name in ("bikes", "bigbuckbunny") else known_clip(name, args.frames)
        orders = ORDERS if args.orders == "all" else tuple((args.orders or "").split(","))
        asked = tuple(args.paintings.split(",")) if args.paintings != ",".join(PAINTINGS) else ("default", "guided only")
        measured = (measure_orders(clip, args.precision, orders, asked) if args.orders else
                    [row for painting in args.paintings.split(",") for row in measure(clip, painting, args.precision)])
        for row in measured:
            rows.append(row)
            print(f"{name:<13} {row['painting']:<12} {row['temporal']:<8} E_warp per-frame {row['e_warp_per_frame']:.6f}"
                  f" render {row['e_warp']:.6f} ratio {row['ratio']:.3f} lowfreq {row['lowfreq_deviation']:.4f}"
                  f" (9 px {row['lowfreq_deviation_9px']:.4f}) network {row['network_s_per_frame']:.2f} s/frame"
                  + (f" temporal {row['temporal_cpu_s_per_frame']:.3f} CPU s/frame" if "temporal_cpu_s_per_frame" in row
                     else "")
                  + (f" upsampling {row['upsample_cpu_s_per_frame']:.3f}" if "upsample_cpu_s_per_frame" in row else "")
                  + (f" painter {row['painter_cpu_s_per_frame']:.3f} CPU s/frame (upsampling + temporal)"
                     if "painter_cpu_s_per_frame" in row else "")
                  + (f" mean k {row['mean_k']:.3f}" if "mean_k" in row else "")
                  + (f" look vs preview: stroke ratio {row['look_stroke_ratio']:.3f} low-pass "
                     f"{row['look_lowpass_diff']:.2f} Laplacian {row['look_laplacian_ratio']:.2f}x"
                     if "look_stroke_ratio" in row else "")
                  + (f" sharpness kept {row['sharpness_kept']:.3f}" if "sharpness_kept" in row else ""), flush=True)
        # partial results survive a stopped run
        write_result(args.name, {"environment": env, "size": SIZE, "frames": args.frames, "rows": rows})
    print(table(["clip", "painting", "temporal", "E_warp per-frame", "E_warp render", "ratio", "lowfreq dev",
                 "lowfreq 9px"],
                [[r["clip"], r["painting"], r["temporal"], f"{r['e_warp_per_frame']:.6f}", f"{r['e_warp']:.6f}",
                  f"{r['ratio']:.3f}", f"{r['lowfreq_deviation']:.4f}", f"{r['lowfreq_deviation_9px']:.4f}"]
                 for r in rows],
                f"\n{SIZE[0]}x{SIZE[1]}, {args.frames} frames per clip, vangogh, defaults of the temporal pass"))
    summary = []
    for key in dict.fromkeys((r["painting"], r["temporal"]) for r in rows):
        mine = [r for r in rows if (r["painting"], r["temporal"]) == key]
        summary.append({"painting": key[0], "temporal": key[1], "clips": len(mine),
                        **{f"{k}_{agg.__name__}": float(agg([r[k] for r in mine]))
                           for k in ("e_warp", "ratio", "lowfreq_deviation", "lowfreq_deviation_9px")
                           for agg in (np.mean, np.max)}})
    print(table(["painting", "temporal", "mean E_warp", "worst E_warp", "mean ratio", "worst ratio", "mean lowfreq",
                 "worst lowfreq", "mean lowfreq 9px", "worst lowfreq 9px"],
                [[s["painting"], s["temporal"], f"{s['e_warp_mean']:.6f}", f"{s['e_warp_max']:.6f}",
                  f"{s['ratio_mean']:.3f}", f"{s['ratio_max']:.3f}", f"{s['lowfreq_deviation_mean']:.4f}",
                  f"{s['lowfreq_deviation_max']:.4f}", f"{s['lowfreq_deviation_9px_mean']:.4f}",
                  f"{s['lowfreq_deviation_9px_max']:.4f}"] for s in summary], "\nover the clips"))
    print(load_note(env))
    result = {"environment": env, "size": SIZE, "frames": args.frames, "rows": rows, "summary": summary}
    print(f"wrote {write_result(args.name, result)}")


if __name__ == "__main__":
    main()
