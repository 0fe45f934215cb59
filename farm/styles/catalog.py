"""The named-style catalog: ``configs/styles.yaml`` turned into :class:`StyleChoice`.

The 26-style network only knows weight vectors; people know names. The
catalog gives every built-in style a name and a one-line description, and
adds named blends (weighted mixes of built-ins: conditional instance norm
mixes styles linearly, Dumoulin et al. 2017 §4). ``resolve`` is the one way a
name becomes the normalised 26-vector a job carries.

Power users may also pass a spec instead of a name: ``"19"`` (an index) or
``"3:0.5,12:0.5"`` / ``"vangogh:0.7,mosaic:0.3"`` (a weighted mix of indices
or catalog names).

This module does not import torch, so listing styles stays instant.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import Field, StringConstraints, field_validator, model_validator

import farm
from farm.config import STYLE_VECTOR_LENGTH, Model, StyleChoice, load_yaml_model
from farm.errors import ConfigError, StyleError

#: styles in multistyle26.onnx; equals farm.styles.multistyle.NUM_STYLES (not imported: that pulls in torch)
NUM_STYLES = 26
CATALOG_FILE = "styles.yaml"
#: names start with a letter so an all-digit spec ("19") is always an index
NAME_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"

StyleName = Annotated[str, StringConstraints(pattern=NAME_PATTERN, max_length=40)]
BlendWeight = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


# -- the YAML schema ------------------------------------------------------------------


class StyleEntrySpec(Model):
    """One entry of styles.yaml: a built-in (``index``) or a mix of built-ins (``blend``)."""

    index: int | None = Field(None, ge=0, lt=NUM_STYLES)
    blend: dict[StyleName, BlendWeight] | None = Field(None, min_length=1)
    description: str = Field(min_length=1)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> StyleEntrySpec:
        if (self.index is None) == (self.blend is None):
            raise ValueError("give exactly one of 'index' or 'blend'")
        return self


class NetworkSpec(Model):
    """How one network's look is defined: the frame size at which its strokes have their intended size."""

    #: the short side (pixels) of the frames the network paints its own look at; every output size is
    #: painted at this short side (divided by --stroke-scale) and resized (farm/styles/scale.py)
    reference_side: int = Field(ge=16, le=4096)


class StylesFile(Model):
    """The whole of styles.yaml: every network's reference size; name → entry, every built-in index named once."""

    networks: dict[Literal["multistyle26", "arbitrary", "fast-neural-style"], NetworkSpec]
    styles: dict[StyleName, StyleEntrySpec]

    @field_validator("networks")
    @classmethod
    def _every_network(cls, networks: dict[str, NetworkSpec]) -> dict[str, NetworkSpec]:
        missing = sorted(set(STYLE_VECTOR_LENGTH) - set(networks))
        if missing:
            raise ValueError(f"no reference_side for {', '.join(missing)}")
        return networks

    @field_validator("styles")
    @classmethod
    def _consistent(cls, styles: dict[str, StyleEntrySpec]) -> dict[str, StyleEntrySpec]:
        problems = _index_problems(styles) + _blend_problems(styles)
        if problems:
            raise ValueError("; ".join(problems))
        return styles


def _index_problems(styles: dict[str, StyleEntrySpec]) -> list[str]:
    """Each built-in index must have exactly one name, or some style would be unreachable or ambiguous."""
    owners: dict[int, list[str]] = {}
    for name, entry in styles.items():
        if entry.index is not None:
            owners.setdefault(entry.index, []).append(name)
    problems = [f"index {i} is named twice ({', '.join(n)})" for i, n in sorted(owners.items()) if len(n) > 1]
    missing = [str(i) for i in range(NUM_STYLES) if i not in owners]
    if missing:
        problems.append(f"built-in indices without a name: {', '.join(missing)}")
    return problems


def _blend_problems(styles: dict[str, StyleEntrySpec]) -> list[str]:
    """Blends mix built-ins only, so a blend's vector never depends on another blend."""
    problems = []
    for name, entry in styles.items():
        for part in entry.blend or {}:
            if part not in styles:
                problems.append(f"blend {name!r} uses unknown style {part!r}")
            elif styles[part].index is None:
                problems.append(f"blend {name!r} uses {part!r}, which is itself a blend")
    return problems


