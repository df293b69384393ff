"""captioning.jobs, the one owner of a photo's captioning state: each transition moves only from the states its
rule allows, a failure's kind is a field that model activation reads, and a re-queue (caption again, or the
admin's) takes a photo from the worker that holds it, whose late result is then dropped."""

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from captioning import jobs
from captioning.models import Caption, ModelVersion, Photo
from captioning.services.model_versions import model_version_activate
from captioning.services.photos import photo_recaption, photo_upload
from captioning.services.worker import photo_caption_batch
from mlcore.captioner import Captioner
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def add_photo(alice, gallery):
    seeds = iter(range(900, 1000))

    def add() -> Photo:
        content = encode(picture(seed=next(seeds)), "JPEG")
        return photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("j.jpg", content)).photo

    return add


def one_photo_in_each_state(add_photo) -> dict[str, Photo]:
    photos = {}
    for state in Photo.Status.values:
        photo = add_photo()
        Photo.objects.filter(pk=photo.pk).update(status=state, error_message=f"was {state}", attempts=2)
        photos[state] = photo
    return photos


def test_retry_moves_only_failed_photos(add_photo):
    one_photo_in_each_state(add_photo)

    assert jobs.retry_failed(photos=Photo.objects.all()) == 1

    assert Photo.objects.get(status=Photo.Status.QUEUED, attempts=0).error_message == ""
    assert Photo.objects.filter(attempts=2).count() == 3  # the others kept everything


def test_requeue_moves_every_state_and_renew_moves_none_unclaimed(add_photo):
    one_photo_in_each_state(add_photo)

    assert jobs.renew_claim(token=uuid.uuid4()) == 0  # no photo holds this claim

    assert jobs.requeue(photos=Photo.objects.all()) == 4
    assert set(Photo.objects.values_list("status", "attempts", "error_message")) == {(Photo.Status.QUEUED, 0, "")}


def test_a_failure_records_its_kind_and_activation_requeues_only_photos_that_lacked_a_model(
    add_photo, save_random_checkpoint
):
    waiting_for_a_model = add_photo()
    photo_caption_batch()  # no model is active
    waiting_for_a_model.refresh_from_db()
    assert (waiting_for_a_model.status, waiting_for_a_model.failure_kind) == (
        Photo.Status.FAILED,
        Photo.FailureKind.NO_MODEL,
    )
    # Another failure whose message happens to read alike: the kind decides, not the words.
    unreadable = add_photo()
    Photo.objects.filter(pk=unreadable.pk).update(
        status=Photo.Status.FAILED,
        error_message=waiting_for_a_model.error_message,
        failure_kind=Photo.FailureKind.UNREADABLE_FILE,
    )

    late = ModelVersion.objects.create(name="late", checkpoint_path=str(save_random_checkpoint("late")))
    model_version_activate(model_version=late)

    assert Photo.objects.get(pk=waiting_for_a_model.pk).status == Photo.Status.QUEUED
    assert Photo.objects.get(pk=waiting_for_a_model.pk).failure_kind == ""
    assert Photo.objects.get(pk=unreadable.pk).status == Photo.Status.FAILED


def requeue_by_caption_again(photo: Photo, client, alice) -> None:
    photo_recaption(photo=photo, acting_user=alice, decoding={"strategy": "greedy", "max_length": 9})


def requeue_by_the_admin(photo: Photo, client, alice) -> None:
    client.post(reverse("admin:captioning_photo_changelist"), {"action": "requeue", "_selected_action": [photo.pk]})


@pytest.mark.parametrize("requeue", [requeue_by_caption_again, requeue_by_the_admin])
def test_a_requeue_takes_the_photo_from_the_worker_that_holds_it(
    requeue, add_photo, active_model, monkeypatch, admin_client, alice
):
    photo = add_photo()
    real_caption = Captioner.caption_embeddings

    def requeued_while_captioning(self, embeddings, *args, **kwargs):
        held = Photo.objects.get(pk=photo.pk)
        assert held.status == Photo.Status.PROCESSING and held.claim_token is not None
        requeue(held, admin_client, alice)
        return real_caption(self, embeddings, *args, **kwargs)

    monkeypatch.setattr(Captioner, "caption_embeddings", requeued_while_captioning)
    outcome = photo_caption_batch()

    assert (outcome.captioned, outcome.lost) == (0, 1)  # the worker's late result was dropped
    photo.refresh_from_db()
    assert (photo.status, photo.claim_token, photo.attempts) == (Photo.Status.QUEUED, None, 0)
    assert not Caption.objects.filter(photo=photo).exists()

    monkeypatch.setattr(Captioner, "caption_embeddings", real_caption)
    assert photo_caption_batch().captioned == 1
    (caption,) = Caption.objects.filter(photo=photo)
    assert caption.decoding["strategy"] == ("greedy" if requeue is requeue_by_caption_again else "beam")
