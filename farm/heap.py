"""Keep freed memory in the process, so a worker's next frame reuses its last frame's pages.

glibc's malloc serves every block over 128 KiB to 32 MiB (its threshold moves with use) from a fresh
``mmap`` and hands it back to the kernel on ``free``. Torch's CPU tensors have no caching allocator,
so every activation of the network (29 MB per 32-channel layer at 640x360, float32), every temporal
pass temporary and every decoded frame is mapped, zero-filled by the kernel page by page, and unmapped
again, frame after frame. On a 2-core AMD EPYC, a 150-frame 640x360 job spent 5.6 s of its 40 s of CPU
in the kernel doing that; with mmap off and trimming raised it spent 1.0-1.6 s, and the job's wall
time fell from 20.5-21.3 s to 18.5 s (bench/README.md, "Freed memory kept"). onnxruntime, the per-frame
tool's engine, keeps an arena of its own for the same reason.

The price: memory a worker freed stays its own (peak resident size is unchanged, it is just not given
back between frames), which suits a process that paints frames of one size until its job ends.
"""

from __future__ import annotations

import ctypes
import sys

#: mallopt(3) parameters (<malloc.h>)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: give memory back to the kernel only once this much is free at the top of the heap (mallopt takes an int)
TRIM_THRESHOLD = 2**31 - 1


def keep_freed_memory() -> bool:
    """Serve every block from the heap (no per-block ``mmap``) and stop trimming it: freed memory is
    reused by the next allocation instead of being unmapped and faulted in again. glibc only; elsewhere
    (macOS, musl) nothing changes. Whether it took effect."""
    if not sys.platform.startswith("linux"):
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # a libc without it (musl)
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
