"""The pages a person goes through: sign-up, galleries and members, empty states, error pages."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from captioning.models import Gallery, GalleryMembership

pytestmark = pytest.mark.django_db


def test_sign_up_logs_in_and_shows_the_empty_gallery_list(client):
    response = client.post(
        reverse("signup"),
        {"username": "zoe", "password1": "a-Long-passw0rd", "password2": "a-Long-passw0rd"},
        follow=True,
    )
    assert get_user_model().objects.filter(username="zoe").exists()
    html = response.content.decode()
    assert '<span class="site-user__name">zoe</span>' in html
    assert "You have no galleries yet." in html


def test_sign_up_refuses_a_weak_password(client):
    response = client.post(reverse("signup"), {"username": "zoe", "password1": "123", "password2": "123"})
    assert response.status_code == 200
    assert not get_user_model().objects.filter(username="zoe").exists()


def test_log_in_and_log_out(client, alice):
    response = client.post(reverse("login"), {"username": "alice", "password": "a-Long-passw0rd"})
    assert response.status_code == 302 and response["Location"] == reverse("gallery-list")
    client.post(reverse("logout"))
    assert client.get(reverse("gallery-list")).status_code == 302  # back to the login page


def test_create_a_gallery_and_see_its_empty_state(client, alice):
    client.force_login(alice)
    response = client.post(
        reverse("gallery-new"), {"title": "Été à Paris", "description": "", "visibility": "public"}, follow=True
    )
    gallery = Gallery.objects.get()
    assert (gallery.owner, gallery.slug, gallery.visibility) == (alice, "été-à-paris", "public")
    page = response.content.decode()
    assert "No photos in this gallery yet." in page
    assert "data-uploader" in page


def test_gallery_short_link_and_wrong_slug_redirect_to_the_canonical_address(client, alice, gallery):
    client.force_login(alice)
    for url in (reverse("gallery-detail-short", args=[gallery.public_id]), f"/g/{gallery.public_id}/old-title/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == gallery.get_absolute_url()


def test_owner_edits_the_gallery_and_its_members(client, alice, bob, gallery):
    client.force_login(alice)
    client.post(
        reverse("gallery-edit", args=[gallery.public_id]),
        {"title": "Renamed", "description": "new", "visibility": "unlisted"},
    )
    gallery.refresh_from_db()
    assert (gallery.title, gallery.visibility) == ("Renamed", "unlisted")

    client.post(reverse("gallery-member-add", args=[gallery.public_id]), {"username": "BOB", "role": "editor"})
    assert GalleryMembership.objects.get(gallery=gallery).role == "editor"
    response = client.post(
        reverse("gallery-member-add", args=[gallery.public_id]), {"username": "nobody", "role": "viewer"}, follow=True
    )
    assert "There is no user called" in response.content.decode()
    client.post(reverse("gallery-member-remove", args=[gallery.public_id, bob.pk]))
    assert not GalleryMembership.objects.exists()


def test_shared_galleries_appear_in_my_galleries(client, alice, bob, gallery):
    GalleryMembership.objects.create(gallery=gallery, user=bob, role="viewer")
    client.force_login(bob)
    page = client.get(reverse("gallery-list")).content.decode()
    assert "Holidays" in page and "by alice" in page


def test_deleting_a_gallery_deletes_its_photo_files(
    client, alice, gallery, media_files, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from captioning.services.photos import photo_upload
    from tests.captioning.helpers import encode, picture

    photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("x.jpg", encode(picture(seed=41))))
    assert len(media_files()) == 3
    client.force_login(alice)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("gallery-delete", args=[gallery.public_id]))
    assert not Gallery.objects.exists()
    assert media_files() == []


def test_error_pages_are_the_sites_own(client):
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "There is nothing here." in response.content.decode()


def test_explore_and_home_have_empty_states(client):
    assert "No public galleries yet." in client.get(reverse("home")).content.decode()
    assert "Nothing public yet." in client.get(reverse("gallery-public-list")).content.decode()


def _photos_without_files(gallery, count: int, first: int = 0) -> list:
    """Rows only: the grid reads no file."""
    from captioning.models import Caption, GalleryPhoto, Photo

    photos = [
        Photo.objects.create(
            owner=gallery.owner,
            sha256=f"{number:064x}",
            byte_size=1,
            width=1,
            height=1,
            format="JPEG",
            status=Photo.Status.CAPTIONED,
            original_filename=f"photo{number}.jpg",
        )
        for number in range(first, first + count)
    ]
    for photo in photos:
        GalleryPhoto.objects.create(gallery=gallery, photo=photo)
        Caption.objects.create(photo=photo, text=f"caption of {photo.original_filename}", is_current=True)
    return photos[::-1]  # the grid shows the newest first


def test_the_gallery_grid_comes_in_pages_and_the_status_poll_covers_the_pages_shown(
    client, alice, gallery, monkeypatch
):
    from captioning.views import galleries

    monkeypatch.setattr(galleries, "GALLERY_PAGE_SIZE", 2)
    newest_first = [str(photo.uuid) for photo in _photos_without_files(gallery, 5)]
    client.force_login(alice)

    page = client.get(gallery.get_absolute_url()).content.decode()
    assert [uuid for uuid in newest_first if f'data-photo="{uuid}"' in page] == newest_first[:2]
    assert 'href="?page=2" data-more-photos data-page="2"' in page
    last_page = client.get(gallery.get_absolute_url() + "?page=3").content.decode()
    assert [uuid for uuid in newest_first if f'data-photo="{uuid}"' in last_page] == newest_first[4:]
    assert "data-more-photos" not in last_page

    status_url = reverse("gallery-status", args=[gallery.public_id])
    second = client.get(status_url, {"page": 2}).json()
    assert [photo["id"] for photo in second["photos"]] == newest_first[2:4]
    assert second["next_page"] == 3
    shown = client.get(status_url, {"page": 1, "pages": 3}).json()
    assert [photo["id"] for photo in shown["photos"]] == newest_first
    assert shown["next_page"] is None
    assert [photo["id"] for photo in client.get(status_url, {"page": "x"}).json()["photos"]] == newest_first[:2]


def test_the_retry_button_counts_the_failed_photos_of_every_page(client, alice, gallery, monkeypatch):
    from captioning.models import Photo
    from captioning.views import galleries

    monkeypatch.setattr(galleries, "GALLERY_PAGE_SIZE", 2)
    oldest = _photos_without_files(gallery, 4)[-2:]  # on the second page
    Photo.objects.filter(pk__in=[photo.pk for photo in oldest]).update(status=Photo.Status.FAILED)
    client.force_login(alice)
    assert "Retry 2 failed" in client.get(gallery.get_absolute_url()).content.decode()


def test_the_grid_names_each_photos_status_as_the_photo_page_does(client, alice, gallery):
    from captioning.models import Photo

    photos = _photos_without_files(gallery, 2)
    Photo.objects.filter(pk=photos[0].pk).update(status=Photo.Status.PROCESSING)
    client.force_login(alice)

    polled = client.get(reverse("gallery-status", args=[gallery.public_id])).json()["photos"]
    expected = {str(photo.uuid): photo.get_status_display() for photo in Photo.objects.filter(galleries=gallery)}
    assert {photo["id"]: photo["status_label"] for photo in polled} == expected
    assert "data-status>Captioning</span>" in client.get(gallery.get_absolute_url()).content.decode()


def _queries(client, path: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return len(queries)


def test_the_grid_and_the_photo_page_read_as_many_queries_for_many_rows_as_for_few(client, alice, gallery):
    from captioning.models import Caption

    client.force_login(alice)
    newest = _photos_without_files(gallery, 2)[0]
    paths = [gallery.get_absolute_url(), reverse("gallery-status", args=[gallery.public_id]), newest.get_absolute_url()]
    for path in paths:
        client.get(path)  # what a process renders once (the re-caption form) is not counted
    few = {path: _queries(client, path) for path in paths}
    _photos_without_files(gallery, 4, first=2)
    Caption.objects.filter(photo=newest).update(is_current=False)
    Caption.objects.create(photo=newest, text="older words", is_current=False)
    Caption.objects.create(
        photo=newest, text="rewritten", source=Caption.Source.EDITED, created_by=alice, is_current=True
    )
    assert {path: _queries(client, path) for path in paths} == few


def test_the_header_addresses_follow_each_requests_script_prefix():
    """The pages' addresses without arguments are resolved once (clippro_site/jinja2.py), yet a site served under
    a path (SCRIPT_NAME) gets its own."""
    from django.urls import set_script_prefix

    from clippro_site.jinja2 import url

    try:
        for prefix in ("/", "/clippro/", "/"):
            set_script_prefix(prefix)
            assert (url("timeline"), url("gallery-detail", "abc", "-")) == (f"{prefix}photos/", f"{prefix}g/abc/-/")
    finally:
        set_script_prefix("/")


@pytest.mark.parametrize("slug", ["été-à-paris", "", "plain", "a_b-9"])
def test_a_lists_gallery_addresses_are_those_of_each_gallery(slug):
    """Cards resolve the gallery page's address once per list (captioning/links.py): the same as each gallery's."""
    from django.urls import set_script_prefix

    from captioning.links import PhotoLinks
    from captioning.models import gallery_url

    try:
        for prefix in ("/", "/clippro/"):
            set_script_prefix(prefix)
            assert PhotoLinks().gallery("Ab-9_xYz", slug) == gallery_url("Ab-9_xYz", slug)
    finally:
        set_script_prefix("/")


@pytest.mark.parametrize("language", ["en", "fr", "de"])
def test_how_long_ago_reads_as_djangos_timesince_in_every_language(language):
    """The pages' `timesince` keeps each unit's translated words (clippro_site/jinja2.py): the same words."""
    from datetime import timedelta

    from django.template.defaultfilters import timesince_filter
    from django.utils import timezone, translation

    from clippro_site.jinja2 import timesince

    now = timezone.now()
    ago = [timedelta(0), timedelta(seconds=30), timedelta(minutes=1), timedelta(hours=1, minutes=5)]
    ago += [timedelta(days=1), timedelta(days=9, hours=3), timedelta(days=40), timedelta(days=800), timedelta(hours=-2)]
    with translation.override(language):
        assert [timesince(now - delta, now) for delta in ago] == [timesince_filter(now - delta, now) for delta in ago]
        assert timesince(now - timedelta(days=3)) == timesince_filter(now - timedelta(days=3))
    assert timesince(None) == timesince_filter(None) == ""
