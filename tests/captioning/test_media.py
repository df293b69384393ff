"""The same upload / serve / caption / delete behaviour with photos on the file system and in a real S3 server
(moto's, on 127.0.0.1), and the signed-URL redirect an object store allows."""

import io
import urllib.request
from email.message import Message
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from captioning.models import Caption, Photo
from captioning.services.worker import caption_pending_photos
from tests.captioning.conftest import s3_client
from tests.captioning.helpers import encode, jpeg_with_exif, picture

pytestmark = pytest.mark.django_db


def upload(client, gallery, content: bytes, name: str = "photo.jpg") -> Photo:
    response = client.post(
        reverse("photo-upload", args=[gallery.public_id]),
        {"file": SimpleUploadedFile(name, content, content_type="image/jpeg")},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 201, response.content
    return Photo.objects.get(original_filename=name)


def served_bytes(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.fixture
def owner_client(client, alice):
    client.force_login(alice)
    return client


def test_an_upload_stores_the_original_and_its_derivatives_in_the_store(
    owner_client, gallery, media_store, media_files
):
    content = jpeg_with_exif(gps=True, seed=3)
    photo = upload(owner_client, gallery, content)

    assert media_store.names() == sorted(photo.storage_names)
    assert {name.rsplit("/", 1)[-1] for name in photo.storage_names} == {
        "original.jpg",
        "display.webp",
        "thumbnail.webp",
    }
    with photo.original.open("rb") as original:
        assert original.read() == content
    if media_store.is_object_store:
        assert media_files() == []  # nothing on the web server's disk, not even a temporary file


def test_files_are_served_from_the_store_after_the_permission_check(client, alice, bob, gallery, media_store, settings):
    client.force_login(alice)
    content = jpeg_with_exif(gps=True, seed=4)
    photo = upload(client, gallery, content, name="beach.jpg")

    original = client.get(reverse("photo-original", args=[photo.uuid]))
    assert original.status_code == 200
    assert served_bytes(original) == content  # the owner gets the file as uploaded, EXIF and GPS included
    assert original["Content-Length"] == str(len(content))
    assert original["Content-Disposition"] == 'attachment; filename="beach.jpg"'
    assert original["Content-Security-Policy"] == "default-src 'none'; sandbox"
    thumbnail = client.get(reverse("photo-thumbnail", args=[photo.uuid]))
    assert thumbnail["Content-Type"] == "image/webp"
    with photo.thumbnail.open("rb") as stored:
        assert served_bytes(thumbnail) == stored.read()

    client.force_login(bob)
    for name in ("photo-thumbnail", "photo-image", "photo-original"):
        assert client.get(reverse(name, args=[photo.uuid])).status_code == 404


def test_a_file_missing_from_the_store_answers_404(owner_client, gallery, media_store):
    photo = upload(owner_client, gallery, encode(picture(seed=5)))
    photo.display_image.storage.delete(photo.display_image.name)

    assert owner_client.get(reverse("photo-image", args=[photo.uuid])).status_code == 404
    assert owner_client.get(reverse("photo-thumbnail", args=[photo.uuid])).status_code == 200


def test_the_worker_reads_photos_through_the_store(owner_client, gallery, media_store, media_files, active_model):
    photos = [upload(owner_client, gallery, encode(picture(seed=seed)), name=f"{seed}.jpg") for seed in (6, 7, 8)]

    outcome = caption_pending_photos()

    assert outcome.captioned == 3
    for photo in photos:
        photo.refresh_from_db()
        assert photo.status == Photo.Status.CAPTIONED
        assert Caption.objects.filter(photo=photo, is_current=True, model_version=active_model).count() == 1
    if media_store.is_object_store:
        assert media_files() == []


def test_deleting_a_photo_removes_every_file_from_the_store(
    owner_client, gallery, media_store, django_capture_on_commit_callbacks
):
    kept = upload(owner_client, gallery, encode(picture(seed=9)), name="kept.jpg")
    deleted = upload(owner_client, gallery, encode(picture(seed=10)), name="deleted.jpg")

    with django_capture_on_commit_callbacks(execute=True):  # the files go once the row's deletion is committed
        response = owner_client.post(reverse("photo-delete", args=[deleted.uuid]))

    assert response.status_code == 302
    assert media_store.names() == sorted(kept.storage_names)
    assert not Photo.objects.filter(pk=deleted.pk).exists()


def fetch(url: str) -> tuple[bytes, Message]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), response.headers


def test_with_signed_urls_the_owner_is_redirected_to_a_short_lived_url(
    client, alice, bob, gallery, object_store, settings
):
    settings.MEDIA_SIGNED_URL_SECONDS = 120
    client.force_login(alice)
    content = jpeg_with_exif(gps=True, seed=11)
    photo = upload(client, gallery, content, name="signed.jpg")

    response = client.get(reverse("photo-original", args=[photo.uuid]))

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, max-age=60"
    signed = urlsplit(response["Location"])
    assert f"{signed.scheme}://{signed.netloc}" == object_store.endpoint
    query = parse_qs(signed.query)
    assert query["X-Amz-Expires"] == ["120"]
    assert "X-Amz-Signature" in query
    body, headers = fetch(response["Location"])
    assert body == content
    assert headers["Content-Type"] == "image/jpeg"
    assert headers["Content-Disposition"] == 'attachment; filename="signed.jpg"'

    thumbnail_url = client.get(reverse("photo-thumbnail", args=[photo.uuid]))["Location"]
    body, headers = fetch(thumbnail_url)
    assert headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(body)).format == "WEBP"

    client.force_login(bob)  # the permission check still comes first: no URL for others
    assert client.get(reverse("photo-original", args=[photo.uuid])).status_code == 404


def test_objects_in_the_store_are_private(owner_client, gallery, object_store):
    photo = upload(owner_client, gallery, encode(picture(seed=12)))
    client = s3_client(object_store.endpoint)

    for name in photo.storage_names:
        grants = client.get_object_acl(Bucket=object_store.bucket, Key=name)["Grants"]
        assert [grant["Grantee"].get("URI") for grant in grants] == [None], grants  # the owner alone
