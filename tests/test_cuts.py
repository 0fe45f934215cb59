"""Hard cuts: found on the input frames (by shard tasks, range by range, as one pass would), and coherence forgets
the old shot."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from farm import video
from farm.config import EncodeOptions, RenderOptions, TemporalOptions
from farm.plan import Chunk, Layout, plan_chunks
from farm.store import LocalStore
from farm.styles.resolve import named_style
from farm.shard import LocalSharders, ShardFeeder, plan_spans, seek_table
from farm.shots import LOOKBACK, ShotBook
from farm.temporal import cuts as cutsmod
from farm.temporal.cuts import RangeScorer, content_scores, candidates, detect_cuts
from farm.worker import JobContext, StyleWorker, split_at_cuts
from tests.motion import crossing, fast, hard_cut, pan, zoom_rotate
from tests.waiting import take_all


def test_detection_finds_the_cut_of_a_two_shot_clip():
    clip = hard_cut(frames=40, width=160, height=120, cut=23)
    assert detect_cuts(clip.all_frames()) == [23]


@pytest.mark.parametrize("make", [pan, zoom_rotate, crossing, fast])
def test_detection_finds_nothing_in_one_shot(make):
    assert detect_cuts(make(frames=24, width=160, height=120).all_frames()) == []


def test_a_fast_pan_is_not_a_cut():
    """24 px/frame scores above ContentDetector's fixed threshold (it cuts this clip at frame 57); against
    its neighbours' scores it is no cut."""
    assert detect_cuts(fast(frames=64).all_frames()) == []


@pytest.fixture(scope="module")
def four_shots() -> list[np.ndarray]:
    """Cuts at 20 and 45; frame 28 stands out too, but only 8 frames into a shot (MIN_SHOT is 15)."""
    a, b = pan(70, 64, 48, 1.0, "p").all_frames(), zoom_rotate(70, 64, 48).all_frames()
    c, d = crossing(70, 64, 48).all_frames(), hard_cut(70, 64, 48, cut=5).all_frames()
    frames = a[:20] + b[20:28] + c[28:45] + d[45:70]
    assert candidates(content_scores(frames)) == [20, 28, 45] and detect_cuts(frames) == [20, 45]
    return frames


def judge(frames, first: int, end: int) -> list[int]:
    """What one shard task finds among frames [first, end), decoding from LOOKBACK frames before them."""
    scorer = RangeScorer(first, end, len(frames))
    for i in range(max(first - LOOKBACK, 0), scorer.needs_until):
        scorer.feed(i, frames[i])
    return scorer.candidates()


def test_ranges_judged_apart_in_any_order_settle_to_the_cuts_of_one_pass(four_shots):
    assert LOOKBACK == cutsmod.LOOKBACK
    ranges = [(0, 13), (13, 21), (21, 29), (26, 46), (40, 70)]  # overlapping, as spans' warm-ups do
    found = {r: judge(four_shots, *r) for r in reversed(ranges)}
    book = ShotBook()
    for first, end in ranges:  # settled in plan order, whatever order the tasks came back in
        book.settle(first, end, found[first, end])
    assert book.cuts == [20, 45]
    assert book.within(13, 29) == [20]


def test_a_resume_settles_the_missing_ranges_from_the_recorded_cuts(four_shots):
    book = ShotBook(known=[20, 45], done=[(0, 27)])  # 45 lies outside what is done: judged again
    assert book.cuts == [20]
    book.settle(27, 70, judge(four_shots, 27, 70))  # 28 is a candidate, too close to the recorded 20
    assert book.cuts == [20, 45]


def test_shard_tasks_hand_out_chunks_with_the_cuts_of_their_frames(tmp_path, four_shots):
    clip = write_video(tmp_path / "shots.mp4", four_shots)
    decoded = [f.rgb for f in video.iter_frames(clip, video.probe(clip))]
    whole = detect_cuts(decoded)
    assert whole == [20, 45]
    chunks = plan_chunks(70, 9, warmup=4)
    store, book, sharders = LocalStore(tmp_path / "store"), ShotBook(), LocalSharders(2)
    try:
        feeder = ShardFeeder(sharders, plan_spans(chunks, seek_table(clip), min_frames=10),
                             (str(clip), video.probe(clip), store.uri, "shots"), depth=4, tasks=2, book=book)
        taken = take_all(feeder)
    finally:
        sharders.close()
    assert book.cuts == whole
    assert [c.index for c in taken] == [c.index for c in chunks]
    assert [c.cuts for c in taken] == [[x for x in whole if c.first <= x < c.end] for c in chunks]


