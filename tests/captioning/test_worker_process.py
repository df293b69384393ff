"""End to end with a real worker: uploads through the upload endpoint, a `manage.py qcluster` process with
the ORM broker on the test database, and a tiny checkpoint writing the captions."""

import importlib
import os
import time
from collections.abc import Callable
from datetime import timedelta

import pytest
from django.apps import apps as django_apps
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from django_q.models import Success

from captioning.jobs import request_worker_run
from captioning.models import Caption, Photo
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register
from captioning.services.photos import photo_upload
from tests.captioning.helpers import encode, picture, wait_for

pytestmark = pytest.mark.slow


def upload_photo_a_worker_gets_stuck_on(owner, seed: int) -> tuple[Photo, Callable[[], None]]:
    """A photo whose file is swapped for a FIFO nobody writes to: a worker reading it blocks (deterministically)
    in its batch, with the claim held. Call the returned function to put the file back."""
    gallery = gallery_create(acting_user=owner, title=f"Interrupted {seed}")
    photo = photo_upload(
        acting_user=owner, gallery=gallery, file=SimpleUploadedFile("k.jpg", encode(picture(seed=seed)))
    ).photo
    path = photo.original.path
    content = open(path, "rb").read()  # noqa: SIM115
    os.remove(path)
    os.mkfifo(path)

    def put_file_back() -> None:
        os.remove(path)
        with open(path, "wb") as file:
            file.write(content)

    return photo, put_file_back


def wait_until_claimed(photo: Photo, worker) -> None:
    wait_for(
        lambda: Photo.objects.filter(pk=photo.pk, status=Photo.Status.PROCESSING).exists(),
        timeout=60,
        what="the worker to claim the photo",
        worker=worker,
    )


def test_a_real_qcluster_captions_uploads_end_to_end(
    client, alice, start_worker, save_random_checkpoint, fixture_photos
):
    model = model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=5), activate=True)
    gallery = gallery_create(acting_user=alice, title="Real photos")
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
    photo, put_file_back = upload_photo_a_worker_gets_stuck_on(alice, seed=61)
    first = start_worker()
    wait_until_claimed(photo, first)
    first.kill()

    photo.refresh_from_db()
    assert (photo.status, photo.attempts) == (Photo.Status.PROCESSING, 1)
    assert not Caption.objects.filter(photo=photo).exists()

    put_file_back()
    # Time passes beyond the lease (the periodic sweep would then queue the work; here the test does).
    Photo.objects.filter(pk=photo.pk).update(
        claimed_at=timezone.now() - timedelta(seconds=settings.CAPTION_LEASE_SECONDS + 1)
    )
    second = start_worker()
    request_worker_run()
    wait_for(
        lambda: Photo.objects.filter(pk=photo.pk, status=Photo.Status.CAPTIONED).exists(),
        timeout=120,
        what="the second worker to caption the abandoned photo",
        worker=second,
    )
    photo.refresh_from_db()
    assert photo.attempts == 2
    assert Caption.objects.filter(photo=photo, is_current=True).count() == 1


def test_a_killed_workers_photos_are_captioned_again_within_two_minutes(
    alice, start_worker, save_random_checkpoint, settings
):
    """While a worker is stuck in a batch its heartbeat keeps renewing the claim; once it is killed (SIGKILL)
    the claim expires after the lease and the every-minute sweep hands the photo to the next worker, all
    with the real timings: less than 2 minutes from the kill to the caption."""
    # The schedule a migration made; the database is emptied between transactional tests.
    importlib.import_module("captioning.migrations.0002_sweep_schedule").create_schedule(django_apps, None)
    model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=7), activate=True)
    photo, put_file_back = upload_photo_a_worker_gets_stuck_on(alice, seed=71)
    first = start_worker()
    wait_until_claimed(photo, first)
    claimed_at = Photo.objects.get(pk=photo.pk).claimed_at
    wait_for(
        lambda: Photo.objects.get(pk=photo.pk).claimed_at > claimed_at,
        timeout=settings.CAPTION_HEARTBEAT_SECONDS * 2 + 5,
        what="the heartbeat to renew the claim",
        worker=first,
    )
    first.kill()
    killed_at = time.monotonic()
    put_file_back()
    second = start_worker()
    wait_for(
        lambda: Photo.objects.filter(pk=photo.pk, status=Photo.Status.CAPTIONED).exists(),
        timeout=180,
        what="the next worker to caption the abandoned photo",
        worker=second,
    )
    waited = time.monotonic() - killed_at
    print(f"captioned {waited:.0f} s after its worker was killed")
    assert waited < 120
    assert Photo.objects.get(pk=photo.pk).attempts == 2
