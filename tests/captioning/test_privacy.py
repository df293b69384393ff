"""Who sees what: private photos, their thumbnails and originals answer 404 to everyone but the owner and
members; unlisted galleries open by link but are never listed; public ones are listed on Explore."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from captioning import selectors
from captioning.models import Gallery, GalleryMembership
from captioning.services.galleries import gallery_create, gallery_member_set
from captioning.services.photos import photo_upload
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db

PHOTO_URLS = ["photo-detail", "photo-thumbnail", "photo-image", "photo-original", "photo-status"]


@pytest.fixture
def private_photo(alice, gallery):
    return photo_upload(
        acting_user=alice, gallery=gallery, file=SimpleUploadedFile("p.jpg", encode(picture(seed=21)))
    ).photo


@pytest.mark.parametrize("name", PHOTO_URLS)
def test_another_user_gets_404_for_a_private_photo(client, bob, private_photo, name):
    client.force_login(bob)
    assert client.get(reverse(name, args=[private_photo.uuid])).status_code == 404


@pytest.mark.parametrize("name", PHOTO_URLS)
def test_anonymous_visitor_gets_404_for_a_private_photo(client, private_photo, name):
    assert client.get(reverse(name, args=[private_photo.uuid])).status_code == 404


@pytest.mark.parametrize("name", PHOTO_URLS)
def test_owner_and_member_see_a_private_photo(client, alice, bob, gallery, private_photo, name):
    client.force_login(alice)
    assert client.get(reverse(name, args=[private_photo.uuid])).status_code == 200
    gallery_member_set(gallery=gallery, acting_user=alice, username="bob", role=GalleryMembership.Role.VIEWER)
    client.force_login(bob)
    assert client.get(reverse(name, args=[private_photo.uuid])).status_code == 200


def test_private_gallery_pages_answer_404_to_others(client, bob, gallery):
    client.force_login(bob)
    for url in (
        gallery.get_absolute_url(),
        reverse("gallery-status", args=[gallery.public_id]),
        reverse("gallery-edit", args=[gallery.public_id]),
    ):
        assert client.get(url).status_code == 404, url


def test_viewer_cannot_edit_the_gallery_or_its_photos(client, alice, bob, gallery, private_photo):
    gallery_member_set(gallery=gallery, acting_user=alice, username="bob", role=GalleryMembership.Role.EDITOR)
    client.force_login(bob)
    assert client.get(reverse("gallery-edit", args=[gallery.public_id])).status_code == 403
    assert client.post(reverse("gallery-delete", args=[gallery.public_id])).status_code == 403
    client.post(reverse("photo-delete", args=[private_photo.uuid]))
    assert private_photo.__class__.objects.filter(pk=private_photo.pk).exists()


def test_unlisted_gallery_opens_by_link_but_is_not_listed(client, alice, bob):
    unlisted = gallery_create(acting_user=alice, title="By link", visibility=Gallery.Visibility.UNLISTED)
    photo = photo_upload(
        acting_user=alice, gallery=unlisted, file=SimpleUploadedFile("u.jpg", encode(picture(seed=22)))
    ).photo

    assert client.get(unlisted.get_absolute_url()).status_code == 200
    assert client.get(reverse("photo-thumbnail", args=[photo.uuid])).status_code == 200
    assert unlisted.public_id not in {card.public_id for card in selectors.gallery_list_public()}
    assert photo not in selectors.photo_list_visible_to(bob)
    assert photo in selectors.photo_list_visible_to(bob, include_unlisted=True)
    assert "By link" not in client.get(reverse("gallery-public-list")).content.decode()


def test_public_gallery_is_listed_and_visible_to_everyone(client, alice, bob):
    public = gallery_create(acting_user=alice, title="Sunsets", visibility=Gallery.Visibility.PUBLIC)
    photo = photo_upload(
        acting_user=alice, gallery=public, file=SimpleUploadedFile("s.jpg", encode(picture(seed=23)))
    ).photo

    assert "Sunsets" in client.get(reverse("gallery-public-list")).content.decode()
    assert client.get(reverse("photo-detail", args=[photo.uuid])).status_code == 200
    assert list(selectors.photo_list_visible_to(bob)) == [photo]
    assert list(selectors.photo_list_visible_to(None)) == [photo]


def test_visibility_selector_lists_each_photo_once(alice, bob, make_user, gallery, private_photo):
    """A gallery with several members must not repeat its photos (a join on memberships would)."""
    for name in ("carol", "dave"):
        make_user(name)
        gallery_member_set(gallery=gallery, acting_user=alice, username=name, role="viewer")
    gallery.visibility = Gallery.Visibility.PUBLIC
    gallery.save()
    assert list(selectors.photo_list_visible_to(alice)) == [private_photo]
    assert list(selectors.photo_list_visible_to(bob)) == [private_photo]


def test_there_is_no_public_media_url(client, private_photo, settings):
    name = private_photo.original.name
    for prefix in ("/media/", "/" + settings.STATIC_URL.strip("/") + "/"):
        assert client.get(prefix + name).status_code == 404


@pytest.mark.parametrize("not_an_id", ["", " ", "\t", "a b", "é", "x" * 17, "abc\n"])
def test_the_photo_list_selector_refuses_a_gallery_id_that_was_not_validated(bob, not_an_id):
    """A blank id once meant "no gallery" to the filter and "asked by its link" to the view: every unlisted
    gallery was listed. The selector takes None for no gallery and refuses anything that is not an id."""
    with pytest.raises(ValueError, match="Not a gallery id"):
        selectors.photo_list_for_viewer(acting_user=bob, gallery_public_id=not_an_id)


def test_the_photo_list_selector_lists_an_unlisted_gallery_by_its_id_only(alice, bob):
    unlisted = gallery_create(acting_user=alice, title="By link", visibility=Gallery.Visibility.UNLISTED)
    other = gallery_create(acting_user=alice, title="Other link", visibility=Gallery.Visibility.UNLISTED)
    photo = photo_upload(
        acting_user=alice, gallery=unlisted, file=SimpleUploadedFile("u.jpg", encode(picture(seed=24)))
    ).photo
    photo_upload(acting_user=alice, gallery=other, file=SimpleUploadedFile("o.jpg", encode(picture(seed=25))))

    for user in (bob, None):
        assert list(selectors.photo_list_for_viewer(acting_user=user)) == []
        assert list(selectors.photo_list_for_viewer(acting_user=user, gallery_public_id=unlisted.public_id)) == [photo]
