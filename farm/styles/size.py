"""The working size a network paints a frame at (see :mod:`farm.styles.scale` for why), torch-free so
the driver can count the network's pixels (its compile policy, farm/schedule.py) without importing torch."""

from __future__ import annotations

#: a working size above the output's is capped at this many times the reference side on its long side,
#: so a thin frame (5x4000) is not blown up to a huge working size
MAX_ASPECT = 4.0
#: a frame smaller than the working size is painted at its own size while its strokes come out at most this
#: much larger than the style's (relative to the frame), else enlarged to reference / SMALL_SLACK. 1.33 lets
#: a 640x272 frame (bikes.mp4, 2.39:1 films at 640 wide) paint at its own size, 360/272 = 1.32x: measured
#: against a 1080p render brought down to 640x272, its stroke ratio is 1.09 (bigbuckbunny) and 1.15 (bikes),
#: inside issue 16's 0.8-1.25, for 0.89x the network pixels of 288x678 (bench/look.py --small, bench/README)
SMALL_SLACK = 1.33


def working_size(height: int, width: int, reference_side: int, stroke_scale: float = 1.0,
                 min_side: int = 5) -> tuple[int, int]:
    """The (height, width) the network paints a ``height``×``width`` frame at: the short side at
    ``reference_side / stroke_scale``, the aspect ratio kept (a thin frame: see :data:`MAX_ASPECT`).
    A frame smaller than that is painted at its own size, or enlarged just enough that its strokes are
    at most :data:`SMALL_SLACK` times the style's."""
    side = reference_side / stroke_scale
    short = min(height, width)
    if short < side:
        side = max(short, side / SMALL_SLACK)
    factor = side / short
    if factor > 1.0:  # enlarging: keep the long side within MAX_ASPECT short sides (or the frame's own)
        factor = max(1.0, min(factor, max(MAX_ASPECT * side, max(height, width)) / max(height, width)))
    return max(min_side, round(height * factor)), max(min_side, round(width * factor))
