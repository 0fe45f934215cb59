"""The working size a network paints a frame at (see :mod:`farm.styles.scale` for why), torch-free so
the driver can count the network's pixels (its compile policy, farm/schedule.py) without importing torch."""

from __future__ import annotations

#: a working size above the output's is capped at this many times the reference side on its long side,
#: so a thin frame (5x4000) is not blown up to a huge working size
MAX_ASPECT = 4.0


def working_size(height: int, width: int, reference_side: int, stroke_scale: float = 1.0,
                 min_side: int = 5) -> tuple[int, int]:
    """The (height, width) the network paints a ``height``×``width`` frame at: the short side at
    ``reference_side / stroke_scale``, the aspect ratio kept (a thin frame: see :data:`MAX_ASPECT`)."""
    side = reference_side / stroke_scale
    factor = side / min(height, width)
    if factor > 1.0:  # enlarging: keep the long side within MAX_ASPECT short sides (or the frame's own)
        factor = max(1.0, min(factor, max(MAX_ASPECT * side, max(height, width)) / max(height, width)))
    return max(min_side, round(height * factor)), max(min_side, round(width * factor))
