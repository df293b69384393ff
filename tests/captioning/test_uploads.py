"""Uploads through the upload endpoint: accepted formats, every refusal (with nothing left behind on disk or
in the database), duplicates, EXIF orientation and GPS privacy."""

import io
import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from captioning.models import Gallery, Photo
from tests.captioning.helpers import GPS_IFD, encode, jpeg_with_exif, picture

pytestmark = pytest.mark.django_db


def upload(client, gallery, content: bytes, name: str = "photo.jpg", content_type: str = "image/jpeg"):
    return client.post(
        reverse("photo-upload", args=[gallery.public_id]),
        {"file": SimpleUploadedFile(name, content, content_type=content_type)},
        HTTP_ACCEPT="application/json",
    )


@pytest.fixture
def owner_client(client, alice):
    client.force_login(alice)
    return client


@pytest.mark.parametrize(
    ("image_format", "options", "expected_format"),
    [
        ("JPEG", {"quality": 90}, "JPEG"),
        ("PNG", {}, "PNG"),
        ("WEBP", {"quality": 80}, "WEBP"),
        ("GIF", {}, "GIF"),
    ],
)
def test_accepted_formats_are_stored_with_derivatives(
    owner_client, gallery, media_files, image_format, options, expected_format
):
    response = upload(owner_client, gallery, encode(picture(seed=4), image_format, **options), name="file.bin")

    assert response.status_code == 201, response.json()
    photo = Photo.objects.get()
    assert (photo.format, photo.width, photo.height, photo.status) == (expected_format, 64, 48, Photo.Status.QUEUED)
    assert photo.original_filename == "file.bin"
    assert len(media_files()) == 3  # original, display copy, thumbnail
    with photo.thumbnail.open("rb") as thumbnail:
        assert Image.open(thumbnail).format == "WEBP"


def test_animated_gif_is_accepted_by_its_first_frame(owner_client, gallery):
    frames = [picture(seed=1).convert("P"), picture(seed=2).convert("P")]
    content = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)

    assert upload(owner_client, gallery, content, name="anim.gif").status_code == 201
    assert Photo.objects.get().format == "GIF"


def test_png_with_transparency_is_accepted(owner_client, gallery):
    content = encode(picture(seed=3, mode="RGBA"), "PNG")
    assert upload(owner_client, gallery, content, name="alpha.png").status_code == 201


