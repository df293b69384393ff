"""The offline demo model, built from nothing at its CI size: the end-to-end proof that training learns."""

import io
import json
import shutil

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image, ImageDraw

from mlcore.captioner import Captioner
from mlcore.demo import DEMO_REPORT_FILE
from mlcore.encoder import load_image
from mlcore.shapes import BACKGROUNDS, COLOURS, caption_names_every_object, make_shape_samples, mentioned_objects
from tests.captioning.conftest import PHOTO_FIXTURES


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "model"
    stdout = io.StringIO()
    call_command("build_demo_model", "--out", str(out), "--size", "small", "--seed", "0", stdout=stdout)
    return out, stdout.getvalue()


@pytest.mark.slow
def test_small_demo_model_learns_to_name_the_objects(small_demo):
    out, printed = small_demo
    report = json.loads((out / DEMO_REPORT_FILE).read_text())
    # Measured here (seed 0, 100 held-out images): 70% of captions name every object's colour and shape
    # (all 43 single shapes, 27 of 57 pairs; the full build reaches 99%).
    assert report["object_accuracy"] >= 0.55
    assert report["metrics"]["CLIPScore"] > 1.0  # measured 1.46
    if shutil.which("java"):
        assert report["metrics"]["CIDEr"] > 2.0  # measured 3.97
    else:
        assert "CIDEr" in next(iter(report["skipped_metrics"]))
    assert "captions naming every object correctly" in printed
    assert f"Demo model written to {out}" in printed


@pytest.mark.slow
def test_demo_checkpoint_is_self_contained_and_captions_new_images(small_demo, tmp_path):
    out, _ = small_demo
    moved = shutil.copytree(out, tmp_path / "elsewhere")  # its CLIP travels inside it, named relatively
    captioner = Captioner.load(moved, device="cpu")
    assert captioner.decoding_options().clip_rerank  # its beams re-ranked by its own CLIP
    # A split the build never drew, so these images are new to it.
    samples = make_shape_samples(40, seed=0, split="unseen")
    results = captioner.caption([sample.render() for sample in samples])
    singles = [
        caption_names_every_object(result.text, sample)
        for result, sample in zip(results, samples, strict=True)
        if sample.relation is None
    ]
    assert sum(singles) / len(singles) >= 0.9  # measured: 22 of 22


@pytest.mark.slow
def test_a_256_px_drawing_of_one_centred_circle_is_captioned_as_that_circle_alone(small_demo):
    out, _ = small_demo
    captioner = Captioner.load(out, device="cpu")
    wrong = []
    # Radii up to a third of the width: the world draws a centred shape up to that size. At 40% the full build
    # of seed 0 still saw two circles ("a large yellow circle to the right of a large yellow circle").
    for background, colour, radius_share in [("white", "red", 0.3), ("black", "blue", 0.15), ("grey", "yellow", 0.25)]:
        # Drawn as a user would: 256 px, hard edges, margins as the circle's size leaves them.
        image = Image.new("RGB", (256, 256), BACKGROUNDS[background])
        radius = radius_share * 256
        ImageDraw.Draw(image).ellipse((128 - radius, 128 - radius, 128 + radius, 128 + radius), fill=COLOURS[colour])
        [result] = captioner.caption([image])
        if mentioned_objects(result.text) != [(colour, "circle")]:  # named once: a second mention is a second circle
            wrong.append(f"{colour} circle of radius {radius_share:.0%} on {background}: {result.text!r}")
    assert wrong == []


@pytest.mark.slow
def test_demo_model_is_confident_about_new_shapes_and_unsure_of_every_real_photo(small_demo):
    out, _ = small_demo
    captioner = Captioner.load(out, device="cpu")
    shapes = make_shape_samples(500, seed=0, split="familiarity")  # drawn by none of the build's splits
    photos = [load_image(path) for path in sorted(PHOTO_FIXTURES.glob("*.jpg"))]

    on_shapes = captioner.familiarity(captioner.embed([sample.render() for sample in shapes]))
    on_photos = captioner.familiarity(captioner.embed(photos))

    # What issue 13 asks: at least 99% of held-out shapes confident, every real photo flagged.
    assert sum(score.confident for score in on_shapes) / len(on_shapes) >= 0.99
    assert len(on_photos) == 8 and not any(score.confident for score in on_photos)
    # Measured against every training image, not a sample of them: with 4,096 of the full build's 32,000, rare kinds
    # of shape lay far from every neighbour and a real photo (a blue globe on white) passed as one.
    assert captioner.familiarity_reference.embeddings.shape[0] == 20_000


def test_if_missing_leaves_an_existing_model_alone(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("{}")
    stdout = io.StringIO()
    call_command("build_demo_model", "--out", str(out), "--if-missing", stdout=stdout)
    assert "already at" in stdout.getvalue()
    assert sorted(path.name for path in out.iterdir()) == ["config.json"]


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(CommandError, match="invalid choice: 'huge'"):
        call_command("build_demo_model", "--out", str(tmp_path / "model"), "--size", "huge")
    assert not (tmp_path / "model").exists()
