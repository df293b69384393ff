"""What a gallery's page and its grid's JSON show each visitor: the owner, an editor, a viewer, someone signed in
who only has the link, and an anonymous visitor; on private, unlisted and public galleries."""

import re
from datetime import UTC, datetime

import pytest
from django.urls import reverse

from captioning.models import Caption, Gallery, GalleryMembership, GalleryPhoto, ModelVersion, Photo, Translation

pytestmark = pytest.mark.django_db


def _photo(owner, name: str, status: str = Photo.Status.CAPTIONED, **fields) -> Photo:
    return Photo.objects.create(
        owner=owner,
        sha256=f"{abs(hash(name)):064x}"[:64],
        byte_size=1,
        width=1,
        height=1,
        format="JPEG",
        status=status,
        original_filename=name,
        **fields,
    )


@pytest.fixture
def shared_gallery(alice, bob, make_user):
    """alice's gallery: bob edits it, carol views it, dave views it and holds one of its photos in his own
    gallery; erin is nobody to it. Its photos, newest first: a failed one, bob's, a guess by an inactive model, a
    guess by the active one, a confident caption (translated into French) in dave's gallery too."""
    carol, dave, erin = make_user("carol"), make_user("dave"), make_user("erin")
    gallery = Gallery.objects.create(owner=alice, title="Trip <2024>", description="Day one\nday <two>")
    for member, role in ((bob, "editor"), (carol, "viewer"), (dave, "viewer")):
        GalleryMembership.objects.create(gallery=gallery, user=member, role=role)
    active = ModelVersion.objects.create(
        name="coco-m", checkpoint_path="a", config={"training": {"trained_on": "COCO 2014"}}, is_active=True
    )
    retired = ModelVersion.objects.create(name="old-m", checkpoint_path="b", config={})
    in_daves_too = _photo(alice, "dog.jpg")
    active_guess = _photo(alice, "boat.jpg", taken_at=datetime(2020, 5, 17, 12, 0, tzinfo=UTC))
    retired_guess = _photo(alice, "tree.jpg")
    bobs = _photo(bob, "bob.jpg", status=Photo.Status.PROCESSING)
    failed = _photo(alice, "bad.jpg", status=Photo.Status.FAILED, error_message="Not an <image>")
    photos = [failed, bobs, retired_guess, active_guess, in_daves_too]
    for photo in photos:
        GalleryPhoto.objects.create(gallery=gallery, photo=photo)
    GalleryPhoto.objects.create(gallery=Gallery.objects.create(owner=dave, title="Dave's"), photo=in_daves_too)
    confident = Caption.objects.create(photo=in_daves_too, text="a dog & a ball", model_version=active)
    Caption.objects.create(photo=in_daves_too, text="an older caption", is_current=False)
    Caption.objects.create(photo=active_guess, text="maybe a boat", confident=False, model_version=active)
    Caption.objects.create(photo=retired_guess, text="maybe a tree", confident=False, model_version=retired)
    Translation.objects.create(caption=confident, language="fr", text="un chien", status=Translation.Status.DONE)
    users = {"alice": alice, "bob": bob, "carol": carol, "dave": dave, "erin": erin, "anonymous": None}
    return gallery, {photo.original_filename: str(photo.uuid) for photo in photos}, users


def _page(client, user, path: str) -> tuple[int, str]:
    client.logout()
    if user is not None:
        client.force_login(user)
    response = client.get(path)
    return response.status_code, response.content.decode()


def _tiles(html: str, uuids: dict[str, str]) -> dict[str, str]:
    """file name -> its tile's HTML."""
    names = {uuid: name for name, uuid in uuids.items()}
    return {
        names[uuid]: tile
        for uuid, tile in re.findall(r'<li class="tile[^"]*" data-photo="([^"]+)"(.*?)</li>', html, re.S)
    }


# Who may open which gallery, and what they are to it.
ROLES = {"alice": "owner", "bob": "editor", "carol": "viewer", "dave": "viewer", "erin": None, "anonymous": None}
MANAGES = {  # the photos a visitor may caption again and delete: their own, and those of galleries they own
    "alice": {"dog.jpg", "boat.jpg", "tree.jpg", "bob.jpg", "bad.jpg"},
    "bob": {"bob.jpg"},
    "carol": set(),
    "dave": {"dog.jpg"},
    "erin": set(),
    "anonymous": set(),
}


