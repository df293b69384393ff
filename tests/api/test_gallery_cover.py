"""A gallery's `cover` in the API: the photo its owner chose (else its first), as an id and a thumbnail address,
for whoever may see the gallery; null for an empty gallery; never a photo of another gallery."""

import pytest
from django.urls import reverse

from captioning.models import Gallery
from captioning.services.galleries import gallery_cover_set, gallery_create
from tests.api.conftest import ROLES, upload

pytestmark = pytest.mark.django_db

ANONYMOUS, STRANGER, VIEWER, OWNER, STAFF = ROLES


@pytest.fixture
def chosen_cover(people, private_gallery):
    upload(people["owner"], private_gallery, seed=41, name="first.jpg")
    chosen = upload(people["owner"], private_gallery, seed=42, name="chosen.jpg")
    gallery_cover_set(gallery=private_gallery, photo=chosen, acting_user=people["owner"])
    return chosen


def thumbnail_status(client, people, role: str, address: str) -> int:
    """The site's media answer the session, not the API's token: the thumbnail as the role's browser loads it."""
    if people[role] is not None:
        client.force_login(people[role])
    return client.get(address).status_code


def listed_covers(client) -> dict[str, dict | None]:
    return {
        gallery["public_id"]: gallery["cover"] for gallery in client.get(reverse("api-gallery-list")).json()["results"]
    }


@pytest.mark.parametrize("role", ROLES)
def test_the_chosen_cover_is_shown_to_whoever_may_see_the_gallery(
    role, people, private_gallery, chosen_cover, api_client_for, client
):
    api = api_client_for(people[role])
    detail = api.get(reverse("api-gallery-detail", args=[private_gallery.public_id]))
    covers = listed_covers(api)

    if role in (VIEWER, OWNER):
        expected = {"id": str(chosen_cover.uuid), "thumbnail": reverse("photo-thumbnail", args=[chosen_cover.uuid])}
        assert detail.json()["cover"] == expected
        assert covers[private_gallery.public_id] == expected
        assert thumbnail_status(client, people, role, expected["thumbnail"]) == 200  # theirs to load
    else:
        assert detail.status_code == 404
        assert private_gallery.public_id not in covers


@pytest.mark.parametrize("role", ROLES)
def test_an_unlisted_gallerys_cover_comes_with_its_link(role, people, api_client_for, client):
    unlisted = gallery_create(acting_user=people["owner"], title="Party", visibility=Gallery.Visibility.UNLISTED)
    first = upload(people["owner"], unlisted, seed=43)
    upload(people["owner"], unlisted, seed=44)
    api = api_client_for(people[role])

    cover = api.get(reverse("api-gallery-detail", args=[unlisted.public_id])).json()["cover"]

    assert cover == {"id": str(first.uuid), "thumbnail": reverse("photo-thumbnail", args=[first.uuid])}
    assert thumbnail_status(client, people, role, cover["thumbnail"]) == 200
    assert (unlisted.public_id in listed_covers(api)) == (role == OWNER)  # never listed to others


def test_an_empty_gallery_has_no_cover_and_a_new_one_says_so(people, api_client_for):
    client = api_client_for(people[OWNER])
    created = client.post(reverse("api-gallery-list"), {"title": "Empty"}, format="json").json()
    assert created["cover"] is None
    assert listed_covers(client)[created["public_id"]] is None


def test_a_cover_from_another_gallery_is_never_shown(people, private_gallery, api_client_for):
    """The service refuses it; a row written past the service (the admin, a script) must not leak the photo."""
    own = upload(people["owner"], private_gallery, seed=45)
    elsewhere = gallery_create(acting_user=people["stranger"], title="Mine", visibility=Gallery.Visibility.PRIVATE)
    secret = upload(people["stranger"], elsewhere, seed=46)
    Gallery.objects.filter(pk=private_gallery.pk).update(cover_photo=secret)
    client = api_client_for(people[VIEWER])

    assert client.get(reverse("api-gallery-detail", args=[private_gallery.public_id])).json()["cover"]["id"] == str(
        own.uuid
    )
    assert listed_covers(client)[private_gallery.public_id]["id"] == str(own.uuid)
