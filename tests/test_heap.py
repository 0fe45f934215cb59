"""farm.heap: a worker's freed frames are reused, not unmapped and faulted in again."""

import subprocess
import sys
import textwrap

import pytest

#: run in a fresh interpreter: the setting is process-wide and cannot be undone
FAULTS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from farm.heap import keep_freed_memory
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    def frame():  # 64 MB written, as a layer's activations are, then freed
        np.ones(16 * 1024 * 1024, dtype=np.float32).sum()
    frame()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(5):
        frame()
    print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")


def page_faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_frames_are_reused_instead_of_faulted_in_again():
    kept, faults = page_faults("keep")
    assert kept
    _, default_faults = page_faults("default")
    # glibc's default maps each 64 MB array anew: at least 32 faults each, even in 2 MB huge pages
    assert default_faults >= 5 * 32
    assert faults < 32  # kept: five more frames reuse the first one's pages, less than one array's faults
