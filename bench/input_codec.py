"""Input chunks: what writing and reading one costs per frame, and its bytes, for each lossless candidate.

    python bench/input_codec.py [--clip bikes bigbuckbunny] [--repeats 3] [--chunks 25+12 150+12]

Every candidate starts from the frames a shard task holds (the source decoded to RGB through its colour
description, as farm.video.iter_frames gives them) and ends with the RGB frames a worker paints; "exact" compares those with the frames it started from (mean
and largest absolute difference, in levels of 255). One
thread everywhere (a shard task and a worker's decoder are one CPU's work each). Candidates:

- x264 qp 0 as farm writes input chunks (farm.video.SegmentWriter/read_segment, MP4), and x264 qp 0 at
  presets veryfast (farm's before), superfast (farm's now) and ultrafast, tune fastdecode, FFV1, Ut Video and MagicYUV (lossless intra codecs in
  FFmpeg), and raw yuv420p planes deflated with zlib level 1 (no zstd in the venv): each converts RGB to the
  source's yuv420p with farm's own conversion and back (lossless on the YUV planes; whether RGB survives
  the second trip through the matrix is what "exact" shows);
- ``stream copy``: the source's own packets from the keyframe at or before a chunk's first warm-up frame
  through the GOP that holds its last frame, remuxed without decoding (the shard task's write), then
  decoded by the worker, which drops the frames before the warm-up (its read, per frame it keeps). Chunks
  of ``--chunks`` (frames+warm-up) tile the clip; exact when its frames equal the source decoded in one
  stream.

Runs alternate between candidates; medians of ``--repeats``. Results: bench/results/input_codec.json.
"""

from __future__ import annotations

import argparse
import io
import time
import zlib
from pathlib import Path

import av
import numpy as np

from common import environment, load_note, median, sample, table, write_result


def source_frames(clip: Path):
    from farm import video

    info = video.probe(clip)
    return info, [f.rgb for f in video.iter_frames(clip, info)]


# ---------------------------------------------------------------- re-encoding candidates: (write, read) pairs


def segment_pair(info, frames):
    """Today's path: farm.video.SegmentWriter(lossless) and read_segment, one thread."""
    from farm import video

    def write() -> bytes:
        path = Path("/dev/shm") / f"farm-bench-{id(frames)}.mp4"
        with video.SegmentWriter(path, info.out_width, info.out_height, info.time_base, lossless=True, threads=1,
                                 colour=info.colour.output) as writer:
            for pts, rgb in enumerate(frames):
                writer.write(rgb, pts)
        data = path.read_bytes()
        path.unlink()
        return data

    def read(data: bytes) -> list[np.ndarray]:
        path = Path("/dev/shm") / f"farm-bench-r{id(frames)}.mp4"
        path.write_bytes(data)
        try:
            return [f.rgb for f in video.read_segment(path, threads=1)]
        finally:
            path.unlink()

    return write, read


def av_pair(info, frames, codec: str, options: dict[str, str], fmt: str = "matroska"):
    """Any FFmpeg encoder through PyAV, with farm's RGB<->YUV conversion."""
    from farm.video.colour import from_rgb_array, to_rgb_array

    colour = info.colour.output

    def write() -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format=fmt) as out:
            stream = out.add_stream(codec, rate=24)
            stream.width, stream.height, stream.pix_fmt = info.out_width, info.out_height, "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = options
            for pts, rgb in enumerate(frames):
                frame = from_rgb_array(rgb, "yuv420p", colour)
                frame.pts = pts
                out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return buf.getvalue()

    def read(data: bytes) -> list[np.ndarray]:
        with av.open(io.BytesIO(data)) as inp:
            stream = inp.streams.video[0]
            stream.codec_context.thread_count = 1
            return [to_rgb_array(f, colour) for f in inp.decode(stream)]

    return write, read


