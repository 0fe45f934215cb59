"""Ahead-of-time compiled networks (AOTInductor): built once per machine, network and frame shape, then
loaded by every worker that needs them in a fraction of a second.

``torch.compile`` compiles in each worker process: even with every kernel in its on-disk cache, importing
dynamo and inductor and replaying the compile cost a CPU worker about 4 s before its first frame, on
every job start. A package built with ``torch._inductor.aoti_compile_and_package`` holds the same
inductor kernels as a shared library; loading it imports neither and takes about 0.15 s, and it paints
the same pixels at the same speed (640x272, one thread, 6 alternating rounds of 5 calls: 111 ms per
frame either way, outputs equal to the last bit).

A package bakes in the network's weights and one input shape, so it is named by everything that
decides its kernels: farm's network code, the weights file's hash, the input's shape, strides and
dtype, and torch's version and CPU instruction set. Workers on one machine share the package directory;
a file lock makes the first worker build it while the others wait, then all load it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import warnings
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

log = logging.getLogger(__name__)

#: bump when the way packages are built changes (the key then names new packages)
FORMAT = 1


def network_code() -> str:
    """Hash of the source the networks are built from: a change there must not run a stale package."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_key(weights_id: str, example: torch.Tensor, weights: torch.Tensor, code: str) -> str:
    """The name of the package for one network (its weights and code) at one input layout."""
    fields = {"format": FORMAT, "code": code, "weights": weights_id, "shape": list(example.shape),
              "stride": list(example.stride()), "dtype": str(example.dtype), "style": list(weights.shape),
              "device": example.device.type, "torch": torch.__version__, "machine": platform.machine(),
              "isa": torch.backends.cpu.get_cpu_capability()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


class NotBuilt(LookupError):
    """No package for this input layout, and the network was told to use only packages already built."""


class AotNetwork:
    """A network called like the module it wraps, ``(frames, style vector) → frames``, each input
    layout running its own ahead-of-time package (built on first use, loaded from disk after; with
    ``build`` off, a layout without a package raises :class:`NotBuilt`)."""

    def __init__(self, net: torch.nn.Module, weights_id: str, cache_dir: Path, build: bool = True):
        self.net, self.weights_id, self.cache_dir, self.build = net.eval(), weights_id, cache_dir, build
        self._code = network_code()
        self._runners: dict[tuple, Any] = {}

    def __call__(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        layout = (tuple(x.shape), x.stride(), x.dtype, tuple(weights.shape))
        if layout not in self._runners:
            self._runners[layout] = self._runner(x, weights)
        return self._runners[layout].boxed_run([x, weights])[0]

    def _runner(self, x: torch.Tensor, weights: torch.Tensor) -> Any:
        path = self.cache_dir / f"{package_key(self.weights_id, x, weights, self._code)}.pt2"
        if not path.exists() and not self.build:
            raise NotBuilt(path.name)
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{path}.lock"):  # one builder per machine; the others wait, then load
                if not path.exists():
                    build_package(self.net, x, weights, path)
        return load_package(path)


def build_package(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor, path: Path) -> None:
    """Export ``net`` for this input layout and compile it to ``path`` (written whole, or not at all)."""
    log.info("compiling the network for %s frames (once per machine and frame size)", "x".join(map(str, x.shape)))
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.pt2")
    try:
        # torch's own deprecation chatter from export internals would reach the user's terminal from a local worker
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.export.export(net, (x, weights))
            torch._inductor.aoti_compile_and_package(program, package_path=str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def load_package(path: Path) -> Any:
    """The package's runner. Torch's own ``aoti_load_package`` imports inductor first (about 1.7 s of
    CPU); the C++ loader it wraps needs none of that."""
    loader = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
    if loader is None:  # a torch without the bare loader: the public one (slower to import) does the same
        return _Boxed(torch._inductor.aoti_load_package(str(path)))
    return loader(str(path), "model", False, 1, -1)


class _Boxed:
    """The public loaded model behind the bare loader's ``boxed_run``."""

    def __init__(self, model: Any):
        self.model = model

    def boxed_run(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.model(*inputs)]
