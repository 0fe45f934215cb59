"""Hard cuts in the input: where a new shot starts, coherence must forget the old one.

PySceneDetect's AdaptiveDetector (scenedetect 0.7, default settings), reimplemented:
each frame's ContentDetector score is the mean absolute difference of hue,
saturation and value (OpenCV's 8-bit HSV) from the previous frame; frame i
starts a shot when its score is at least :data:`ADAPTIVE_RATIO` times the mean
score of the :data:`WINDOW` frames on either side, at least
:data:`MIN_CONTENT` itself, and :data:`MIN_SHOT` frames after the previous
cut (or the first frame). That last rule is the one sequential step: farm/shots.py
applies it in plan order to the candidates shard tasks find in their own ranges
(:class:`RangeScorer`). The plain ContentDetector (a fixed threshold of 27)
puts a false cut into the suite's 24 px/frame pan (bench/README.md, "Cut detection"): fast
motion scores high on every frame, a cut stands out from its neighbours.

Reimplemented rather than imported: scenedetect depends on ``opencv-python``,
which would install a second ``cv2`` over ``opencv-python-headless``;
bench/README.md shows both find the same cuts on the sample clips.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from farm.shots import MIN_SHOT, accept

#: AdaptiveDetector's defaults: score / mean of the neighbours' scores, the window each side, the least score
ADAPTIVE_RATIO = 3.0
WINDOW = 2
MIN_CONTENT = 15.0
#: frames are scored at this width at most: the score is a mean, which a small frame keeps (measured
#: 1.0 ms/frame at 640x272 and 6.0 ms/frame at 1280x720, resize included, on 2 busy cores; the driver's
#: decoding pass costs more: 5.6 and 29 ms/frame)
SCORE_WIDTH = 320


def hsv(frame_rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (H,W,3) → int16 HSV planes, downscaled to at most :data:`SCORE_WIDTH` wide."""
    h, w = frame_rgb.shape[:2]
    if w > SCORE_WIDTH:
        frame_rgb = cv2.resize(frame_rgb, (SCORE_WIDTH, max(1, round(h * SCORE_WIDTH / w))),
                               interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2HSV).astype(np.int16)


def content_score(prev_hsv: np.ndarray, cur_hsv: np.ndarray) -> float:
    """Mean |ΔH|, |ΔS|, |ΔV| averaged over the three channels (ContentDetector's ``content_val``)."""
    return float(np.abs(cur_hsv - prev_hsv).mean())


def content_scores(frames: Iterable[np.ndarray]) -> list[float]:
    """Each frame's score against the previous one (0 for the first, and after a change of size)."""
    scores, prev = [], None
    for frame in frames:
        cur = hsv(frame)
        scores.append(content_score(prev, cur) if prev is not None and prev.shape == cur.shape else 0.0)
        prev = cur
    return scores


def candidates(scores: Sequence[float], offset: int = 0, ratio: float = ADAPTIVE_RATIO, window: int = WINDOW,
               min_content: float = MIN_CONTENT) -> list[int]:
    """Frames that may start a shot: ``scores[j]`` is frame ``offset + j``'s score, and a frame is judged
    only with ``window`` scores on either side. Local (a frame's verdict needs frames i-window-1 ... i+window
    only), so ranges of a film judged apart give the candidates of the whole."""
    found = []
    for i in range(window, len(scores) - window):
        around = [*scores[i - window:i], *scores[i + 1:i + window + 1]]
        average = sum(around) / len(around)
        adaptive = min(scores[i] / average, 255.0) if average > 1e-5 else (255.0 if scores[i] >= min_content else 0.0)
        if adaptive >= ratio and scores[i] >= min_content:
            found.append(offset + i)
    return found


def adaptive_cuts(scores: list[float], ratio: float = ADAPTIVE_RATIO, window: int = WINDOW,
                  min_content: float = MIN_CONTENT, min_shot: int = MIN_SHOT) -> list[int]:
    """The frames that start a shot, from :func:`content_scores` (AdaptiveDetector's rule)."""
    return accept(candidates(scores, 0, ratio, window, min_content), 0, min_shot)


def detect_cuts(frames: Iterable[np.ndarray]) -> list[int]:
    """The indices of the frames that start a new shot (frame 0 is never one)."""
    return adaptive_cuts(content_scores(frames))


#: frames before a range a scorer must see to judge the range's first frame: the window's scores, and the
#: frame the earliest of them is taken against
LOOKBACK = WINDOW + 1


class RangeScorer:
    """Candidates among frames [first, end) of a film of ``total`` frames, from numbered frames fed in order
    from any frame at or before ``first - LOOKBACK`` (a shard task's seek) up to ``end + WINDOW - 1``.
    Frame 0 scores 0, as in :func:`content_scores`; frames near the film's ends are never judged."""

    def __init__(self, first: int, end: int, total: int):
        self.first, self.end, self.total = first, end, total
        self._scores: dict[int, float] = {}
        self._prev: tuple[int, np.ndarray] | None = None

    @property
    def needs_until(self) -> int:
        """Frames below this one are what the scorer needs."""
        return min(self.end + WINDOW, self.total)

    def feed(self, index: int, frame_rgb: np.ndarray) -> None:
        if not self.first - LOOKBACK <= index < self.needs_until:
            return
        cur = hsv(frame_rgb)
        if index == 0:
            self._scores[0] = 0.0
        elif self._prev is not None and self._prev[0] == index - 1:  # 0 after a change of size, as content_scores
            self._scores[index] = content_score(self._prev[1], cur) if self._prev[1].shape == cur.shape else 0.0
        self._prev = (index, cur)

    def candidates(self) -> list[int]:
        lo, hi = max(self.first - WINDOW, 0), min(self.end + WINDOW, self.total)
        missing = [i for i in range(lo, hi) if i not in self._scores]
        if missing:
            raise ValueError(f"frames {missing[0]}..{missing[-1]} were not scored")
        found = candidates([self._scores[i] for i in range(lo, hi)], lo)
        return [i for i in found if self.first <= i < self.end and WINDOW <= i < self.total - WINDOW]
