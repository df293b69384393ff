"""Confidence: the worker stores how familiar each photo is to the model's training images; a caption the model is
unsure of is shown as a guess, is never alt text, comes first in review and last in search; and each model has a
page saying what it is and what it knows."""

from dataclasses import replace

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.timezone import localtime

from captioning.models import Caption, ModelVersion, Photo
from captioning.search import forget_indexes, photo_search
from captioning.selectors import caption_review_queue
from captioning.services.model_versions import model_version_register
from captioning.services.photos import photo_upload
from captioning.services.worker import photo_caption_batch
from mlcore.checkpoint import save_checkpoint
from mlcore.demo import DEMO_TRAINED_ON
from mlcore.encoder import ClipEncoder
from mlcore.familiarity import build_reference
from mlcore.model import load_tokenizer
from tests.captioning.conftest import PHOTO_FIXTURES
from tests.captioning.helpers import encode, picture
from tests.conftest import make_captioner_config, make_random_model

pytestmark = pytest.mark.django_db

TRAINED_ON = "drawings of one orange rectangle on a plain background"
REAL_PHOTO = PHOTO_FIXTURES / "COCO_val2014_000000060623.jpg"


@pytest.fixture
def familiar_model(db, tiny_clip_dir, tiny_gpt2_dir, tmp_path) -> ModelVersion:
    """A real checkpoint whose familiarity reference holds its tiny CLIP's embeddings of 200 drawings like
    tests.captioning.helpers.picture (calibrated on 100 more): photos are unlike anything it was trained on."""
    config = replace(make_captioner_config(tiny_clip_dir, tiny_gpt2_dir), training={"trained_on": TRAINED_ON})
    model = make_random_model(config, tiny_gpt2_dir, seed=3)
    encoder = ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu")
    embeddings = encoder.encode_images([picture(seed=seed) for seed in range(300)])
    reference = build_reference(embeddings[:200], embeddings[200:])
    checkpoint = save_checkpoint(
        model, load_tokenizer(tiny_gpt2_dir), tmp_path / "drawings", config, familiarity=reference
    )
    return model_version_register(name="drawings", checkpoint_path=checkpoint, activate=True)


@pytest.fixture
def drawing_and_photo(alice, gallery) -> tuple[Photo, Photo]:
    """A drawing like the training ones and a real photo, uploaded and captioned by the worker's code."""
    drawing = photo_upload(
        acting_user=alice, gallery=gallery, file=SimpleUploadedFile("drawing.png", encode(picture(seed=1000), "PNG"))
    ).photo
    photo = photo_upload(
        acting_user=alice, gallery=gallery, file=SimpleUploadedFile("elephant.jpg", REAL_PHOTO.read_bytes())
    ).photo
    assert photo_caption_batch(limit=10).captioned == 2
    return drawing, photo


def current_caption(photo: Photo) -> Caption:
    return Caption.objects.get(photo=photo, is_current=True)


def test_the_worker_marks_a_photo_unlike_the_training_images_as_a_guess(familiar_model, drawing_and_photo):
    drawing, photo = (current_caption(item) for item in drawing_and_photo)
    threshold = familiar_model.familiarity_reference["threshold"]

    assert drawing.confident and drawing.familiarity >= threshold
    assert not photo.confident and 0 <= photo.familiarity < threshold
    assert familiar_model.familiarity_reference["reference_images"] == 200
    assert familiar_model.familiarity_reference["held_out_confident"] >= 0.99


def test_a_model_without_a_reference_sample_reports_familiarity_unknown(client, alice, gallery, active_model):
    photo = photo_upload(
        acting_user=alice, gallery=gallery, file=SimpleUploadedFile("elephant.jpg", REAL_PHOTO.read_bytes())
    ).photo
    photo_caption_batch()
    caption = current_caption(photo)
    assert (caption.familiarity, caption.confident) == (None, True)
    assert active_model.familiarity_reference == {}

    client.force_login(alice)
    body = client.get(reverse("api-photo-detail", args=[photo.uuid])).json()
    assert (body["caption"]["familiarity"], body["caption"]["confident"]) == (None, True)
    page = client.get(photo.get_absolute_url()).content.decode()
    assert "familiarity unknown (the model has no sample of its training images)" in page
    assert "Unsure" not in page
    model_page = client.get(active_model.get_absolute_url()).content.decode()
    assert "Unknown. Its checkpoint holds no sample of its training images" in model_page


def test_the_api_gives_each_caption_its_familiarity_and_whether_it_is_confident(
    client, alice, familiar_model, drawing_and_photo
):
    client.force_login(alice)
    drawing, photo = drawing_and_photo

    body = client.get(reverse("api-photo-detail", args=[photo.uuid])).json()
    assert body["caption"]["confident"] is False
    assert body["caption"]["familiarity"] == pytest.approx(current_caption(photo).familiarity)
    assert client.get(reverse("api-photo-detail", args=[drawing.uuid])).json()["caption"]["confident"] is True
    rows = {row["id"]: row["caption"] for row in client.get(reverse("api-photo-list")).json()["results"]}
    assert rows[str(photo.uuid)]["confident"] is False and rows[str(drawing.uuid)]["confident"] is True


