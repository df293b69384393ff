"""What the grids offer a selection: every grid has the "Select" tools, each tile says whether its visitor may
change it, and "Add to gallery" lists only the galleries they may upload to."""

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from captioning.models import Caption, GalleryMembership, Photo
from captioning.services.galleries import gallery_create, gallery_member_set
from captioning.services.photos import photo_upload
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def family(alice, bob, make_user):
    """alice's public gallery "Family": a photo of hers and one of bob's (an editor); carol views it; bob has a
    gallery of his own and views alice's "Work"."""
    carol = make_user("carol")
    family = gallery_create(acting_user=alice, title="Family", visibility="public")
    gallery_member_set(gallery=family, acting_user=alice, username="bob", role=GalleryMembership.Role.EDITOR)
    gallery_member_set(gallery=family, acting_user=alice, username="carol", role=GalleryMembership.Role.VIEWER)
    work = gallery_create(acting_user=alice, title="Work", visibility="private")
    gallery_member_set(gallery=work, acting_user=alice, username="bob", role=GalleryMembership.Role.VIEWER)
    gallery_create(acting_user=bob, title="Bobs own", visibility="private")
    photos = {}
    for owner, seed in ((alice, 1), (bob, 2)):
        upload = SimpleUploadedFile(f"zebra-{seed}.jpg", encode(picture(seed=seed)))
        photo = photo_upload(acting_user=owner, gallery=family, file=upload).photo
        Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.CAPTIONED)
        Caption.objects.create(photo=photo, text="a zebra on a beach", is_current=True)
        photos[owner.username] = photo
    return {"gallery": family, "photos": photos, "carol": carol}


def manageable(html: str) -> set[str]:
    return set(re.findall(r'data-photo="([0-9a-f-]+)"[^>]*data-manage', html))


def offered_galleries(html: str) -> list[str]:
    return re.findall(r'<input type="radio" name="gallery" value="[^"]+"[^>]*> ([^<]+)</label>', html)


def test_each_tile_says_whether_its_visitor_may_change_it(client, alice, bob, family):
    alices, bobs = str(family["photos"]["alice"].uuid), str(family["photos"]["bob"].uuid)
    url = family["gallery"].get_absolute_url()
    expected = {alice: {alices, bobs}, bob: {bobs}, family["carol"]: set(), None: set()}
    for user, tiles in expected.items():
        client.logout()
        if user is not None:
            client.force_login(user)
        html = client.get(url).content.decode()
        assert "data-selection " in html or "data-selection\n" in html
        assert manageable(html) == tiles, user


def test_add_to_gallery_lists_the_galleries_one_may_upload_to(client, alice, bob, family):
    client.force_login(bob)
    html = client.get(family["gallery"].get_absolute_url()).content.decode()
    assert offered_galleries(html) == ["Bobs own", "Family"]  # not "Work", which he only views
    client.force_login(family["carol"])
    html = client.get(family["gallery"].get_absolute_url()).content.decode()
    assert offered_galleries(html) == []
    assert "data-selection-add" not in html
    client.logout()
    html = client.get(family["gallery"].get_absolute_url()).content.decode()
    assert "data-selection-delete" not in html and "data-selection-download-button" in html


def test_the_timeline_and_search_results_are_grids_one_selects_in(client, alice, family):
    client.force_login(alice)
    for url in (reverse("timeline"), reverse("search") + "?q=zebra"):
        html = client.get(url).content.decode()
        assert "data-selection-toggle" in html, url
        assert len(manageable(html)) == 2, url
