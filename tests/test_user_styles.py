"""Styles of the user's own: `farm styles add` (paintings, checkpoints), `--model x.pth`, and the job specs they make."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
import torch
from PIL import Image

from farm.store import S3Store
from farm.styles.sheet import sheet_size
from farm.styles.user import UserStyle
from tests.clips import make_clip
from tests.conftest import BUCKET
from tests.test_cli import painting, submit_json, video_facts
from tests.test_fns import example_checkpoint


def manifest_style(store: Path, job_id: str) -> dict:
    return json.loads((store / "jobs" / job_id / "manifest.json").read_text())["spec"]["render"]["style"]


def checkpoint(path: Path, seed: int = 0) -> Path:
    torch.save(example_checkpoint(seed), path)
    return path


def test_painting_saved_as_a_named_style_renders_by_name(cli, tmp_path, private_store, user_styles_dir):
    style = painting(tmp_path / "scream.png")
    added = cli("styles", "add", "my-scream", "--image", style, "--description", "the bridge")
    assert added.code == 0, added.stderr
    saved = UserStyle.model_validate_json((user_styles_dir / "my-scream.json").read_text())
    assert saved.network == "arbitrary" and len(saved.vector) == 100 and saved.origin == "scream.png"
    with Image.open(user_styles_dir / "my-scream.jpg") as thumb:
        assert max(thumb.size) <= 256
    listing = cli("styles")
    assert "my-scream" in listing.stdout and "image scream.png" in listing.stdout and "vangogh" in listing.stdout

    clip = make_clip(tmp_path / "walk.mp4", frames=6, width=80, height=48)
    report = submit_json(cli, clip, "--style", "my-scream", "--no-gif", "--job-id", "mine")
    assert Path(report["output"]) == tmp_path / "walk_my-scream.mp4" and report["style"] == "my-scream"
    assert video_facts(Path(report["output"]))["size"] == (80, 48)
    recorded = manifest_style(private_store, "mine")  # the vector travels in the spec, not a path to this folder
    assert recorded["network"] == "arbitrary" and recorded["weights"] == pytest.approx(saved.vector)

    typo = cli("submit", clip, "--style", "my-scraem")
    assert typo.code == 2 and "did you mean: my-scream" in typo.stderr
    assert cli("styles", "remove", "my-scream").code == 0
    assert not list(user_styles_dir.iterdir()) and "my-scream" not in cli("styles").stdout


def test_bad_style_additions_are_refused_in_one_line(cli, tmp_path, user_styles_dir):
    style = painting(tmp_path / "p.png")
    cases = [
        (("vangogh", "--image", style), "built-in style name"),
        (("Bad Name", "--image", style), "bad style name"),
        (("fine", "--image", tmp_path / "absent.png"), "image not found"),
        (("fine",), "give --image"),
        (("fine", "--image", style, "--model", tmp_path / "m.pth"), "give --image"),
        (("fine", "--model", tmp_path / "absent.pth"), "model file not found"),
    ]
    for args, message in cases:
        result = cli("styles", "add", *args)
        assert result.code == 2 and message in result.stderr and "Traceback" not in result.stderr, (args, result)
    assert not list(user_styles_dir.iterdir())
    assert cli("styles", "add", "twice", "--image", style).code == 0
    again = cli("styles", "add", "twice", "--image", style)
    assert again.code == 2 and "--force" in again.stderr
    assert cli("styles", "add", "twice", "--image", style, "--force").code == 0
    gone = cli("styles", "remove", "never-added")
    assert gone.code == 2 and "no user style" in gone.stderr


def test_two_paintings_blend(cli, tmp_path, private_store):
    a, b = painting(tmp_path / "a.png"), tmp_path / "b.png"
    Image.open(a).transpose(Image.Transpose.ROTATE_90).convert("L").convert("RGB").save(b)
    clip = make_clip(tmp_path / "mix.mp4", frames=4, width=64, height=48)
    report = submit_json(cli, clip, "--style-image", a, "--style-image", b, "--no-gif", "--job-id", "ab")
    assert report["style"] == "a+b" and video_facts(Path(report["output"]))["frames"] == 4
    cli("styles", "add", "only-a", "--image", a)
    cli("styles", "add", "only-b", "--image", b)
    from farm.styles.user import user_styles

    saved = user_styles()
    middle = [(x + y) / 2 for x, y in zip(saved["only-a"].vector, saved["only-b"].vector)]
    assert manifest_style(private_store, "ab")["weights"] == pytest.approx(middle, abs=1e-5)


def test_model_checkpoint_renders_and_is_pinned_by_hash(cli, tmp_path, private_store):
    model = checkpoint(tmp_path / "udnie.pth")
    clip = make_clip(tmp_path / "street.mp4", frames=6, width=70, height=46, audio=True)
    report = submit_json(cli, clip, "--model", model, "--no-gif", "--job-id", "byo", "--strength", "0.9")
    assert Path(report["output"]) == tmp_path / "street_udnie.mp4" and report["style"] == "udnie"
    facts = video_facts(Path(report["output"]))
    assert facts["size"] == (70, 46) and facts["frames"] == 6 and facts["audio_codec"] == "aac"
    recorded = manifest_style(private_store, "byo")
    assert recorded["network"] == "fast-neural-style" and recorded["model"] == str(model)
    assert len(recorded["model_sha256"]) == 64

    assert cli("styles", "add", "udnie", "--model", model).code == 0
    assert "model " in cli("styles").stdout
    report = submit_json(cli, clip, "--style", "udnie", "--no-gif", "--output", tmp_path / "again.mp4")
    assert video_facts(Path(report["output"]))["frames"] == 6
    checkpoint(model, seed=1)  # the file behind the saved style changes
    changed = cli("submit", clip, "--style", "udnie", "--output", tmp_path / "changed.mp4")
    assert changed.code == 2 and "changed since it was added" in changed.stderr
    assert not (tmp_path / "changed.mp4").exists()


def test_wrong_or_unsafe_checkpoints_are_refused_before_anything_is_written(cli, tmp_path):
    clip = make_clip(tmp_path / "c.mp4", frames=4, width=64, height=48)
    wrong = example_checkpoint()
    wrong["extra.weight"] = torch.zeros(3)
    torch.save(wrong, tmp_path / "wrong.pth")
    (tmp_path / "text.pth").write_text("not a model")
    for name, message in [("wrong.pth", "not a fast-neural-style TransformerNet"), ("text.pth", "weights-only loader"),
                          ("absent.pth", "model file not found")]:
        result = cli("submit", clip, "--model", tmp_path / name, "--output", tmp_path / "out.mp4")
        assert result.code == 2 and message in result.stderr and "Traceback" not in result.stderr, result
        assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out.gif").exists()
    both = cli("submit", clip, "--model", tmp_path / "wrong.pth", "--style", "vangogh")
    assert both.code == 2 and "exclusive" in both.stderr


def test_sheet_includes_user_styles(cli, tmp_path):
    model = checkpoint(tmp_path / "candy.pth")
    assert cli("styles", "add", "candy", "--model", model).code == 0
    assert cli("styles", "add", "scream", "--image", painting(tmp_path / "s.png")).code == 0
    photo = tmp_path / "photo.png"
    Image.new("RGB", (48, 32), "teal").save(photo)
    result = cli("styles", "--sheet", tmp_path / "sheet.png", "--image", photo)
    assert result.code == 0, result.stderr
    from farm.styles.catalog import load_catalog

    with Image.open(tmp_path / "sheet.png") as sheet:
        assert sheet.size == sheet_size(len(load_catalog().entries) + 1 + 2, 48, 32)


@pytest.mark.s3
def test_checkpoints_reach_the_cluster_through_the_store(cli, s3_env, tmp_path):
    prefix = f"farm/{uuid.uuid4().hex[:8]}"
    store_uri, store = f"s3://{BUCKET}/{prefix}", S3Store(BUCKET, prefix)
    model = checkpoint(tmp_path / "mosaic.pth")
    clip = make_clip(tmp_path / "s.mp4", frames=4, width=64, height=48)
    report = submit_json(cli, clip, "--model", model, "--store", store_uri, "--job-id", "m1", "--no-gif")
    assert video_facts(Path(report["output"]))["frames"] == 4
    (staged,) = [k for k in store.list("sources/") if k.endswith("/mosaic.pth")]  # uploaded, content-addressed
    spec = json.loads(store.get_bytes("jobs/m1/manifest.json"))["spec"]
    assert spec["render"]["style"]["model"] == f"{store_uri}/{staged}"
    # a catalog entry may point at the s3:// object directly
    assert cli("styles", "add", "remote-mosaic", "--model", f"{store_uri}/{staged}").code == 0
    report = submit_json(cli, clip, "--style", "remote-mosaic", "--store", store_uri, "--no-gif",
                         "--output", tmp_path / "r.mp4")
    assert video_facts(Path(report["output"]))["frames"] == 4