def zlib_pair(info, frames):
    """Raw yuv420p planes, deflated (zlib level 1), one record per frame."""
    from farm.video.colour import from_rgb_array, to_rgb_array

    colour, h = info.colour.output, info.out_height

    def write() -> bytes:
        parts = [zlib.compress(from_rgb_array(rgb, "yuv420p", colour).to_ndarray().tobytes(), 1) for rgb in frames]
        return b"".join(len(p).to_bytes(4, "little") + p for p in parts)

    def read(data: bytes) -> list[np.ndarray]:
        out, at = [], 0
        while at < len(data):
            n = int.from_bytes(data[at:at + 4], "little")
            planes = np.frombuffer(zlib.decompress(data[at + 4:at + 4 + n]), np.uint8).reshape(h * 3 // 2, -1)
            out.append(to_rgb_array(av.VideoFrame.from_ndarray(planes, format="yuv420p"), colour))
            at += 4 + n
        return out

    return write, read


def candidates(info, frames) -> dict:
    fast = {"qp": "0", "tune": "fastdecode"}
    pairs = {
        "x264 qp 0 as farm writes it (SegmentWriter)": segment_pair(info, frames),
        "x264 veryfast fastdecode": av_pair(info, frames, "libx264", {**fast, "preset": "veryfast"}),
        "x264 ultrafast fastdecode": av_pair(info, frames, "libx264", {**fast, "preset": "ultrafast"}),
        "x264 superfast fastdecode": av_pair(info, frames, "libx264", {**fast, "preset": "superfast"}),
        "ffv1": av_pair(info, frames, "ffv1", {"threads": "1"}),
        "utvideo": av_pair(info, frames, "utvideo", {}, fmt="nut"),
        "magicyuv": av_pair(info, frames, "magicyuv", {}, fmt="nut"),
        "yuv420p + zlib 1": zlib_pair(info, frames),
    }
    usable = {}
    for name, (write, read) in pairs.items():
        try:
            write()
        except Exception as err:  # an encoder this FFmpeg lacks
            print(f"skipped {name}: {err}")
            continue
        usable[name] = (write, read)
    return usable


# ---------------------------------------------------------------- stream copy


def stream_copy_chunks(clip: Path, table_, ranges):
    """(write, read, exact-check) for chunks [first, end) remuxed from the source's packets."""
    from farm import video
    from farm.video.probe import open_input, video_stream

    info = video.probe(clip)
    starts = [p.index for p in table_]

    def gop_bounds(first: int, end: int) -> tuple[int, int | None]:
        import bisect

        at = bisect.bisect_right(starts, first) - 1
        after = bisect.bisect_left(starts, end)
        return table_[at].pts, (table_[after].pts if after < len(table_) else None)

    def write() -> list[bytes]:
        out = []
        with open_input(clip) as inp:
            stream = video_stream(inp, clip)
            for first, end in ranges:
                lo, hi = gop_bounds(first, end)
                inp.seek(lo, stream=stream, backward=True, any_frame=False)
                buf = io.BytesIO()
                with av.open(buf, "w", format="mp4") as dst:
                    ostream = dst.add_stream_from_template(stream)
                    for packet in inp.demux(stream):
                        if packet.dts is None:
                            continue
                        if hi is not None and packet.is_keyframe and packet.pts is not None and packet.pts >= hi:
                            break
                        packet.stream = ostream
                        dst.mux(packet)
                out.append(buf.getvalue())
        return out

    def read(objects: list[bytes]) -> list[np.ndarray]:
        frames = []
        for (first, end), data in zip(ranges, objects):
            at = starts[max(i for i, s in enumerate(starts) if s <= first)]
            with av.open(io.BytesIO(data)) as inp:
                stream = inp.streams.video[0]
                stream.codec_context.thread_count = 1
                for n, frame in enumerate(inp.decode(stream), start=at):
                    if first <= n < end:
                        frames.append(video.to_rgb(frame, info.width, info.height, info.out_width, info.out_height,
                                                   info.orientation, info.colour))
                    elif n >= end:
                        break
        return frames

    return write, read


def tiling(total: int, frames: int, warmup: int) -> list[tuple[int, int]]:
    return [(max(start - warmup, 0), min(start + frames, total)) for start in range(0, total, frames)]


def main() -> None:
    from farm.shard import seek_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--clip", nargs="+", default=["bikes", "bigbuckbunny"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", nargs="+", default=["25+12", "150+12"])
    parser.add_argument("--name", default="input_codec", help="results file: bench/results/NAME.json")
    args = parser.parse_args()
    env, results = environment(), {}
    for name in args.clip:
        clip = sample(name)
        info, frames = source_frames(clip)
        table_ = seek_table(clip)
        print(f"{name}: {info.out_width}x{info.out_height}, {len(frames)} frames, keyframes at "
              f"{[p.index for p in table_]}", flush=True)
        pairs = candidates(info, frames)
        for spec in args.chunks:
            n, warmup = map(int, spec.split("+"))
            ranges = tiling(len(frames), n, warmup)
            pairs[f"stream copy, chunks {spec}"] = stream_copy_chunks(clip, table_, ranges)
        times = {k: {"write": [], "read": []} for k in pairs}
        sizes, exact = {}, {}
        for _ in range(args.repeats):
            for key, (write, read) in pairs.items():
                t = time.process_time()
                data = write()
                t_write = time.process_time() - t
                t = time.process_time()
                got = read(data)
                t_read = time.process_time() - t
                copy = key.startswith("stream copy")
                per = sum(e - f for f, e in tiling(len(frames), *map(int, key.split()[-1].split("+")))) if copy \
                    else len(frames)
                times[key]["write"].append(1000 * t_write / per)
                times[key]["read"].append(1000 * t_read / per)
                sizes[key] = (sum(map(len, data)) if copy else len(data)) / per
                if key not in exact:
                    want = [frames[i] for f, e in tiling(len(frames), *map(int, key.split()[-1].split("+")))
                            for i in range(f, e)] if copy else frames
                    assert len(got) == len(want), (key, len(got), len(want))
                    diff = [np.abs(a.astype(np.int16) - b) for a, b in zip(got, want)]
                    exact[key] = (float(np.mean([d.mean() for d in diff])), int(max(d.max() for d in diff)))
            print(".", end="", flush=True)
        print()
        rows = [[k, f"{median(v['write']):.2f}", f"{median(v['read']):.2f}",
                 f"{median(v['write']) + median(v['read']):.2f}", f"{sizes[k] / 1024:.1f}",
                 "yes" if exact[k][1] == 0 else f"no: mean {exact[k][0]:.3f}, max {exact[k][1]}"]
                for k, v in times.items()]
        print(table(["candidate", "write ms/frame", "read ms/frame", "sum", "KiB/frame", "exact"], rows,
                    title=f"{name} {info.out_width}x{info.out_height}: CPU ms per frame (one thread, medians of "
                          f"{args.repeats})"))
        results[name] = {k: {"write_ms": median(v["write"]), "read_ms": median(v["read"]),
                             "runs_write_ms": v["write"], "runs_read_ms": v["read"],
                             "bytes_per_frame": sizes[k],
                             "mean_abs_diff": exact[k][0], "max_abs_diff": exact[k][1]} for k, v in times.items()}
    print(load_note(env))
    print(f"wrote {write_result(args.name, {'environment': env, 'clips': results})}")


if __name__ == "__main__":
    main()
