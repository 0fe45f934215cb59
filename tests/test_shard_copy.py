"""Stream-copied input chunks: the source's own packets from a keyframe, decoded by the worker exactly as
decoding the source gives its frames; lossless x264 wherever copying is not safe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from farm import video
from farm.plan import Layout, plan_chunks
from farm.shard import (COPY_LEAD_LIMIT, START, LocalSharders, ShardFeeder, cut_span, plan_spans, seek_table,
                        shard)
from farm.store import LocalStore
from tests.clips import make_clip
from tests.waiting import take_all


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("copy") / "c.mp4", frames=60, width=64, height=48)


def source_frames(clip: Path) -> list[video.Frame]:
    return list(video.iter_frames(clip, video.probe(clip)))


def input_frames(store: LocalStore, layout: Layout, chunk, lead: int | None, info) -> list[video.Frame]:
    path = store.local_path(layout.input(chunk.index, video.SEGMENT_EXT))
    if lead is None:
        return list(video.read_segment(path))
    return list(video.read_copied(path, info, lead, chunk.end - chunk.first))


def copy_in_thirds(clip: Path, tmp_path: Path, job: str, min_frames: int) -> tuple[list, list[video.Frame]]:
    """A 30-frame clip cut by copy into chunks of 10 (+ 2 warm-up), spans of at least ``min_frames``:
    every chunk must be copied; the chunks, and the frames a worker gets past each warm-up."""
    info = video.probe(clip)
    chunks = plan_chunks(30, 10, warmup=2)
    store, layout, leads = LocalStore(tmp_path / "store"), Layout(job), {}
    for span in plan_spans(chunks, seek_table(clip), min_frames=min_frames):
        leads.update(cut_span(str(clip), info, span, store.uri, job, False, True).leads)
    assert sorted(leads) == [0, 1, 2]
    return chunks, [f for c in chunks for f in input_frames(store, layout, c, leads[c.index], info)[c.warmup:]]


def test_copied_spans_hold_every_frame_once_exactly_as_the_source_decodes(clip, tmp_path):
    info, want = video.probe(clip), source_frames(clip)
    chunks = plan_chunks(60, 7, warmup=3)
    spans = list(plan_spans(chunks, seek_table(clip), min_frames=15))
    store, layout, leads = LocalStore(tmp_path / "store"), Layout("copy"), {}
    for span in reversed(spans):  # each span on its own, in any order
        found = cut_span(str(clip), info, span, store.uri, "copy", False, True)
        assert found.candidates == []
        leads.update(found.leads)
    # keyframes every 12 frames: a chunk of 3 + 7 frames whose keyframe is 11 frames back is not copied
    assert any(lead > 0 for lead in leads.values()) and len(leads) < len(chunks)
    assert all(lead <= COPY_LEAD_LIMIT * (c.end - c.first) for c in chunks if (lead := leads.get(c.index)))
    for chunk in chunks:
        got = input_frames(store, layout, chunk, leads.get(chunk.index), info)
        assert [f.pts for f in got] == [f.pts for f in want[chunk.first:chunk.end]], chunk
        if chunk.index in leads:  # exact: the source's own pictures (lossless x264 is exact in YUV only)
            assert all(np.array_equal(g.rgb, w.rgb) for g, w in zip(got, want[chunk.first:chunk.end])), chunk


def test_a_copy_is_exact_where_a_lossless_reencode_is_not(tmp_path):
    # BT.709 colour and sharp edges: 4:2:0 chroma made twice moves colour edges in a re-encode
    clip = make_clip(tmp_path / "709.mp4", frames=30, width=96, height=64, colour=(1, 1, 1))
    info, want = video.probe(clip), source_frames(clip)
    chunks, got = copy_in_thirds(clip, tmp_path, "exact", min_frames=10)
    assert [f.pts for f in got] == [f.pts for f in want]
    assert all(np.array_equal(g.rgb, w.rgb) for g, w in zip(got, want))
    reference, ref_layout = LocalStore(tmp_path / "lossless"), Layout("lossless")
    list(shard(clip, info, chunks, reference, ref_layout))  # what the lossless x264 path hands a worker
    lossless = [f for c in chunks for f in input_frames(reference, ref_layout, c, None, info)[c.warmup:]]
    assert any(not np.array_equal(g.rgb, w.rgb) for g, w in zip(lossless, want))


def test_copy_falls_back_to_lossless_where_it_is_not_safe(clip, tmp_path):
    info = video.probe(clip)
    chunks = plan_chunks(60, 10, warmup=2)
    store = LocalStore(tmp_path / "store")
    untrusted = list(plan_spans(chunks, [START], min_frames=100))  # timestamps not trusted
    pts = [f.pts for f in source_frames(clip)]
    trimmed = info.model_copy(update={"window_first_pts": pts[0], "window_last_pts": pts[-1],
                                      "window_end_pts": pts[-1] + 1})  # a trim of the whole clip
    for name, facts, spans in (("untrusted", info, untrusted),
                               ("trimmed", trimmed, list(plan_spans(chunks, seek_table(clip), min_frames=100)))):
        found = cut_span(str(clip), facts, spans[0], store.uri, name, False, True)
        assert found.leads == {}, name
        assert len(store.list(f"jobs/{name}/input/")) == len(chunks)


def test_a_keyframe_far_behind_a_chunk_is_not_copied(tmp_path):
    clip = make_clip(tmp_path / "long_gop.mp4", frames=60, width=32, height=24, gop=60)  # one GOP
    info = video.probe(clip)
    chunks = plan_chunks(60, 10, warmup=2)
    found = cut_span(str(clip), info, next(plan_spans(chunks, seek_table(clip), min_frames=100)),
                     LocalStore(tmp_path / "s").uri, "long", False, True)
    # chunk 0 starts at the keyframe; chunk 1's 8 frames of lead are within its 12; the rest decode too much
    assert found.leads == {0: 0, 1: 8}


def test_the_feeder_hands_out_chunks_with_their_leads(clip, tmp_path):
    info = video.probe(clip)
    chunks = plan_chunks(60, 12, warmup=2)
    store = LocalStore(tmp_path / "store")
    sharders = LocalSharders(2)
    try:
        feeder = ShardFeeder(sharders, plan_spans(chunks, seek_table(clip), min_frames=12),
                             (str(clip), info, store.uri, "fed"), depth=3, tasks=2, copy=True)
        taken = take_all(feeder)
    finally:
        sharders.close()
    assert sorted(c.index for c in taken) == [c.index for c in chunks]
    # keyframes every 12 frames, chunks of 12 + 2 warm-up: each copied from the keyframe 2 frames before it
    assert {c.index: c.lead for c in taken} == {0: 0, 1: 10, 2: 10, 3: 10, 4: 10}


def test_a_job_cut_by_copy_renders_and_resumes(cli, tmp_path, private_store):
    from tests.test_cli import video_facts

    clip = make_clip(tmp_path / "copied.mp4", frames=24, width=64, height=48)
    blocker = private_store / "jobs" / "copied" / "output" / "000001.mp4"
    blocker.mkdir(parents=True)  # chunk 1's output can never be stored: the job fails, then resumes
    failed = cli("submit", clip, "--job-id", "copied", "--chunk-frames", "12", "--no-gif", "--json")
    assert failed.code == 1
    blocker.rmdir()
    resumed = cli("resume", "copied", "--json")
    assert resumed.code == 0, resumed.stderr
    receipts = [json.loads(p.read_text()) for p in (private_store / "jobs" / "copied" / "output").glob("*.json")]
    assert sorted(r["chunk"] for r in receipts) == [0, 1]
    assert all(r["lead"] is not None for r in receipts)  # both chunks' inputs were the source's own packets
    assert video_facts(Path(json.loads(resumed.stdout)["output"]))["frames"] == 24


@pytest.mark.parametrize("name, facts", [("r.mp4", {"rotation": 90}), ("v.mp4", {"vfr": True}),
                                         ("o.mp4", {"hflip": True, "width": 65, "height": 47}),
                                         ("m.mkv", {}), ("w.webm", {"codec": "libvpx-vp9"})])
def test_a_copy_decodes_with_the_source_facts(tmp_path, name, facts):
    # turned as a player shows it, variable frame timing, an odd size padded, Matroska's 1 ms clock, VP9:
    # as decoding the source gives
    clip = make_clip(tmp_path / name, **{"frames": 30, "width": 64, "height": 48, **facts})
    want = source_frames(clip)
    _, got = copy_in_thirds(clip, tmp_path, "facts", min_frames=30)
    assert [f.pts for f in got] == [f.pts for f in want]
    assert all(np.array_equal(g.rgb, w.rgb) for g, w in zip(got, want))
