"""Shard tasks: each cuts its own span of the plan, seeking to a keyframe, and together they cut every frame once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from farm import video
from farm.plan import Layout, plan_chunks
from farm.shard import LocalSharders, ShardFeeder, cut_span, plan_spans, seek_table, shard
from farm.store import LocalStore
from tests.clips import make_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_clip(tmp_path_factory.mktemp("shard") / "s.mp4", frames=60, width=64, height=48)


def stored_frames(store: LocalStore, layout: Layout, index: int) -> list[video.Frame]:
    return list(video.read_segment(store.local_path(layout.input(index, video.SEGMENT_EXT))))


def assert_cut_exactly(store: LocalStore, layout: Layout, chunks, clip: Path, tmp_path: Path) -> None:
    """Each chunk's input object holds exactly its warm-up and its frames (their pts), with the pixels one
    stream decoding the source from its start writes (the driver's cut before shard tasks)."""
    pts = [f.pts for f in video.iter_frames(clip, video.probe(clip))]
    reference, ref_layout = LocalStore(tmp_path / "reference"), Layout("reference")
    list(shard(clip, video.probe(clip), chunks, reference, ref_layout))
    for chunk in chunks:
        got = stored_frames(store, layout, chunk.index)
        assert [f.pts for f in got] == pts[chunk.first:chunk.end], chunk
        want = stored_frames(reference, ref_layout, chunk.index)
        assert all(np.array_equal(g.rgb, w.rgb) for g, w in zip(got, want)), chunk


def test_keyframes_are_numbered_by_presentation_order(clip):
    table = seek_table(clip)
    assert [p.index for p in table] == [0, 12, 24, 36, 48]  # the clip has a keyframe every 12 frames
    pts = [f.pts for f in video.iter_frames(clip, video.probe(clip))]
    assert all(pts[p.index] == p.pts for p in table)


def test_spans_cut_every_frame_once_across_boundaries_and_warmups(clip, tmp_path):
    info = video.probe(clip)
    chunks = plan_chunks(60, 7, warmup=3)
    spans = list(plan_spans(chunks, seek_table(clip), min_frames=15))
    assert [c.index for s in spans for c in s.chunks] == [c.index for c in chunks]  # every chunk once, in order
    assert any(s.seek.index > 0 for s in spans) and all(s.seek.index <= s.first for s in spans)
    store, layout = LocalStore(tmp_path / "store"), Layout("cut")
    for span in reversed(spans):  # each span on its own, in any order: no task depends on another
        assert cut_span(str(clip), info, span, store.uri, "cut") == ([], {})  # no cut detection, no copy asked for
    assert_cut_exactly(store, layout, chunks, clip, tmp_path)


def test_a_resume_cuts_only_the_missing_chunks(clip, tmp_path):
    info = video.probe(clip)
    missing = [c for c in plan_chunks(60, 5, warmup=2) if c.index in (1, 2, 7, 11)]
    spans = list(plan_spans(missing, seek_table(clip), min_frames=100))
    assert [[c.index for c in s.chunks] for s in spans] == [[1, 2], [7], [11]]  # a gap ends a span
    store = LocalStore(tmp_path / "store")
    for span in spans:
        cut_span(str(clip), info, span, store.uri, "resume")
    assert_cut_exactly(store, Layout("resume"), missing, clip, tmp_path)
    assert len(store.list("jobs/resume/input/")) == 4


def test_two_shard_processes_feed_every_chunk_once_within_the_bound(clip, tmp_path):
    info = video.probe(clip)
    chunks = plan_chunks(60, 4, warmup=2)
    store = LocalStore(tmp_path / "store")
    sharders = LocalSharders(2)
    try:
        feeder = ShardFeeder(sharders, plan_spans(chunks, seek_table(clip), min_frames=8),
                             (str(clip), info, store.uri, "fed"), depth=3, tasks=2)
        taken, most = [], 0
        while not feeder.exhausted:
            most = max(most, len(store.list("jobs/fed/input/")) - len(taken))
            if (chunk := feeder.take(timeout=5.0)) is not None:
                taken.append(chunk.index)
                store.delete_prefix(Layout("fed").input(chunk.index, video.SEGMENT_EXT))  # as a worker does
    finally:
        sharders.close()
    assert sorted(taken) == [c.index for c in chunks]
    # cut but not yet taken: fewer than the depth when a span starts, plus that span's chunks, per task
    assert most <= 3 + 2 * 3



def test_shard_tasks_on_ray_do_not_wait_for_the_cpus_the_style_pool_holds(cli, ray_local, tmp_path):
    # three spans; the two style actors take both of the embedded Ray's CPUs once they start, and a shard
    # task that waited for a free CPU would wait forever (it holds the chunks the actors wait for)
    clip = make_clip(tmp_path / "spans.mp4", frames=150, width=32, height=24)
    result = cli("submit", clip, "--chunk-frames", "50", "--no-gif", "--shard-tasks", "1", "--json",
                 "--workers", "2")
    assert result.code == 0, result.stderr
    from tests.test_cli import video_facts

    assert video_facts(tmp_path / "spans_vangogh.mp4")["frames"] == 150


def test_a_ray_shard_task_error_comes_back_as_itself(ray_local, clip, tmp_path):
    from farm.cluster import RaySharders
    from farm.errors import InputError

    info = video.probe(clip)
    span = next(plan_spans(plan_chunks(60, 30, warmup=0), seek_table(clip)))
    sharders = RaySharders()
    try:
        call = sharders.submit(str(tmp_path / "gone.mp4"), info, span, LocalStore(tmp_path / "s").uri, "gone")
        assert sharders.wait([call], timeout=120) == [call]
        with pytest.raises(InputError) as failed:
            sharders.result(call)
    finally:
        sharders.close()
    assert str(failed.value) == f"input not found: {tmp_path / 'gone.mp4'}"  # one line, no remote traceback
