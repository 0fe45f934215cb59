"""Chunk plans: every frame in exactly one chunk, and automatic lengths that keep every worker busy."""

from __future__ import annotations

import pytest

from farm.plan import MAX_CHUNK_FRAMES, makespan, plan_chunks, warmup_for


@pytest.mark.parametrize("frames,workers", [(1, 1), (10, 2), (48, 2), (132, 2), (250, 2), (3000, 8), (4321, 3)])
def test_automatic_plans_cover_every_frame_once(frames, workers):
    chunks = plan_chunks(frames, None, 12, workers)
    assert [c.start for c in chunks] == [0] + [c.end for c in chunks[:-1]] and chunks[-1].end == frames
    assert all(c.frames + c.warmup <= MAX_CHUNK_FRAMES + 12 and c.warmup == min(12, c.start) for c in chunks)


def test_a_short_clip_is_cut_into_near_halves_for_two_workers():
    # 120 frames and a 12-frame remnant would leave one worker idle most of the job
    chunks = plan_chunks(132, None, 12, workers=2)
    assert [c.frames for c in chunks] == [72, 60]  # 72 frames vs 60 + 12 warm-up: both busy alike
    assert makespan(132, 72, 12, 2) < makespan(132, 120, 12, 2)


def test_one_worker_gets_the_longest_chunks_and_an_explicit_length_is_kept():
    lengths = [c.frames for c in plan_chunks(3000, None, 12, workers=1)]
    assert lengths[0] == MAX_CHUNK_FRAMES + 12 and set(lengths[1:-1]) == {MAX_CHUNK_FRAMES}  # the first has no warm-up
    assert [c.frames for c in plan_chunks(26, 5, 12, workers=4)] == [5, 5, 5, 5, 5, 1]


def test_the_first_chunk_takes_the_warmup_it_does_not_need():
    # 300 frames, a 26-frame warm-up, 2 workers: equal work (163 = 137 + 26), not 150 and 150 + 26
    assert [(c.frames, c.warmup) for c in plan_chunks(300, None, 26, workers=2)] == [(163, 0), (137, 26)]
    assert plan_chunks(0, None, 12, workers=2) == []


def test_the_warmup_grows_with_the_strength():
    """The default strength keeps the default warm-up; a stronger coherence needs longer to converge."""
    assert warmup_for(0.8, 12) == 12
    assert (warmup_for(0.85, 12), warmup_for(0.9, 12)) == (17, 26)
    assert warmup_for(0.5, 12) == 12 and warmup_for(0.0, 12) == 12 and warmup_for(1.0, 12) == 240
    assert warmup_for(0.9, 40) == 40