@pytest.mark.parametrize("visitor", list(ROLES))
def test_each_visitor_sees_what_their_role_allows(client, shared_gallery, visitor):
    gallery, uuids, users = shared_gallery
    for visibility in ("private", "unlisted", "public"):
        Gallery.objects.filter(pk=gallery.pk).update(visibility=visibility)
        _check_page(client, gallery, uuids, users[visitor], visitor, visibility)


def _check_page(client, gallery: Gallery, uuids: dict[str, str], user, visitor: str, visibility: str) -> None:
    status, html = _page(client, user, gallery.get_absolute_url())
    polled = client.get(reverse("gallery-status", args=[gallery.public_id]))
    role = ROLES[visitor]
    if visibility == "private" and role is None:
        assert (status, polled.status_code) == (404, 404)
        return
    assert (status, polled.status_code) == (200, 200)
    assert "<h1>Trip &lt;2024&gt; " in html and f"badge--{visibility}" in html
    assert '<p class="lead">Day one<br>day &lt;two&gt;</p>' in html
    byline = "by alice" + (f" · you are {role}" if role in ("editor", "viewer") else "") + "</p>"
    assert byline in html
    uploads = role in ("owner", "editor")
    assert ("data-uploader" in html) == uploads
    assert ("Remove from this gallery</button></form>" in html) == uploads
    assert ("Edit gallery</a>" in html) == (role == "owner")
    assert ("Retry 1 failed" in html) == (visitor != "anonymous")

    tiles = _tiles(html, uuids)
    assert list(tiles) == ["bad.jpg", "bob.jpg", "tree.jpg", "boat.jpg", "dog.jpg"]
    assert {name for name, tile in tiles.items() if " data-manage>" in tile} == MANAGES[visitor]
    assert {photo["name"] for photo in polled.json()["photos"] if photo["can_manage"]} == MANAGES[visitor]
    assert 'alt="a dog &amp; a ball"' in tiles["dog.jpg"] and "data-unsure hidden>" in tiles["dog.jpg"]
    assert "Unsure: the active model (coco-m: COCO 2014) has not seen photos like this." in tiles["boat.jpg"]
    assert 'alt="boat.jpg, 17 May 2020"' in tiles["boat.jpg"]
    assert "Unsure: the model (old-m) has not seen photos like this." in tiles["tree.jpg"]
    assert "data-caption>Waiting for a caption…</p>" in tiles["bob.jpg"] and ">Captioning</span>" in tiles["bob.jpg"]
    assert "data-caption>Captioning failed</p>" in tiles["bad.jpg"]
    assert "data-error>Not an &lt;image&gt;</span>" in tiles["bad.jpg"]


def test_the_grid_shows_translations_and_offers_the_missing_ones(client, shared_gallery, settings):
    settings.CAPTION_LANGUAGES = ["fr"]
    settings.TRANSLATION_PROVIDER = "google"
    gallery, uuids, users = shared_gallery
    _status, html = _page(client, users["alice"], gallery.get_absolute_url() + "?lang=fr")
    tiles = _tiles(html, uuids)
    assert "data-caption>un chien</p>" in tiles["dog.jpg"]
    assert "data-caption>maybe a boat</p>" in tiles["boat.jpg"]  # not translated yet
    assert "data-translate-captions>" in html  # the button is shown: some captions have no translation
    polled = client.get(reverse("gallery-status", args=[gallery.public_id])).json()["photos"]
    assert {photo["name"]: photo["translation"] for photo in polled if photo["translation"]} == {"dog.jpg": "un chien"}


def test_a_role_changed_elsewhere_shows_on_the_next_page(client, shared_gallery):
    gallery, _uuids, users = shared_gallery
    _status, html = _page(client, users["carol"], gallery.get_absolute_url())
    assert "you are viewer" in html and "data-uploader" not in html
    GalleryMembership.objects.filter(gallery=gallery, user=users["carol"]).update(role="editor")
    html = client.get(gallery.get_absolute_url()).content.decode()
    assert "you are editor" in html and "data-uploader" in html
    GalleryMembership.objects.filter(gallery=gallery, user=users["carol"]).delete()
    assert client.get(gallery.get_absolute_url()).status_code == 404
