"""GETs read: the gallery page, its status poll and the photo page leave the database as it was (no translation
rows, no queued tasks) even in another language; the translations are asked for by POST. And the admin's
delete, one photo or many galleries, goes through the services, so the files leave the disk too."""

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from captioning.models import Caption, Gallery, Photo, Translation
from captioning.services.photos import photo_upload
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def captioned(alice, gallery, settings) -> Caption:
    settings.CAPTION_LANGUAGES = ["fr", "de"]
    settings.TRANSLATION_PROVIDER = "google"  # configured, yet a GET must not ask it for anything
    content = encode(picture(seed=41), "JPEG")
    photo = photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("g.jpg", content)).photo
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.CAPTIONED)
    return Caption.objects.create(photo=photo, text="a cat on a sofa", is_current=True)


def every_row() -> dict[str, list[dict]]:
    """Each table's rows (django-q2's queued tasks and the sessions included)."""
    return {model._meta.label: list(model.objects.order_by("pk").values()) for model in apps.get_models()}


def test_pages_and_polls_in_another_language_write_nothing(client, alice, captioned):
    gallery, photo = captioned.photo.galleries.get(), captioned.photo
    client.force_login(alice)
    client.get(gallery.get_absolute_url(), {"lang": "fr"})  # choosing the language is remembered in the session
    before = every_row()

    gallery_page = client.get(gallery.get_absolute_url(), {"lang": "fr"}).content.decode()
    poll = client.get(reverse("gallery-status", args=[gallery.public_id]), {"page": 1, "pages": 1}).json()
    photo_page = client.get(photo.get_absolute_url()).content.decode()
    client.get(reverse("photo-status", args=[photo.uuid]))

    assert every_row() == before
    assert "Translate captions into Français" in gallery_page and "Translate into Français" in photo_page
    assert poll["photos"][0]["translation_status"] is None


def test_translations_are_asked_for_by_post(client, alice, captioned):
    gallery, photo = captioned.photo.galleries.get(), captioned.photo
    client.force_login(alice)

    response = client.post(
        reverse("gallery-translate", args=[gallery.public_id]),
        {"language": "fr", "page": 1, "pages": 1},
        HTTP_ACCEPT="application/json",
    )
    assert response.json() == {"ok": True, "requested": 1}
    client.post(reverse("photo-translate", args=[photo.uuid]), {"language": "de"})

    assert set(Translation.objects.values_list("caption_id", "language", "status")) == {
        (captioned.pk, "fr", Translation.Status.PENDING),
        (captioned.pk, "de", Translation.Status.PENDING),
    }
    poll = client.get(reverse("gallery-status", args=[gallery.public_id]), {"lang": "fr"}).json()
    assert (poll["photos"][0]["translation_status"], poll["busy"]) == (Translation.Status.PENDING, 1)


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("sam", password="a-Long-passw0rd")


def test_the_admin_deletes_a_photo_with_its_files(
    client, staff, captioned, media_files, django_capture_on_commit_callbacks
):
    photo = captioned.photo
    assert len(media_files()) == 3
    client.force_login(staff)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("admin:captioning_photo_delete", args=[photo.pk]), {"post": "yes"})

    assert not Photo.objects.exists()
    assert media_files() == []


def test_the_admins_bulk_delete_of_galleries_takes_their_photos_files(
    client, staff, alice, captioned, media_files, django_capture_on_commit_callbacks
):
    other = Gallery.objects.create(owner=alice, title="Other")
    photo_upload(acting_user=alice, gallery=other, file=SimpleUploadedFile("o.png", encode(picture(seed=42), "PNG")))
    assert len(media_files()) == 6
    client.force_login(staff)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("admin:captioning_gallery_changelist"),
            {
                "action": "delete_selected",
                "_selected_action": [captioned.photo.galleries.get().pk, other.pk],
                "post": "yes",
            },
        )

    assert not Gallery.objects.exists() and not Photo.objects.exists()
    assert media_files() == []
