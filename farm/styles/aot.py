"""Ahead-of-time compiled networks (AOTInductor): built once per machine and network, for every frame
size, then loaded by every worker that needs them in a fraction of a second.

``torch.compile`` compiles in each worker process: even with every kernel in its on-disk cache, importing
dynamo and inductor and replaying the compile cost a CPU worker about 4 s before its first frame, on
every job start. A package built with ``torch._inductor.aoti_compile_and_package`` holds the same
inductor kernels as a shared library; loading it imports neither and takes about 0.15 s, and it paints
the same pixels at the same speed (640x272, one thread, 6 alternating rounds of 5 calls: 111 ms per
frame either way, outputs equal to the last bit).

A package bakes in the network's weights. Its input's height and width are symbolic (``torch.export``
dims, multiples of :data:`~farm.styles.multistyle.MULTIPLE`), so one package paints every frame size
as fast as one built for a single shape (bench/aot_dynamic.py); a network that does not export that
way gets a package per shape instead. A package is named by everything else that decides its kernels:
farm's network code, the weights file's hash, the batch, memory format and dtype of the input, and
torch's version and CPU instruction set. Workers on one machine share the package directory; a file
lock makes the first worker build it while the others wait, then all load it.
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

from farm.styles.multistyle import MULTIPLE

log = logging.getLogger(__name__)

#: bump when the way packages are built changes (the key then names new packages)
FORMAT = 2
#: the largest height or width a package paints (the working size is far below it)
MAX_SIDE = 4096


def network_code() -> str:
    """Hash of the source the networks are built from: a change there must not run a stale package."""
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def package_key(weights_id: str, example: torch.Tensor, weights: torch.Tensor, code: str, any_size: bool = True) -> str:
    """The name of the package for one network (its weights and code) at one input layout: batch,
    channels, memory format and dtype, and the height and width too where ``any_size`` is off."""
    layout = list(example.shape) if not any_size else list(example.shape[:2])
    fields = {"format": FORMAT, "code": code, "weights": weights_id, "shape": layout, "any_size": any_size,
              "channels_last": memory_format(example) == torch.channels_last, "dtype": str(example.dtype),
              "style": list(weights.shape), "device": example.device.type, "torch": torch.__version__,
              "machine": platform.machine(), "isa": torch.backends.cpu.get_cpu_capability()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def memory_format(x: torch.Tensor) -> torch.memory_format:
    """channels-last or contiguous: the part of an input's strides a package's kernels depend on."""
    return torch.channels_last if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) \
        and not x.is_contiguous() else torch.contiguous_format


class NotBuilt(LookupError):
    """No package for this input layout, and the network was told to use only packages already built."""


class AotNetwork:
    """A network called like the module it wraps, ``(frames, style vector) → frames`` (height and width
    multiples of :data:`~farm.styles.multistyle.MULTIPLE`), running an ahead-of-time package for every
    frame size (built on first use, loaded from disk after; with ``build`` off, no package raises
    :class:`NotBuilt`). A network that cannot be exported for any size runs a package per shape."""

    def __init__(self, net: torch.nn.Module, weights_id: str, cache_dir: Path, build: bool = True):
        self.net, self.weights_id, self.cache_dir, self.build = net.eval(), weights_id, cache_dir, build
        self._code = network_code()
        self._runners: dict[tuple, Any] = {}
        self._per_shape = False  # set when this network's any-size export failed here

    def __call__(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        if not self._per_shape and not all(2 * MULTIPLE <= side <= MAX_SIDE for side in x.shape[2:]):
            return self.net(x, weights)  # outside the sizes the package was exported for: eager
        layout = (x.shape[:2], memory_format(x), x.dtype, tuple(weights.shape))
        if self._per_shape:
            layout += (tuple(x.shape[2:]),)
        if layout not in self._runners:
            self._runners[layout] = self._runner(x, weights)
        return self._runners[layout].boxed_run([x, weights])[0]

    def _runner(self, x: torch.Tensor, weights: torch.Tensor) -> Any:
        any_size = not self._per_shape
        path = self.cache_dir / f"{package_key(self.weights_id, x, weights, self._code, any_size)}.pt2"
        if not path.exists() and not self.build:
            if any_size:  # a network that once fell back has its per-shape packages under the other key
                shaped = self.cache_dir / f"{package_key(self.weights_id, x, weights, self._code, False)}.pt2"
                if shaped.exists():
                    return load_package(shaped)
            raise NotBuilt(path.name)
        if not path.exists():
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{path}.lock"):  # one builder per machine; the others wait, then load
                if not path.exists():
                    try:
                        build_package(self.net, x, weights, path, any_size)
                    except AnySizeUnsupported as exc:
                        log.warning("the network cannot be compiled for every frame size (%s); "
                                    "compiling it for this size only", exc)
                        self._per_shape = True
                        return self._runner(x, weights)
        return load_package(path)


class AnySizeUnsupported(RuntimeError):
    """``torch.export`` could not keep the input's height and width symbolic for this network."""


def size_dims(x: torch.Tensor) -> dict[int, Any]:
    """The input's height and width as export dims: any multiple of MULTIPLE from 8 to :data:`MAX_SIDE`."""
    top = MAX_SIDE // MULTIPLE
    return {2: MULTIPLE * torch.export.Dim("rows", min=2, max=top),
            3: MULTIPLE * torch.export.Dim("cols", min=2, max=top)}


def build_package(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor, path: Path,
                  any_size: bool = True) -> None:
    """Export ``net`` for ``x``'s layout (at every height and width where ``any_size``, else at its shape)
    and compile it to ``path`` (written whole, or not at all). Raises :class:`AnySizeUnsupported` when
    the any-size export fails."""
    log.info("compiling the network for %s frames (once per machine)",
             "any-size" if any_size else "x".join(map(str, x.shape)))
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.pt2")
    try:
        # torch's own deprecation chatter from export internals would reach the user's terminal from a local worker
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = export(net, x, weights, any_size)
            torch._inductor.aoti_compile_and_package(program, package_path=str(partial))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def export(net: torch.nn.Module, x: torch.Tensor, weights: torch.Tensor, any_size: bool) -> Any:
    """The exported program, with symbolic height and width where ``any_size``."""
    if not any_size:
        return torch.export.export(net, (x, weights))
    try:
        program = torch.export.export(net, (x, weights), dynamic_shapes=(size_dims(x), None))
    except Exception as exc:  # a guard on the size (a data-dependent shape, a size-specialising op)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise AnySizeUnsupported(f"{type(exc).__name__}: {first}") from exc
    narrowed = narrowed_sizes(program)
    if narrowed:
        raise AnySizeUnsupported(f"the network branches on the frame size (valid only for {narrowed})")
    return program


def narrowed_sizes(program: Any) -> str:
    """Where export kept the height or width symbolic but narrowed its range (a branch on the size):
    a package run outside that range would paint the wrong branch without a word, so it must not be
    built as any-size. Empty when every size up to :data:`MAX_SIDE` is valid."""
    frame = next(node for node in program.graph.nodes if node.op == "placeholder"
                 and node.name in program.graph_signature.user_inputs)
    narrowed = []
    for dim in (2, 3):
        for symbol in frame.meta["val"].shape[dim].node.expr.free_symbols:
            valid = program.range_constraints.get(symbol)
            if valid is None or int(valid.lower) > 2 or int(valid.upper) < MAX_SIDE // MULTIPLE:
                narrowed.append(f"{symbol} in {valid}")
    return ", ".join(narrowed)


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
