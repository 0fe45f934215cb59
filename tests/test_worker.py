"""StyleWorker renders a chunk the same way whether its stages overlap or not, with any flow and codec."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from farm import codecs, video
from farm.config import EncodeOptions, RenderOptions, TemporalOptions
from farm.plan import Chunk, Layout
from farm.shard import shard
from farm.store import LocalStore
from farm.styles.resolve import named_style
from farm.worker import JobContext, StyleWorker
from tests.clips import make_clip

#: emitted frames 6..17 of an 18-frame clip, after 6 warm-up frames (a chunk in the middle of a job)
CHUNK = Chunk(index=1, start=6, end=18, warmup=6)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("worker")
    clip = make_clip(tmp / "clip.mp4", frames=18, width=80, height=48, fps=Fraction(24))
    info = video.probe(clip)
    store = LocalStore(tmp / "store")
    list(shard(clip, info, [CHUNK], store, Layout("job")))
    return store, info


def render(sharded, *, overlap: int, flow: str = "dis", codec: str = "auto", enabled: bool = True,
           batch: int | None = None) -> tuple[list[np.ndarray], list[int], str]:
    store, info = sharded
    options = RenderOptions(style=named_style("vangogh", 1.0, lambda: None), precision="float32",
                            temporal=TemporalOptions(flow=flow, enabled=enabled), encode=EncodeOptions(codec=codec))
    job = JobContext(job_id="job", store_uri=store.uri, render=options, width=info.out_width,
                     height=info.out_height, time_base=info.time_base)
    receipt = StyleWorker(device="cpu", threads=1, overlap=overlap, batch=batch).render(job, CHUNK)
    path = store.local_path(receipt.key)
    frames = list(video.read_segment(path))
    with av.open(str(path)) as container:
        name = container.streams.video[0].codec_context.name
    assert receipt.frames == len(frames) == CHUNK.frames
    # each timed stage also carries its thread's CPU seconds, which a thread cannot spend faster than the clock
    for stage in ("decode", "network", "encode") + (("temporal",) if enabled else ()):
        assert 0.0 < receipt.seconds[f"{stage}_cpu"] <= receipt.seconds[stage] + 1e-3
    return [f.rgb for f in frames], [f.pts for f in frames], name


def frame_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b).mean())


@pytest.mark.parametrize("flow", ["dis", "torch"])
def test_overlapped_chunk_equals_the_serial_one_frame_for_frame(sharded, flow):
    """Every frame once, in order, with its timestamp, and the same picture.

    The same picture up to a few levels, not bit for bit: two renders of one chunk in one test process
    differ by 1-3 levels on average (serial and serial alike; seen at the tests' 48-pixel reference
    side, where nothing is resized; the network, the decode and the torch flow are each bit-exact run
    again alone, so the cause is not pinned down yet). A frame dropped, repeated or swapped by the
    threads would be several times nearer another frame than its own.
    """
    serial, serial_pts, _ = render(sharded, overlap=0, flow=flow, batch=2)
    overlapped, overlapped_pts, _ = render(sharded, overlap=2, flow=flow, batch=2)
    assert overlapped_pts == serial_pts
    assert len(overlapped) == len(serial) == CHUNK.frames
    for i, frame in enumerate(overlapped):
        gaps = [frame_gap(frame, other) for other in serial]
        others = gaps[:i] + gaps[i + 1:]
        assert gaps[i] < 0.5 * min(others), (i, gaps)


def test_torch_flow_paints_close_to_dis(sharded):
    dis, _, _ = render(sharded, overlap=2, flow="dis")
    torch_flow, _, _ = render(sharded, overlap=2, flow="torch")
    per_frame, _, _ = render(sharded, overlap=2, enabled=False)
    diff = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(dis, torch_flow)])
    spread = np.mean([np.abs(a.astype(int) - b).mean() for a, b in zip(dis, per_frame)])
    assert diff < spread  # the two flows agree more with each other than coherence with none


def test_codec_auto_is_libx264_without_nvenc(sharded, monkeypatch):
    monkeypatch.setattr(codecs, "nvenc_works", lambda: False)
    assert codecs.resolve_codec("auto", "cuda") == codecs.resolve_codec("auto", "cpu") == "libx264"
    assert codecs.resolve_codec("libx265", "cuda") == "libx265"
    _, _, name = render(sharded, overlap=2, codec="auto")
    assert name == "h264"


def test_nvenc_options_map_x264_settings():
    assert codecs.encoder_options("h264_nvenc", lossless=False, crf=20, preset="veryfast") == {
        "rc": "vbr", "cq": "20", "b": "0", "preset": "p2", "tune": "hq"}
    assert codecs.encoder_options("libx264", lossless=False, crf=20, preset="slow") == {"crf": "20", "preset": "slow"}
