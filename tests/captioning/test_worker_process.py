"""End to end with a real worker: uploads through the upload endpoint, a `manage.py qcluster` process with
the ORM broker on the test database, and a tiny checkpoint writing the captions."""

import os
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django_q.models import Success

from captioning.models import Caption, Photo
from captioning.services.captioning import caption_queue_work
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register
from captioning.services.photos import photo_upload
from tests.captioning.helpers import encode, picture, wait_for

pytestmark = pytest.mark.slow


def test_a_real_qcluster_captions_uploads_end_to_end(
    client, alice, start_worker, save_random_checkpoint, fixture_photos
):
    model = model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=5), activate=True)
    gallery = gallery_create(owner=alice, title="Real photos")
    worker = start_worker()
    client.force_login(alice)

    for path in fixture_photos[:3]:
        response = client.post(
            reverse("photo-upload", args=[gallery.public_id]),
            {"file": SimpleUploadedFile(path.name, path.read_bytes(), content_type="image/jpeg")},
        )
        assert response.status_code == 201, response.content

    wait_for(
        lambda: Photo.objects.filter(status=Photo.Status.CAPTIONED).count() == 3,
        timeout=180,
        what="three photos captioned by the worker",
        worker=worker,
    )
    for photo in Photo.objects.all():
        (caption,) = Caption.objects.filter(photo=photo, is_current=True)
        assert caption.model_version == model
        assert photo.embedding_vector() is not None
    # The cluster's monitor records the task's result just after the photos are written.
    wait_for(
        lambda: Success.objects.filter(func="captioning.tasks.caption_pending_photos").exists(),
        timeout=30,
        what="the task's result recorded",
        worker=worker,
    )

    status = client.get(reverse("gallery-status", args=[gallery.public_id])).json()
    assert status["busy"] == 0
    assert all(photo["caption"] is not None for photo in status["photos"])


def test_photos_of_a_killed_worker_are_captioned_by_the_next_one(alice, start_worker, save_random_checkpoint, settings):
    """A worker claims a photo and is killed (SIGKILL, every process) before writing its caption. Nothing
    is lost: once the claim is older than the lease, another worker captions it."""
    model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=6), activate=True)
    gallery = gallery_create(owner=alice, title="Interrupted")
    photo = photo_upload(
        uploaded_by=alice, gallery=gallery, file=SimpleUploadedFile("k.jpg", encode(picture(seed=61)))
    ).photo
    # The first worker must be stuck after claiming: its photo file is swapped for a FIFO nobody writes to,
    # so reading it blocks (deterministically) with the claim held.
    original_path = photo.original.path
    content = open(original_path, "rb").read()  # noqa: SIM115
    os.remove(original_path)
    os.mkfifo(original_path)

    first = start_worker()
    wait_for(
        lambda: Photo.objects.filter(pk=photo.pk, status=Photo.Status.PROCESSING).exists(),
        timeout=60,
        what="the first worker to claim the photo",
        worker=first,
    )
    first.kill()

    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == (Photo.Status.PROCESSING, 1)
    assert not Caption.objects.filter(photo=photo).exists()

    os.remove(original_path)
    with open(original_path, "wb") as file:
        file.write(content)
    # Time passes beyond the lease (the periodic sweep would then queue the work; here the test does).
    Photo.objects.filter(pk=photo.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.CAPTION_LEASE_SECONDS + 1)
    )
    second = start_worker()
    caption_queue_work()
    wait_for(
        lambda: Photo.objects.filter(pk=photo.pk, status=Photo.Status.CAPTIONED).exists(),
        timeout=120,
        what="the second worker to caption the abandoned photo",
        worker=second,
    )
    photo.refresh_from_db()
    assert photo.attempts == 2
    assert Caption.objects.filter(photo=photo, is_current=True).count() == 1
