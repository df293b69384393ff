"""End to end with a real worker: uploads through the upload endpoint, a `manage.py qcluster` process with
the ORM broker on the test database, and a tiny checkpoint writing the captions."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django_q.models import Success

from captioning.models import Caption, Photo
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register
from tests.captioning.helpers import wait_for

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