def test_pages_show_a_guess_as_one_and_never_use_it_as_alt_text(
    client, alice, gallery, familiar_model, drawing_and_photo
):
    client.force_login(alice)
    drawing, photo = drawing_and_photo
    guess = current_caption(photo)
    notice = f"Unsure: the active model (drawings: {TRAINED_ON}) has not seen photos like this."
    fallback_alt = f'alt="elephant.jpg, {localtime(photo.created_at):%-d %b %Y}"'

    page = client.get(photo.get_absolute_url()).content.decode()
    assert notice in page and "Its guess, not a fact" in page
    assert f">{guess.text}</p>" in page  # still there, marked as a guess
    assert fallback_alt in page and f'alt="{guess.text}"' not in page
    assert f'href="{familiar_model.get_absolute_url()}"' in page  # the caption links to its model

    grid = client.get(gallery.get_absolute_url()).content.decode()
    assert f"{notice} Its guess:" in grid
    assert fallback_alt in grid and f'alt="{current_caption(drawing).text}"' in grid
    confident_page = client.get(drawing.get_absolute_url()).content.decode()
    assert "Unsure" not in confident_page and f'alt="{current_caption(drawing).text}"' in confident_page

    status = client.get(reverse("gallery-status", args=[gallery.public_id])).json()
    summaries = {summary["id"]: summary for summary in status["photos"]}
    assert summaries[str(photo.uuid)]["unsure"] == notice
    assert summaries[str(photo.uuid)]["alt"] == f"elephant.jpg, {localtime(photo.created_at):%-d %b %Y}"
    assert summaries[str(drawing.uuid)]["unsure"] is None


def test_guesses_come_first_in_review_and_after_confident_matches_in_search(client, alice, gallery, familiar_model):
    def add(seed: int, text: str, confident: bool, clip_score: float) -> Photo:
        content = encode(picture(seed=seed), "JPEG")
        photo = photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("p.jpg", content)).photo
        Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.CAPTIONED)
        Caption.objects.create(
            photo=photo, text=text, model_version=familiar_model, confident=confident, clip_score=clip_score
        )
        return photo

    forget_indexes()  # search keeps an index per model id, and the database hands out ids again
    # The guess matches the whole phrase and has the better CLIPScore: it would rank first on either.
    guess = add(1, "a red kite over a field", confident=False, clip_score=1.9)
    confident = add(2, "a kite", confident=True, clip_score=0.2)

    assert [caption.photo for caption in caption_review_queue()] == [guess, confident]
    reviewer = get_user_model().objects.create_user("rita", is_staff=True)
    reviewer.user_permissions.set(Permission.objects.filter(content_type__app_label="captioning"))
    client.force_login(reviewer)
    queue = client.get(reverse("admin:captioning_captionreview_changelist")).context["cl"].result_list
    assert [caption.photo for caption in queue] == [guess, confident]
    assert "· unsure</span>" in client.get(reverse("admin:captioning_captionreview_changelist")).content.decode()
    results = photo_search(user=alice, query="red kite over a field")
    assert [row["id"] for row in results[: len(results)]] == [confident.pk, guess.pk]


def test_the_model_page_says_what_the_model_is_and_knows(client, alice, gallery, tmp_path, familiar_model):
    demo = ModelVersion.objects.create(
        name="demo",
        checkpoint_path=str(tmp_path),
        config={
            "origin": "clip-pro",
            "clip_model": "local-dir:clip",
            "training": {"demo": "full", "trained_on": DEMO_TRAINED_ON},
        },
        metrics={"object_accuracy": 0.99, "CIDEr": 4.7, "CLIPScore": 1.51},
    )
    photo = photo_upload(
        acting_user=alice, gallery=gallery, file=SimpleUploadedFile("p.jpg", encode(picture(seed=3), "JPEG"))
    ).photo
    Caption.objects.create(photo=photo, text="a small red circle", model_version=demo)

    page = client.get(demo.get_absolute_url()).content.decode()  # public, like the captions that link to it

    assert "<h1>demo</h1>" in page
    assert "Built on this machine by manage.py build_demo_model" in page
    assert DEMO_TRAINED_ON in page
    assert '<th scope="row">Held-out captions naming every object correctly</th><td class="number">99.0%</td>' in page
    assert '<th scope="row">CIDEr</th><td class="number">4.700</td>' in page
    assert "<dd data-caption-count>1</dd>" in page
    assert "It knows only coloured shapes (circles, squares, triangles and stars) on plain backgrounds" in page
    familiar_page = client.get(familiar_model.get_absolute_url()).content.decode()
    assert "knows only coloured shapes" not in familiar_page
    assert "compared with 200 of its training images" in familiar_page
    listing = client.get(reverse("model-list")).content.decode()
    assert demo.get_absolute_url() in listing and familiar_model.get_absolute_url() in listing
    assert client.get(reverse("model-detail", args=[demo.pk + 1000])).status_code == 404
