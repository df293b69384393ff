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
    assert response.context["user"].username == "zoe"
    assert "You have no galleries yet." in response.content.decode()


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

    photo_upload(uploaded_by=alice, gallery=gallery, file=SimpleUploadedFile("x.jpg", encode(picture(seed=41))))
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