class HeldJudging:
    """Shard tasks run at once in this process, except a span's judging (its second task, with chunks handed
    out early), held until the test lets it go: what a long judging looks like to the feeder."""

    def __init__(self):
        self.held: list = []

    def submit(self, *args):
        from concurrent.futures import Future

        from farm.shard import cut_span

        call, store_chunks = Future(), args[-1]
        if store_chunks:
            call.set_result(cut_span(*args))
        else:
            self.held.append((call, args))
        return call

    def release(self):
        from farm.shard import cut_span

        for call, args in self.held:
            call.set_result(cut_span(*args))
        self.held.clear()

    @staticmethod
    def wait(calls, timeout):
        return [c for c in calls if c.done()]

    @staticmethod
    def result(call):
        return call.result()

    def close(self):
        pass


def test_copied_chunks_leave_before_their_frames_are_judged_and_their_cuts_follow(tmp_path, four_shots):
    clip = write_video(tmp_path / "shots.mp4", four_shots)
    chunks, store, book, sharders = plan_chunks(70, 30, warmup=4), LocalStore(tmp_path / "store"), ShotBook(), HeldJudging()
    published = []
    feeder = ShardFeeder(sharders, plan_spans(chunks, seek_table(clip), min_frames=10),
                         (str(clip), video.probe(clip), store.uri, "early"), depth=4, tasks=1, book=book, copy=True,
                         publish=lambda b: published.append((b.frontier, list(b.cuts))))
    taken = [feeder.take(timeout=0.0) for _ in chunks]  # every chunk at once, though nothing is judged yet
    assert [c.index for c in taken] == [c.index for c in chunks]
    assert all(c.cuts is None for c in taken) and taken[0].lead == 0  # (the last is too far from the one keyframe
    # to copy: stored losslessly by the same first task)
    assert all(store.exists(Layout("early").input(c.index, video.SEGMENT_EXT)) for c in taken)
    assert not feeder.exhausted and published == []
    while sharders.held or not feeder.exhausted:  # one judging at a time (tasks=1), each settled in plan order
        sharders.release()
        feeder.poll()
        feeder.take(timeout=0.0)
    assert published[-1] == (70, [20, 45]) and [f for f, _ in published] == sorted(f for f, _ in published)


def test_a_worker_reads_cuts_settled_after_its_chunk_left(tmp_path):
    import threading

    from farm.errors import InternalError
    from farm.plan import SettledCuts
    from farm.worker import ChunkCuts

    store, layout = LocalStore(tmp_path / "store"), Layout("late")
    chunk = Chunk(index=1, start=30, end=60, warmup=10, cuts=None)

    def settle(frontier, cuts):
        store.put_bytes(layout.cuts, SettledCuts(frontier=frontier, cuts=cuts).model_dump_json().encode())

    cuts = ChunkCuts(chunk, store, layout, poll=0.01, patience=60)
    assert not cuts.known_before(21)
    settle(40, [5, 25])
    assert cuts.before(35) == [25]  # the chunk's own frames only (its first is 20)
    timer = threading.Timer(0.2, settle, (70, [5, 25, 50, 65]))
    timer.start()
    assert cuts.before(60) == [25, 50]  # waited for the driver to settle frames up to the chunk's end
    timer.join()
    assert ChunkCuts(chunk.model_copy(update={"cuts": [50]}), store, layout).before(60) == [50]  # handed with it
    with pytest.raises(InternalError, match="not settled"):
        ChunkCuts(Chunk(index=2, start=70, end=90, cuts=None), store, layout, poll=0.01, patience=0.1).before(80)


def test_split_at_cuts():
    assert split_at_cuts(list(range(10, 14)), 10, [12, 30]) == [[10, 11], [12, 13]]
    assert split_at_cuts([10, 11], 10, [10]) == [[10, 11]]