TRUNCATED_JPEG = encode(picture(400, 300, seed=5), "JPEG", quality=95)
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
REFUSALS = {
    "zero_byte": (b"", "empty"),
    "svg": (SVG, "SVG"),
    "svg_without_declaration": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10"/>', "SVG"),
    "html": (b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>", "HTML"),
    "script": (b"#!/bin/sh\nrm -rf /\n", "script"),
    "plain_text_named_jpg": (b"just some words, not a picture at all", "not a JPEG"),
    "pdf": (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
    "jpeg_html_polyglot": (
        encode(picture(seed=6), "JPEG") + b"<html><script>alert(document.cookie)</script></html>",
        "script code",
    ),
    "gif_javascript_polyglot": (
        b"GIF89a/*" + encode(picture(seed=7).convert("P"), "GIF")[8:] + b"*/=1;<script>alert(1)</script>",
        "script code",
    ),
    "truncated_jpeg": (TRUNCATED_JPEG[: len(TRUNCATED_JPEG) // 2], "truncated"),
    "truncated_png": (encode(picture(300, 200, seed=8), "PNG")[:400], "cannot be decoded"),
    "bmp_is_not_accepted": (encode(picture(seed=9), "BMP"), "not a JPEG"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_refused_upload_leaves_no_file_and_no_row(owner_client, gallery, media_files, case):
    content, expected_words = REFUSALS[case]

    response = upload(owner_client, gallery, content, name="holiday.jpg")

    assert response.status_code == 400
    assert response.json()["ok"] is False
    assert expected_words.lower() in response.json()["error"].lower()
    assert Photo.objects.count() == 0
    assert media_files() == []


def test_file_over_the_byte_limit_is_refused_before_decoding(owner_client, gallery, media_files, settings):
    settings.UPLOAD_MAX_BYTES = 2000
    content = encode(Image.frombytes("RGB", (64, 64), os.urandom(64 * 64 * 3)), "PNG")  # noise: ~12 KB
    assert len(content) > 2000

    response = upload(owner_client, gallery, content, name="big.png")

    assert response.status_code in (400, 413)
    assert "limit" in response.json()["error"]
    assert Photo.objects.count() == 0
    assert media_files() == []


def test_request_far_over_the_limit_is_refused_without_reading_it(owner_client, gallery, media_files, settings):
    """Large enough that Django would spool it to a temporary file: refused from its Content-Length."""
    settings.UPLOAD_MAX_BYTES = 1024
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = upload(owner_client, gallery, b"\xff\xd8\xff" + b"\0" * 300_000, name="huge.jpg")

    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert media_files() == []


def test_decompression_bomb_is_refused_by_its_pixel_count(owner_client, gallery, media_files, settings):
    settings.UPLOAD_MAX_PIXELS = 100 * 100
    content = encode(Image.new("L", (4000, 4000)), "PNG")  # 16 MP of zeros: a few KB compressed

    response = upload(owner_client, gallery, content, name="bomb.png")

    assert response.status_code == 400
    assert "megapixels" in response.json()["error"]
    assert Photo.objects.count() == 0
    assert media_files() == []


def test_failure_while_storing_removes_files_already_written(owner_client, gallery, media_files, monkeypatch):
    from captioning.services import photos

    calls = {"n": 0}
    real_render = photos.render_derivative

    def render_then_fail(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # after the original and the display copy were written
            raise OSError("disk full")
        return real_render(*args, **kwargs)

    monkeypatch.setattr(photos, "render_derivative", render_then_fail)
    owner_client.raise_request_exception = False

    response = upload(owner_client, gallery, encode(picture(seed=11), "JPEG"))

    assert response.status_code == 500
    assert Photo.objects.count() == 0
    assert media_files() == []


def test_the_same_file_again_in_the_same_gallery_is_a_duplicate(owner_client, gallery, media_files):
    content = encode(picture(seed=12), "JPEG")
    first = upload(owner_client, gallery, content, name="a.jpg")

    again = upload(owner_client, gallery, content, name="copy-of-a.jpg")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert again.json()["photo"]["id"] == first.json()["photo"]["id"]
    assert again.json()["message"] == "Already uploaded to this gallery."
    assert Photo.objects.count() == 1
    assert len(media_files()) == 3


def test_the_same_file_in_another_gallery_adds_the_photo_there(owner_client, gallery, alice, media_files):
    content = encode(picture(seed=12), "JPEG")
    first = upload(owner_client, gallery, content, name="a.jpg")
    other_gallery = Gallery.objects.create(owner=alice, title="Other", slug="other")

    again = upload(owner_client, other_gallery, content, name="copy-of-a.jpg")

    assert first.status_code == 201
    assert again.status_code == 201
    assert again.json()["outcome"] == "added"
    assert again.json()["message"] == "Already in your library: added to this gallery."
    assert again.json()["photo"]["id"] == first.json()["photo"]["id"]
    photo = Photo.objects.get()
    assert set(photo.galleries.all()) == {gallery, other_gallery}
    assert len(media_files()) == 3


def test_a_duplicate_never_points_into_a_gallery_the_uploader_has_left(client, alice, make_user, gallery):
    """Erin, once an editor of Alice's private gallery, uploads there; Alice renames the gallery, rewrites
    the photo's caption and removes Erin. Erin's same file in her own gallery reveals none of it."""
    from captioning.services.galleries import gallery_create, gallery_member_remove, gallery_member_set, gallery_update
    from captioning.services.photos import photo_caption_edit

    erin = make_user("erin")
    gallery_member_set(gallery=gallery, acting_user=alice, username="erin", role="editor")
    content = encode(picture(seed=17), "JPEG")
    client.force_login(erin)
    assert upload(client, gallery, content).status_code == 201
    gallery_update(gallery=gallery, acting_user=alice, title="Secret plans", description="", visibility="private")
    photo_caption_edit(
        photo=Photo.objects.get(galleries=gallery), acting_user=alice, text="the surprise party guest list"
    )
    gallery_member_remove(gallery=gallery, acting_user=alice, user_id=erin.pk)
    own = gallery_create(acting_user=erin, title="Mine", visibility=Gallery.Visibility.PRIVATE)

    response = upload(client, own, content)

    assert response.status_code == 201, response.content
    assert response.json()["outcome"] == "uploaded"
    for secret in ("Secret plans", "surprise party", gallery.public_id, str(Photo.objects.get(galleries=gallery).uuid)):
        assert secret not in response.content.decode()
    assert Photo.objects.filter(galleries=own, owner=erin).count() == 1
    assert Photo.objects.filter(owner=erin).count() == 2  # her earlier photo stays, unseen, in Alice's gallery


def test_same_file_from_two_owners_is_two_photos(client, alice, bob, gallery):
    from captioning.services.galleries import gallery_member_set

    gallery_member_set(gallery=gallery, acting_user=alice, username="bob", role="editor")
    content = encode(picture(seed=13), "JPEG")
    client.force_login(alice)
    assert upload(client, gallery, content).status_code == 201
    client.force_login(bob)
    assert upload(client, gallery, content).status_code == 201
    assert Photo.objects.count() == 2


def test_viewer_cannot_upload(client, alice, bob, gallery, media_files):
    from captioning.services.galleries import gallery_member_set

    gallery_member_set(gallery=gallery, acting_user=alice, username="bob", role="viewer")
    client.force_login(bob)

    response = upload(client, gallery, encode(picture(seed=14), "JPEG"))

    assert response.status_code == 403
    assert Photo.objects.count() == 0
    assert media_files() == []


def test_stranger_cannot_upload_to_a_private_gallery(client, bob, gallery):
    client.force_login(bob)
    assert upload(client, gallery, encode(picture(seed=15), "JPEG")).status_code == 404


def test_exif_orientation_is_applied_to_size_and_derivatives(owner_client, gallery):
    # Stored landscape (60x30), shown rotated a quarter turn (orientation 6): the photo is portrait.
    response = upload(owner_client, gallery, jpeg_with_exif(60, 30, orientation=6))

    assert response.status_code == 201
    photo = Photo.objects.get()
    assert (photo.width, photo.height) == (30, 60)
    for derivative in (photo.thumbnail, photo.display_image):
        with derivative.open("rb") as file:
            image = Image.open(file)
            assert image.height > image.width
            assert not image.getexif().get(0x0112)


def test_taken_at_is_read_from_exif(owner_client, gallery):
    upload(owner_client, gallery, jpeg_with_exif(taken="2021:07:04 10:11:12"))
    taken = Photo.objects.get().taken_at
    assert (taken.year, taken.month, taken.day, taken.hour) == (2021, 7, 4, 10)


@pytest.mark.parametrize("taken", ["2999:01:01 00:00:00", "0000:00:00 00:00:00", "1700:01:01 00:00:00", "junk"])
def test_an_impossible_date_taken_counts_as_unknown(owner_client, gallery, taken):
    """A camera with a dead clock (or a hostile file) must not pin a photo to the top of every timeline that
    shows it: dates before photography or in the future are no date."""
    upload(owner_client, gallery, jpeg_with_exif(taken=taken))
    assert Photo.objects.get().taken_at is None


def test_gps_reaches_the_owner_only(client, alice, bob, gallery):
    gallery.visibility = Gallery.Visibility.PUBLIC
    gallery.save()
    client.force_login(alice)
    upload(client, gallery, jpeg_with_exif(gps=True))
    photo = Photo.objects.get()
    assert photo.has_location

    owner_copy = b"".join(client.get(reverse("photo-original", args=[photo.uuid])).streaming_content)
    assert dict(Image.open(io.BytesIO(owner_copy)).getexif().get_ifd(GPS_IFD))

    for viewer in (bob, None):
        client.logout()
        if viewer:
            client.force_login(viewer)
        for name in ("photo-original", "photo-image", "photo-thumbnail"):
            response = client.get(reverse(name, args=[photo.uuid]))
            assert response.status_code == 200
            data = b"".join(response.streaming_content)
            image = Image.open(io.BytesIO(data))
            assert image.format == "WEBP"
            assert not image.getexif(), f"{name} carries metadata for {viewer}"
            assert b"GPS" not in data and b"Exif" not in data
        page = client.get(reverse("photo-detail", args=[photo.uuid])).content.decode()
        assert "GPS" not in page


def test_media_responses_cannot_run_as_pages(owner_client, gallery):
    upload(owner_client, gallery, encode(picture(seed=16), "JPEG"))
    photo = Photo.objects.get()

    response = owner_client.get(reverse("photo-original", args=[photo.uuid]))

    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response["Content-Security-Policy"]
    assert response["Content-Disposition"].startswith("attachment")
