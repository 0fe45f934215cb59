"""Hard cuts in the input: where a new shot starts, coherence must forget the old one.

The score is PySceneDetect's ContentDetector's (scenedetect 0.7, default weights):
the mean absolute difference of hue, saturation and value (OpenCV's 8-bit HSV)
between consecutive frames, averaged over the three channels; a frame whose
score reaches :data:`THRESHOLD` starts a shot, unless the previous cut (or the
first frame) is fewer than :data:`MIN_SHOT` frames back (scenedetect's
``min_scene_len``: a flash is not a shot; this is its ``SUPPRESS`` filter, where
its default ``MERGE`` may keep the second of two close cuts instead). It is reimplemented here rather than imported: scenedetect
depends on ``opencv-python``, which would install a second ``cv2`` over
``opencv-python-headless``; bench/README.md ("Cut detection") shows both find
the same cuts on the sample clips.

Pure functions of uint8 RGB frames; :class:`CutDetector` keeps the one
previous frame a streaming decoder needs.
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np

#: ContentDetector's default threshold on the HSV score (0-255 scale)
THRESHOLD = 27.0
#: ContentDetector's default min_scene_len, in frames
MIN_SHOT = 15
#: frames are scored at this width at most: the score is a mean, and a small frame keeps it (and the
#: detector costs well under a millisecond per frame at any input size)
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


class CutDetector:
    """Feed frames in order; :meth:`push` says whether that frame starts a new shot."""

    def __init__(self, threshold: float = THRESHOLD, min_shot: int = MIN_SHOT):
        self.threshold, self.min_shot = threshold, min_shot
        self.prev: np.ndarray | None = None
        self.index, self.last_cut = -1, 0
        self.cuts: list[int] = []

    def push(self, frame_rgb: np.ndarray) -> bool:
        self.index += 1
        cur = hsv(frame_rgb)
        prev, self.prev = self.prev, cur
        if prev is None or prev.shape != cur.shape:
            return False
        if content_score(prev, cur) < self.threshold or self.index - self.last_cut < self.min_shot:
            return False
        self.last_cut = self.index
        self.cuts.append(self.index)
        return True


def detect_cuts(frames: Iterable[np.ndarray], threshold: float = THRESHOLD, min_shot: int = MIN_SHOT) -> list[int]:
    """The indices of the frames that start a new shot (frame 0 is never one)."""
    detector = CutDetector(threshold, min_shot)
    for frame in frames:
        detector.push(frame)
    return detector.cuts
