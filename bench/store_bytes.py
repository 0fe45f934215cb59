"""Bytes per frame that a job puts in the object store: input chunks, output chunks, finals.

Run by hand (not in CI; one render, about 7 minutes for bikes on 2 shared CPU cores):

    .venv/bin/python bench/store_bytes.py                    # bikes.mp4, table + bench/results/store_bytes.json
    .venv/bin/python bench/store_bytes.py --clip bigbuckbunny --frames 48

One real render, ``farm submit CLIP --json --no-gif --store <temp dir>
--job-id bench-store``, with a LocalStore whose files are summed:

- input chunks ``jobs/<id>/input/NNNNNN.mp4``: the driver deletes each one
  once its chunk's receipt is in (a re-render re-shards from the source), so
  they are measured while the job runs: the store is polled every 20 ms and
  each object's size recorded once it appears (LocalStore writes through a
  temp file and a rename, so a visible object is complete). As a cross-check
  the same clip is sharded standalone with ``farm.shard.shard`` (what the
  driver calls) into a second store, where nothing deletes them.
- output chunks ``jobs/<id>/output/NNNNNN.mp4`` and their ``.json`` receipts,
  the final MP4 under ``final/``, the manifest and state: summed after the run.

Bytes per frame: input objects per *stored* frame (each chunk after the
first carries the previous chunk's last ``warmup`` frames) and per source
frame; output per emitted frame. For scale: raw RGB24 (W·H·3), raw yuv420p
(W·H·1.5) and the source file's bytes per frame. The codec settings are read
from farm itself (``farm.codecs.encoder_options``, ``EncodeOptions``) and
from the x264 settings string each stored stream carries in its SEI.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import clip_arg, environment, farm_submit, load_note, probe, table, write_result  # noqa: E402

CHUNK_NAME = re.compile(r"^\d{6}\.mp4$")
JOB = "bench-store"


class InputWatcher:
    """Records the size of every input chunk object that shows up under ``folder``, and the most
    input bytes (and objects) present at one time."""

    def __init__(self, folder: Path):
        self.folder, self.sizes = folder, {}
        self.peak_bytes, self.peak_objects = 0, 0

    def __call__(self) -> None:
        if not self.folder.is_dir():
            return
        now = {}
        try:
            for path in self.folder.iterdir():
                if CHUNK_NAME.match(path.name):
                    try:
                        now[path.name] = path.stat().st_size
                    except FileNotFoundError:
                        pass  # deleted between listing and stat
        except FileNotFoundError:
            return
        for name, size in now.items():
            self.sizes.setdefault(name, size)
        self.peak_bytes = max(self.peak_bytes, sum(now.values()))
        self.peak_objects = max(self.peak_objects, len(now))


def x264_settings(path: Path) -> dict:
    """The x264 options string the encoder wrote into the stream, with the rate-control fields picked out."""
    data = path.read_bytes()[:1 << 20]
    match = re.search(rb"x264 - core (\d+).*? - options: ([^\x00]*)", data)
    if not match:
        return {}
    options = dict(kv.split("=", 1) for kv in match.group(2).decode(errors="replace").split() if "=" in kv)
    keys = ("rc", "qp", "crf", "subme", "me", "ref", "bframes", "threads", "keyint", "8x8dct", "trellis")
    return {"core": int(match.group(1)), **{k: options[k] for k in keys if k in options}, "all": options}


def stream_info(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        return {"codec": ctx.name, "profile": ctx.profile, "pix_fmt": ctx.format.name if ctx.format else None}


def farm_settings() -> dict:
    """What farm's code says it encodes with (so this bench follows changes to farm/video.py)."""
    from farm import codecs, video
    from farm.codecs import encoder_options
    from farm.config import EncodeOptions

    enc = EncodeOptions()
    out_codec = codecs.resolve_codec(enc.codec, "cpu")
    writer_defaults = {k: p.default for k, p in inspect.signature(video.SegmentWriter.__init__).parameters.items()
                       if p.default is not inspect.Parameter.empty}
    return {"input": {"codec": writer_defaults.get("codec"), "pix_fmt": writer_defaults.get("pix_fmt"),
                      **encoder_options(codecs.SOFTWARE, lossless=True, crf=enc.crf, preset=enc.preset)},
            "output": {"codec": out_codec, "pix_fmt": enc.pix_fmt,
                       **encoder_options(out_codec, lossless=False, crf=enc.crf, preset=enc.preset)}}


def codec_row(kind: str, codecs: dict, rate_key: str, ratio: float) -> list:
    said = " ".join(f"{k}={v}" for k, v in codecs["farm_code"][kind].items())
    stream = codecs[f"{kind}_stream"] or {}
    x264 = stream.get("x264", {})
    seen = (f"{stream.get('codec')} {stream.get('profile')} {stream.get('pix_fmt')} "
            f"rc={x264.get('rc')} {rate_key}={x264.get(rate_key)}")
    return [kind, said, seen, f"{ratio:.3f}"]


