"""Which frames start a shot, from the candidates shard tasks find: the driver's half of cut detection.

A hard cut is judged in two steps (farm/temporal/cuts.py, after PySceneDetect's AdaptiveDetector). The
first is local: a frame is a *candidate* when its content score stands out from the scores of the frames
around it, which a shard task decides for its own range of the film while it decodes that range anyway.
The second is sequential: a candidate starts a shot only :data:`MIN_SHOT` frames or more after the cut
accepted before it. :class:`ShotBook` applies that rule in plan order as the tasks' ranges come in, so
ranges judged apart, in any order, give exactly the cuts of one pass over the whole film. Dependency-free:
the driver never loads OpenCV.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

#: AdaptiveDetector's min_scene_len, in frames
MIN_SHOT = 15
#: frames before a range that its scorer must see to judge the range's first frame
#: (farm.temporal.cuts.LOOKBACK: the scores window each side, and the frame the earliest is taken against)
LOOKBACK = 3


def accept(found: Iterable[int], last: int = 0, min_shot: int = MIN_SHOT) -> list[int]:
    """The candidates (ascending) that start a shot: each at least ``min_shot`` frames after the cut
    accepted before it, or after ``last`` (the last cut before them; 0 at the film's start)."""
    cuts = []
    for i in found:
        if i - last >= min_shot:
            cuts.append(i)
            last = i
    return cuts


class ShotBook:
    """The film's cuts, settled range by range in plan order.

    ``done`` are frame ranges ([start, end): a resumed job's finished chunks) whose cuts are settled already
    and among ``known`` (what its manifest and receipts recorded; known cuts elsewhere are judged again).
    Every other frame must be settled, in plan order, before the cuts of a later frame are asked for.
    """

    def __init__(self, known: Iterable[int] = (), done: Iterable[tuple[int, int]] = ()):
        self._done = sorted(done)
        self.cuts = sorted({c for c in known if self._is_done(c)})
        self._frontier = 0

    def settle(self, first: int, end: int, found: Iterable[int]) -> None:
        """Judge the candidates ``found`` among frames [first, end), every frame before ``first`` settled."""
        for i in sorted(found):
            if i < self._frontier or not first <= i < end or self._is_done(i):
                continue
            before = bisect.bisect_left(self.cuts, i)
            if accept([i], self.cuts[before - 1] if before else 0):
                self.cuts.insert(before, i)
        self._frontier = max(self._frontier, end)

    @property
    def frontier(self) -> int:
        """Every frame below this one is settled (or was done before: a resume's finished chunks)."""
        return self._frontier

    def within(self, first: int, end: int) -> list[int]:
        """The cuts among frames [first, end)."""
        return self.cuts[bisect.bisect_left(self.cuts, first):bisect.bisect_left(self.cuts, end)]

    def _is_done(self, frame: int) -> bool:
        at = bisect.bisect_right(self._done, (frame, float("inf"))) - 1
        return at >= 0 and self._done[at][0] <= frame < self._done[at][1]
