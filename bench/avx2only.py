"""A whole process tree that sees an AVX2-only CPU: ``bench/avx2only.c`` built and preloaded.

``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA`` hold torch and oneDNN at AVX2, but onnxruntime (the
per-frame tool), OpenCV, x264 and numpy read the CPU's own CPUID and keep AVX-512. This helper builds
the C shim (CPUID faulting, the CPU flag ``cpuid_fault``) with the system's C compiler into the bench
cache and returns the environment that loads it into every process, its children included, beside
GLIBC_TUNABLES for glibc's own string functions, which it chooses before any library loads.

    .venv/bin/python bench/avx2only.py            # builds it, then shows what each library now sees
    .venv/bin/python bench/avx2only.py -- .venv/bin/python bench/eager_network.py   # any command under it

Used by ``bench/vs_perframe.py --isa avx2-only``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

SOURCE = Path(__file__).resolve().with_name("avx2only.c")

#: glibc's names for what the shim hides (glibc ignores names it does not know)
GLIBC_HIDDEN = ("AVX512F", "AVX512CD", "AVX512BW", "AVX512DQ", "AVX512VL", "AVX512_VNNI", "AVX512_BF16",
                "AVX512_FP16", "AVX512_IFMA", "AVX512_VBMI", "AVX512_VBMI2", "AVX512_BITALG",
                "AVX512_VPOPCNTDQ", "AMX_TILE", "AMX_BF16", "AMX_INT8", "AVX_VNNI")


def supported() -> bool:
    """Whether the CPU and kernel can trap CPUID (Linux ``arch_prctl(ARCH_SET_CPUID)``)."""
    try:
        return any(line.startswith("flags") and "cpuid_fault" in line.split()
                   for line in Path("/proc/cpuinfo").read_text().splitlines())
    except OSError:
        return False


@functools.cache
def build() -> Path:
    """The shim, compiled once per source into ``$XDG_CACHE_HOME/farm-bench`` (looked up once per process)."""
    if not supported():
        raise SystemExit("this CPU or kernel has no cpuid_fault: it cannot pretend to be an AVX2-only CPU")
    compiler = shutil.which(os.environ.get("CC", "cc"))
    if compiler is None:
        raise SystemExit("no C compiler (cc) to build bench/avx2only.c")
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "farm-bench"
    library = cache / f"avx2only-{digest}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        partial = library.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-Wall", "-o", partial, SOURCE, "-ldl"], check=True)
        partial.replace(library)
    return library


def environment() -> dict[str, str]:
    """The variables that make a child process tree see an AVX2-only CPU."""
    preload = " ".join(filter(None, [str(build()), os.environ.get("LD_PRELOAD", "")]))
    return {"LD_PRELOAD": preload, "GLIBC_TUNABLES": "glibc.cpu.hwcaps=" + ",".join(f"-{n}" for n in GLIBC_HIDDEN)}


PROBE = r"""
import json, numpy, cv2, torch, onnxruntime
from numpy._core._multiarray_umath import __cpu_features__ as np_features
print(json.dumps({
    "torch (ATen kernels)": torch.backends.cpu.get_cpu_capability(),
    "torch sees AMX": bool(torch.cpu._is_amx_tile_supported()),
    "numpy AVX512F": bool(np_features["AVX512F"]), "numpy AVX2": bool(np_features["AVX2"]),
    "OpenCV AVX512_SKX": cv2.checkHardwareSupport(256), "OpenCV AVX2": cv2.checkHardwareSupport(11),
    "onnxruntime": onnxruntime.__version__,
}))
"""


def seen(variables: dict[str, str]) -> dict:
    """What torch, numpy, OpenCV and onnxruntime see of the CPU in a process with ``variables`` added
    (a bench records it beside its results: the bench's own process is not under the shim)."""
    done = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **variables}, capture_output=True,
                          text=True, check=True)
    sys.stderr.write(done.stderr)  # with AVX2ONLY_REPORT set: how many CPUID instructions the shim masked
    return json.loads(done.stdout)


def main() -> None:
    if "--" in sys.argv:  # run a command under the shim
        command = sys.argv[sys.argv.index("--") + 1:]
        os.execvpe(command[0], command, {**os.environ, **environment()})
    for label, variables in (("native", {}), ("avx2-only", {**environment(), "AVX2ONLY_REPORT": "1"})):
        print(label, json.dumps(seen(variables), indent=1), sep="\n")


if __name__ == "__main__":
    main()