def duplicate_keys(node: yaml.Node) -> Iterator[tuple[str, int]]:
    """(key, line) of every repeated mapping key: PyYAML silently keeps the last one."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    yield key.value, key.start_mark.line + 1
                seen.add(key.value)
            yield from duplicate_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from duplicate_keys(item)


def _reject_duplicate_keys(path: Path) -> None:
    """Names must be unique; a mapping hides duplicates unless we look at the node graph."""
    try:
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for key, line in duplicate_keys(node) if node is not None else ():
        raise ConfigError(f"{path}: line {line}: duplicate key {key!r}")


# -- the catalog ------------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogEntry:
    """A named style as listed to users: a built-in index or a blend recipe, and its 26-vector."""

    name: str
    kind: Literal["builtin", "blend"]
    description: str
    weights: tuple[float, ...]
    index: int | None = None
    #: (built-in name, weight as written) pairs, for blends
    blend: tuple[tuple[str, float], ...] = ()

    @property
    def kind_label(self) -> str:
        """A short column for listings: ``builtin 19`` or ``blend vangogh 50% + mosaic 50%``."""
        if self.kind == "builtin":
            return f"builtin {self.index}"
        total = sum(w for _, w in self.blend)
        return "blend " + " + ".join(f"{n} {100 * w / total:.0f}%" for n, w in self.blend)


class Catalog:
    """Named styles, looked up by name (or spec) and resolved to a :class:`StyleChoice`."""

    def __init__(self, entries: Sequence[CatalogEntry], source: Path | None = None, extra_names: Sequence[str] = (),
                 reference_sides: dict[str, int] | None = None):
        self.entries: tuple[CatalogEntry, ...] = tuple(entries)
        #: network → the short side its look is defined at (styles.yaml ``networks``)
        self.reference_sides = dict(reference_sides or {})
        self.source = source
        #: other names the user could have meant (their saved styles), offered when a name is unknown
        self.extra_names = tuple(extra_names)
        self._by_name = {e.name: e for e in self.entries}
        self._by_index = {e.index: e for e in self.entries if e.index is not None}

    @classmethod
    def from_spec(cls, spec: StylesFile, source: Path | None = None, extra_names: Sequence[str] = ()) -> Catalog:
        """Built-ins in index order, then blends in file order."""
        builtins = sorted(((n, e) for n, e in spec.styles.items() if e.index is not None), key=lambda p: p[1].index)
        blends = [(n, e) for n, e in spec.styles.items() if e.blend is not None]
        index_of = {n: e.index for n, e in builtins}
        entries = [_builtin_entry(n, e) for n, e in builtins] + [_blend_entry(n, e, index_of) for n, e in blends]
        sides = {network: n.reference_side for network, n in spec.networks.items()}
        return cls(entries, source, extra_names, sides)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._by_name)

    def __len__(self) -> int:
        return len(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def builtin(self, index: int) -> CatalogEntry:
        """The entry naming built-in ``index``."""
        if index not in self._by_index:
            raise StyleError(f"style index must be 0 to {NUM_STYLES - 1}, got {index}")
        return self._by_index[index]

    def entry(self, name: str) -> CatalogEntry:
        """The entry called ``name`` (case and surrounding spaces ignored); suggests close names."""
        key = name.strip().lower()
        if key in self._by_name:
            return self._by_name[key]
        raise StyleError(unknown_style_message(name, self.names + self.extra_names))

    def lookup(self, name_or_spec: str) -> tuple[tuple[float, ...], str]:
        """The normalised 26-vector for a name or spec, and the name to record for it."""
        text = name_or_spec.strip().lower()
        if text.isdigit():
            entry = self.builtin(int(text))
            return entry.weights, entry.name
        if ":" in text or "," in text:
            parts = parse_spec(name_or_spec)
            vector = mix((self._part_weights(key), w) for key, w in parts)
            return vector, canonical_spec(parts)
        entry = self.entry(name_or_spec)
        return entry.weights, entry.name

    def resolve(self, name: str, strength: float = 1.0) -> StyleChoice:
        """Name (or spec) → the :class:`StyleChoice` a job carries; user mistakes raise StyleError."""
        if not (isinstance(strength, (int, float)) and 0.0 <= strength <= 1.0):
            raise StyleError(f"strength must be between 0 and 1, got {strength}")
        weights, label = self.lookup(name)
        return StyleChoice(name=label, weights=weights, strength=float(strength))

    def _part_weights(self, key: str) -> tuple[float, ...]:
        return self.builtin(int(key)).weights if key.isdigit() else self.entry(key).weights


def _builtin_entry(name: str, entry: StyleEntrySpec) -> CatalogEntry:
    assert entry.index is not None
    return CatalogEntry(name, "builtin", entry.description, one_hot(entry.index), index=entry.index)


def _blend_entry(name: str, entry: StyleEntrySpec, index_of: dict[str, int]) -> CatalogEntry:
    assert entry.blend is not None
    vector = mix((one_hot(index_of[part]), w) for part, w in entry.blend.items())
    return CatalogEntry(name, "blend", entry.description, vector, blend=tuple(entry.blend.items()))


# -- pure helpers -----------------------------------------------------------------------------


def one_hot(index: int) -> tuple[float, ...]:
    return tuple(1.0 if i == index else 0.0 for i in range(NUM_STYLES))


def mix(parts: Iterable[tuple[tuple[float, ...], float]]) -> tuple[float, ...]:
    """Weighted sum of 26-vectors, normalised to sum 1 (the network expects a convex mix)."""
    total = [0.0] * NUM_STYLES
    for vector, weight in parts:
        for i, v in enumerate(vector):
            total[i] += weight * v
    s = sum(total)
    if not s > 0 or any(t < 0 for t in total):
        raise StyleError("style weights must be non-negative and not all zero")
    return tuple(t / s for t in total)


def parse_spec(spec: str) -> list[tuple[str, float]]:
    """``"3:0.5,vangogh:0.5"`` → [("3", 0.5), ("vangogh", 0.5)]; a bare key weighs 1."""
    parts = []
    for raw in spec.split(","):
        key, sep, weight = raw.strip().lower().partition(":")
        try:
            value = float(weight) if sep else 1.0
        except ValueError:
            value = math.nan
        if not key or not math.isfinite(value) or value < 0:
            raise StyleError(f"bad style spec {spec!r}; use a name, an index 0-{NUM_STYLES - 1}, or e.g. 3:0.5,12:0.5")
        parts.append((key.strip(), value))
    return parts


def canonical_spec(parts: Sequence[tuple[str, float]]) -> str:
    """A stable label for a spec, with weights normalised, so equal mixes get equal names."""
    total = sum(w for _, w in parts) or 1.0
    return ",".join(f"{key}:{w / total:.4g}" for key, w in parts)


def unknown_style_message(name: str, known: Sequence[str]) -> str:
    """One line that names the typo, offers the closest names and says where the list is."""
    close = difflib.get_close_matches(name.strip().lower(), known, n=3, cutoff=0.6)
    hint = f"; did you mean: {', '.join(close)}?" if close else ""
    return f"unknown style {name!r}{hint} (`farm styles` lists them all)"


# -- loading --------------------------------------------------------------------------------


def config_dir() -> Path:
    """``$FARM_CONFIG_DIR``; else the repo's ``configs/`` beside the ``farm`` package (a checkout or an
    editable install); else the copy a wheel carries as the ``farm.configs`` package (pyproject.toml)."""
    env = os.environ.get("FARM_CONFIG_DIR")
    if env:
        return Path(env)
    package = Path(farm.__file__).resolve().parent
    beside = package.parent / "configs"
    return beside if beside.is_dir() else package / "configs"


def load_catalog(path: Path | None = None, extra_names: Sequence[str] = ()) -> Catalog:
    """Read and validate styles.yaml; any problem is a ConfigError naming the file (and key)."""
    path = Path(path) if path is not None else config_dir() / CATALOG_FILE
    _reject_duplicate_keys(path)
    spec = load_yaml_model(path, StylesFile)
    assert isinstance(spec, StylesFile)
    return Catalog.from_spec(spec, source=path, extra_names=extra_names)


def reference_side(network: str) -> int:
    """The short side at which ``network`` paints its own look (``networks`` in styles.yaml)."""
    return load_catalog().reference_sides[network]