def standalone_shard(clip: Path, store_dir: Path) -> dict[str, int]:
    from farm import video
    from farm.config import RenderOptions, TemporalOptions
    from farm.plan import Layout, plan_chunks
    from farm.shard import shard
    from farm.store import open_store

    info = video.probe(clip)
    chunks = plan_chunks(info.frames, RenderOptions.model_fields["chunk_frames"].default, TemporalOptions().warmup)
    store, layout = open_store(str(store_dir)), Layout("bench-shard")
    sizes = {}
    for chunk in shard(clip, info, chunks, store, layout):
        key = layout.input(chunk.index, video.SEGMENT_EXT)
        sizes[Path(key).name] = store.size(key)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default="bikes", help="bikes, bigbuckbunny, or a path")
    parser.add_argument("--frames", type=int, default=0, help="use only the first N frames (0 = all)")
    args = parser.parse_args()
    env = environment()
    from farm.config import RenderOptions, TemporalOptions
    from farm.plan import plan_chunks

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        tmp = Path(tmp)
        clip = clip_arg(args.clip, args.frames, tmp)
        src = probe(clip)
        w, h, n = src["width"] + src["width"] % 2, src["height"] + src["height"] % 2, src["frames"]
        chunks = plan_chunks(n, RenderOptions.model_fields["chunk_frames"].default, TemporalOptions().warmup)
        stored_frames = sum(c.end - c.first for c in chunks)
        work = tmp / "work"
        job = work / "store" / "jobs" / JOB
        watcher = InputWatcher(job / "input")
        print(f"farm submit {clip.name} ...", file=sys.stderr, flush=True)
        result = farm_submit(clip, work, job_id=JOB, watch=watcher)
        left_inputs = sorted(p.name for p in (job / "input").glob("*.mp4")) if (job / "input").is_dir() else []
        outputs = sorted((job / "output").glob("*.mp4"))
        receipts = sorted((job / "output").glob("*.json"))
        finals = sorted((job / "final").glob("*")) if (job / "final").is_dir() else []
        other = [p for p in job.glob("*") if p.is_file()]
        shard_sizes = standalone_shard(clip, tmp / "shard-store")
        shard_dir = tmp / "shard-store" / "jobs" / "bench-shard" / "input"
        one_input = next(iter(sorted(shard_dir.glob("*.mp4"))), None)
        codecs = {"farm_code": farm_settings(),
                  "input_stream": {**stream_info(one_input), "x264": x264_settings(one_input)} if one_input else None,
                  "output_stream": {**stream_info(outputs[0]), "x264": x264_settings(outputs[0])} if outputs else None}
        sizes = {"input_seen_during_run": sum(watcher.sizes.values()),
                 "input_standalone_shard": sum(shard_sizes.values()),
                 "output_chunks": sum(p.stat().st_size for p in outputs),
                 "receipts": sum(p.stat().st_size for p in receipts), "final": sum(p.stat().st_size for p in finals),
                 "manifest_and_state": sum(p.stat().st_size for p in other)}

    seen_all = len(watcher.sizes) == len(chunks)
    rows = [
        ["input chunks (seen during the run)", len(watcher.sizes), sizes["input_seen_during_run"],
         sizes["input_seen_during_run"] / stored_frames, sizes["input_seen_during_run"] / n],
        ["input chunks (standalone farm.shard)", len(shard_sizes), sizes["input_standalone_shard"],
         sizes["input_standalone_shard"] / stored_frames, sizes["input_standalone_shard"] / n],
        ["output chunks", len(outputs), sizes["output_chunks"], sizes["output_chunks"] / n, sizes["output_chunks"] / n],
        ["output receipts (.json)", len(receipts), sizes["receipts"], "-", sizes["receipts"] / n],
        ["final/ (MP4)", len(finals), sizes["final"], "-", sizes["final"] / n],
        ["manifest + state", len(other), sizes["manifest_and_state"], "-", "-"],
        ["(scale) source file", 1, src["bytes"], "-", src["bytes"] / n],
        ["(scale) raw yuv420p", "-", "-", "-", w * h * 1.5],
        ["(scale) raw RGB24", "-", "-", "-", w * h * 3],
    ]
    print(table(["objects", "count", "bytes", "B / stored frame", "B / source frame"],
                [[r[0], r[1], *[f"{v:,.0f}" if isinstance(v, (int, float)) else v for v in r[2:]]] for r in rows],
                f"object store bytes for {clip.name} ({w}x{h}, {n} frames, {len(chunks)} chunks, "
                f"{stored_frames} frames stored in input chunks incl. warm-up)"))
    print()
    raw = w * h * 1.5
    print(table(["chunk", "farm code says", "stream says (codec, profile, pix_fmt, x264 rate control)",
                 "x raw yuv420p"],
                [codec_row("input", codecs, "qp", sizes["input_standalone_shard"] / stored_frames / raw),
                 codec_row("output", codecs, "crf", sizes["output_chunks"] / n / raw)], "codec settings"))
    print()
    print(f"input chunks left in the store after the job: {len(left_inputs)} of {len(chunks)} "
          f"({'the driver deletes them once rendered' if not left_inputs else 'kept'}); "
          f"all {len(chunks)} seen while running: {seen_all}")
    print(f"output chunks left: {len(outputs)} of {len(chunks)} (kept: the reducer and resume need them)")
    print(f"most input bytes in the store at once: {watcher.peak_bytes / 2**20:.1f} MiB in {watcher.peak_objects} "
          f"objects (the shard runs ahead of the workers by the feeder's queue depth)")
    print(load_note(env))
    path = write_result("store_bytes", {"environment": env, "clip": str(clip), "source": src,
                                        "chunks": len(chunks), "stored_frames": stored_frames, "sizes": sizes,
                                        "input_sizes_seen": watcher.sizes, "input_sizes_standalone": shard_sizes,
                                        "input_peak_bytes": watcher.peak_bytes,
                                        "input_peak_objects": watcher.peak_objects,
                                        "inputs_left_after_job": left_inputs, "codecs": codecs,
                                        "render": {"wall_s": result["wall_s"], "json": result["json"]},
                                        "args": vars(args), "cmdline": sys.argv})
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