def render_chunk(tmp_path, frames, chunk: Chunk, enabled: bool, flow: str = "dis",
                 settled: list[int] | None = None) -> list[np.ndarray]:
    """One worker renders ``chunk`` of ``frames`` (stored losslessly, output lossless too); ``settled``: the
    film's cuts, settled for every frame, where the chunk was handed out without them."""
    from farm.plan import SettledCuts

    tmp_path.mkdir()
    store, layout, h, w = LocalStore(tmp_path / "store"), Layout("job"), *frames[0].shape[:2]
    if settled is not None:
        store.put_bytes(layout.cuts, SettledCuts(frontier=len(frames), cuts=settled).model_dump_json().encode())
    src = tmp_path / f"in{video.SEGMENT_EXT}"
    with video.SegmentWriter(src, w, h, Fraction(1, 24), lossless=True) as writer:
        for pts, image in enumerate(frames[chunk.first:chunk.end]):
            writer.write(image, chunk.first + pts)
    store.put_file(layout.input(chunk.index, video.SEGMENT_EXT), src)
    options = RenderOptions(style=named_style("vangogh", 1.0, lambda: None), precision="float32",
                            temporal=TemporalOptions(flow=flow, enabled=enabled),
                            encode=EncodeOptions(codec="libx264", crf=0, pix_fmt="yuv444p"))
    job = JobContext(job_id="job", store_uri=store.uri, render=options, width=w, height=h, time_base=Fraction(1, 24))
    receipt = StyleWorker(device="cpu", threads=1, overlap=1, batch=3).render(job, chunk)
    return [f.rgb for f in video.read_segment(store.local_path(receipt.key))]


@pytest.mark.parametrize("flow", ["dis", "torch"])  # HostPainter and DevicePainter
def test_after_a_cut_the_first_output_frame_is_its_per_frame_stylization(tmp_path, flow):
    frames = hard_cut(frames=14, width=96, height=64, cut=8).all_frames()
    chunk = Chunk(index=0, start=2, end=14, warmup=2, cuts=[8])
    coherent = render_chunk(tmp_path / "a", frames, chunk, enabled=True, flow=flow)
    per_frame = render_chunk(tmp_path / "b", frames, chunk, enabled=False)
    at_cut = 8 - chunk.start
    np.testing.assert_array_equal(coherent[at_cut], per_frame[at_cut])
    assert np.abs(coherent[at_cut + 1].astype(int) - per_frame[at_cut + 1]).mean() > 0.5  # coherence is on after it


def test_warmup_frames_before_a_cut_change_nothing(tmp_path):
    """A chunk whose warm-up reaches back across a cut renders as if its warm-up began at the cut: the worker
    forgets that history anyway (and does not paint it), so chunk boundaries need not sit on cuts."""
    frames = hard_cut(frames=14, width=96, height=64, cut=8).all_frames()
    across = render_chunk(tmp_path / "a", frames, Chunk(index=1, start=10, end=14, warmup=5, cuts=[8]), True)
    from_cut = render_chunk(tmp_path / "b", frames, Chunk(index=1, start=10, end=14, warmup=2, cuts=[8]), True)
    assert len(across) == 4
    for a, b in zip(across, from_cut):
        np.testing.assert_array_equal(a, b)


def test_a_chunk_handed_out_before_its_cuts_renders_as_one_handed_them(tmp_path):
    """Its worker paints the warm-up frames before the cut (not knowing it yet) and forgets them there."""
    frames = hard_cut(frames=14, width=96, height=64, cut=8).all_frames()
    handed = render_chunk(tmp_path / "a", frames, Chunk(index=1, start=10, end=14, warmup=5, cuts=[8]), True)
    late = render_chunk(tmp_path / "b", frames, Chunk(index=1, start=10, end=14, warmup=5, cuts=None), True,
                        settled=[8])
    assert len(late) == 4
    for a, b in zip(handed, late):
        np.testing.assert_array_equal(a, b)


def write_video(path, frames, fps: int = 24):
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt, stream.options = "yuv420p", {"crf": "12"}
        for image in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))
    return path


def test_a_job_records_the_cuts_its_shard_tasks_found(cli, tmp_path, private_store):
    clip = write_video(tmp_path / "two.mp4", hard_cut(frames=34, width=96, height=64, cut=17).all_frames())
    result = cli("submit", clip, "--job-id", "shots", "--chunk-frames", "16", "--no-gif", "--json")
    assert result.code == 0, result.stderr
    status = json.loads(cli("status", "shots", "--json").stdout)
    assert status["cuts"] == 1
    manifest = json.loads((private_store / "jobs" / "shots" / "manifest.json").read_text())
    assert manifest["cuts"] == [17]
    # boundaries stay where the plan put them (the cuts are found while the chunks are cut); each chunk
    # knows the cuts among its frames, warm-up included (26 frames at the default coherence 0.9: the last
    # chunk's warm-up reaches back over the cut)
    assert [(c["start"], c["warmup"], c["cuts"]) for c in manifest["chunks"]] == [(0, 0, []), (16, 16, [17]),
                                                                                (32, 26, [17])]
    from tests.test_cli import video_facts

    assert video_facts(tmp_path / "two_vangogh.mp4")["frames"] == 34
