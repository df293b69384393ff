"""The library around the galleries: the "All photos" timeline, gallery covers, and the pages' small print
(one heading per page, shortened file names, caption-again settings under "Advanced")."""

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from captioning.models import Gallery, GalleryMembership, Photo
from captioning.services.galleries import gallery_create
from captioning.services.photos import photo_upload
from captioning.templating import shorten_middle
from captioning.views import timeline
from tests.captioning.helpers import encode, jpeg_with_exif, picture

pytestmark = pytest.mark.django_db


def upload(user, gallery: Gallery, *, seed: int, taken: str | None = None, name: str = "") -> Photo:
    data = jpeg_with_exif(taken=taken, seed=seed) if taken else encode(picture(seed=seed))
    return photo_upload(acting_user=user, gallery=gallery, file=SimpleUploadedFile(name or f"p{seed}.jpg", data)).photo


def uploaded_at(photo: Photo, when: datetime) -> None:
    Photo.objects.filter(pk=photo.pk).update(created_at=when)


def timeline_ids(client, **params) -> list[str]:
    return [photo["id"] for photo in client.get(reverse("timeline-page"), params).json()["photos"]]


# Timeline ----------------------------------------------------------------------------------------------------


def test_the_timeline_orders_by_date_taken_else_upload_time_and_groups_by_month(client, alice, gallery):
    taken_2019 = upload(alice, gallery, seed=1, taken="2019:07:14 10:00:00")
    taken_2024 = upload(alice, gallery, seed=2, taken="2024:03:02 08:30:00")
    no_exif = upload(alice, gallery, seed=3)
    uploaded_at(no_exif, datetime(2021, 11, 5, 12, tzinfo=UTC))
    client.force_login(alice)

    page = client.get(reverse("timeline"))

    months = re.findall(r'<h2 class="timeline__title">([^<]+)</h2>(.*?)</section>', page.content.decode(), re.S)
    assert [(label, re.findall(r'data-photo="([^"]+)"', tiles)) for label, tiles in months] == [
        ("March 2024", [str(taken_2024.uuid)]),
        ("November 2021", [str(no_exif.uuid)]),
        ("July 2019", [str(taken_2019.uuid)]),
    ]


def test_the_timeline_shows_your_library_and_what_is_shared_with_you_on_request(client, alice, bob, gallery):
    mine = upload(alice, gallery, seed=1)
    bobs_shared = gallery_create(acting_user=bob, title="Bob's", visibility=Gallery.Visibility.PRIVATE)
    GalleryMembership.objects.create(gallery=bobs_shared, user=alice)
    shared = upload(bob, bobs_shared, seed=2)
    bobs_public = gallery_create(acting_user=bob, title="Public", visibility=Gallery.Visibility.PUBLIC)
    public = upload(bob, bobs_public, seed=3)
    bobs_private = gallery_create(acting_user=bob, title="Private", visibility=Gallery.Visibility.PRIVATE)
    private = upload(bob, bobs_private, seed=4)
    client.force_login(alice)

    assert timeline_ids(client) == [str(mine.uuid)]
    with_shared = timeline_ids(client, shared="1")
    assert set(with_shared) == {str(mine.uuid), str(shared.uuid)}
    assert str(public.uuid) not in with_shared and str(private.uuid) not in with_shared
    client.force_login(bob)
    assert str(mine.uuid) not in timeline_ids(client, shared="1")


def test_the_timeline_comes_a_page_at_a_time(client, alice, gallery, monkeypatch):
    monkeypatch.setattr(timeline, "TIMELINE_PAGE_SIZE", 2)
    photos = [upload(alice, gallery, seed=seed) for seed in range(4)]
    start = timezone.now()
    for age, photo in enumerate(photos):
        uploaded_at(photo, start - timedelta(days=age))
    client.force_login(alice)

    first = client.get(reverse("timeline-page")).json()
    last = client.get(reverse("timeline-page"), {"page": 2}).json()
    page = client.get(reverse("timeline")).content.decode()

    assert [p["id"] for p in first["photos"]] == [str(p.uuid) for p in photos[:2]] and first["next_page"] == 2
    assert [p["id"] for p in last["photos"]] == [str(p.uuid) for p in photos[2:]] and last["next_page"] is None
    assert first["photos"][0]["month"] == start.strftime("%Y-%m")
    assert 'data-more-timeline data-page="2"' in page  # the link that loads the next page (or opens it without JS)


def test_the_timeline_is_for_signed_in_people(client):
    assert client.get(reverse("timeline")).status_code == 302
    assert client.get(reverse("timeline-page")).status_code == 302


# Covers ------------------------------------------------------------------------------------------------------


def cover_thumbnail(html: str) -> str | None:
    found = re.search(r'<img src="/p/([0-9a-f-]+)/thumbnail.webp" alt="" loading="lazy" data-gallery-cover>', html)
    return found.group(1) if found else None


def test_a_gallery_card_shows_the_first_photo_until_its_owner_chooses_a_cover(client, alice, bob):
    public = gallery_create(acting_user=alice, title="Summer", visibility=Gallery.Visibility.PUBLIC)
    first = upload(alice, public, seed=1)
    second = upload(alice, public, seed=2)
    uploaded_at(first, timezone.now() - timedelta(hours=1))
    client.force_login(alice)

    assert cover_thumbnail(client.get(reverse("gallery-list")).content.decode()) == str(first.uuid)
    response = client.post(reverse("photo-make-cover", args=[second.uuid]), {"gallery": public.public_id}, follow=True)
    assert "The cover of this gallery" in response.content.decode()
    client.logout()
    assert cover_thumbnail(client.get(reverse("gallery-public-list")).content.decode()) == str(second.uuid)
    assert client.get(f"/p/{second.uuid}/thumbnail.webp").status_code == 200  # Explore's visitors may load it

    client.force_login(bob)
    assert client.post(reverse("photo-make-cover", args=[first.uuid]), {"gallery": public.public_id}).status_code == 403
    second.delete()
    client.logout()
    assert cover_thumbnail(client.get(reverse("gallery-public-list")).content.decode()) == str(first.uuid)


def test_an_empty_gallery_card_says_so(client, alice, gallery):
    client.force_login(alice)
    page = client.get(reverse("gallery-list")).content.decode()
    assert cover_thumbnail(page) is None and "No photos yet" in page


def test_a_cover_is_one_of_the_galleries_own_photos(alice, gallery):
    from django.core.exceptions import ValidationError

    from captioning.services.galleries import gallery_cover_set

    other = gallery_create(acting_user=alice, title="Other")
    elsewhere = upload(alice, other, seed=9)
    with pytest.raises(ValidationError):
        gallery_cover_set(gallery=gallery, photo=elsewhere, acting_user=alice)


# Small print -------------------------------------------------------------------------------------------------


def test_every_page_has_one_main_heading(client, alice, gallery):
    photo = upload(alice, gallery, seed=1)
    client.force_login(alice)
    pages = [
        reverse("gallery-list"),
        reverse("gallery-public-list"),
        reverse("timeline"),
        reverse("search") + "?q=dog",
        reverse("search"),
        gallery.get_absolute_url(),
        reverse("gallery-edit", args=[gallery.public_id]),
        reverse("gallery-new"),
        reverse("photo-detail", args=[photo.uuid]),
        reverse("translation-help"),
        "/no-such-page/",
    ]
    for url in pages:
        assert client.get(url).content.decode().count("<h1") == 1, url
    client.logout()
    for url in (reverse("home"), reverse("login"), reverse("signup")):
        assert client.get(url).content.decode().count("<h1") == 1, url


def test_long_file_names_are_shortened_in_the_middle(client, alice, gallery):
    name = "IMG_20240612_183455_holiday_at_the_beach_with_the_family_final_v2.jpg"
    photo = upload(alice, gallery, seed=1, name=name)
    client.force_login(alice)

    page = client.get(reverse("photo-detail", args=[photo.uuid])).content.decode()

    assert shorten_middle(name, 40) == "IMG_20240612_183455_…family_final_v2.jpg"
    assert len(shorten_middle(name, 40)) == 40 and shorten_middle("short.jpg", 40) == "short.jpg"
    assert f'title="{name}">IMG_20240612_183455_…family_final_v2.jpg</span>' in page


def test_caption_again_keeps_its_decoding_settings_under_advanced(client, alice, gallery):
    photo = upload(alice, gallery, seed=1)
    client.force_login(alice)
    page = client.get(reverse("photo-detail", args=[photo.uuid])).content.decode()
    advanced = page[page.index("<summary>Advanced</summary>") :]
    advanced = advanced[: advanced.index("</details>")]
    for field in ("beam_size", "temperature", "top_p"):
        assert f'name="{field}"' in advanced
    assert 'name="strategy"' not in advanced


# Albums on the pages -----------------------------------------------------------------------------------------


def test_the_photo_page_names_the_galleries_holding_it_and_offers_its_owner_the_others(client, alice, bob):
    from captioning.services.galleries import gallery_member_set

    holidays = gallery_create(acting_user=alice, title="Holidays")
    best = gallery_create(acting_user=alice, title="Best of", visibility=Gallery.Visibility.PUBLIC)
    bobs = gallery_create(acting_user=bob, title="Bob's album")
    gallery_member_set(gallery=bobs, acting_user=bob, username=alice.username, role="editor")
    gallery_create(acting_user=bob, title="Bob's secret")
    photo = upload(alice, holidays, seed=20)
    client.force_login(alice)

    page = client.get(reverse("photo-detail", args=[photo.uuid])).content.decode()
    choices = page.split('id="add-to-gallery"')[1].split("</select>")[0]
    offered = [
        (value, html.unescape(text)) for value, text in re.findall(r'<option value="([^"]+)">([^<]+)</option>', choices)
    ]
    assert 'data-holding-gallery="' + holidays.public_id + '"' in page
    assert offered == [(best.public_id, "Best of"), (bobs.public_id, "Bob's album")]  # not Bob's secret

    response = client.post(reverse("photo-gallery-add", args=[photo.uuid]), {"gallery": best.public_id}, follow=True)
    assert "Added to “Best of”." in response.content.decode()
    assert set(photo.galleries.all()) == {holidays, best}
    client.force_login(bob)  # he may see it through the public album, but it is not his to add anywhere
    page = client.get(reverse("photo-detail", args=[photo.uuid])).content.decode()
    assert "data-add-to-gallery" not in page and holidays.public_id not in page and "Holidays" not in page
    refused = client.post(reverse("photo-gallery-add", args=[photo.uuid]), {"gallery": bobs.public_id})
    assert refused.status_code == 404
    assert bobs not in photo.galleries.all()


def test_the_gallery_page_offers_remove_to_its_owner_and_editors_only(client, alice, bob, make_user):
    from captioning.services.galleries import gallery_member_set

    album = gallery_create(acting_user=alice, title="Album", visibility=Gallery.Visibility.PUBLIC)
    gallery_member_set(gallery=album, acting_user=alice, username=bob.username, role="editor")
    photo = upload(alice, album, seed=21)
    remove_url = reverse("gallery-photo-remove", args=[album.public_id])

    for user, offered in ((alice, True), (bob, True), (make_user("carol"), False), (None, False)):
        client.logout()
        if user is not None:
            client.force_login(user)
        page = client.get(album.get_absolute_url()).content.decode()
        assert ("Remove from this gallery" in page) is offered, user
    client.force_login(make_user("dave"))
    assert client.post(remove_url, {"photo": str(photo.uuid)}).status_code == 403
    client.force_login(bob)

    response = client.post(remove_url, {"photo": str(photo.uuid)}, follow=True)

    assert "Removed from “Album”" in response.content.decode()
    assert not album.photos.exists()
    client.force_login(alice)
    timeline_page = client.get(reverse("timeline")).content.decode()
    assert str(photo.uuid) in timeline_page  # still in her library
    assert "In no gallery" in client.get(reverse("photo-detail", args=[photo.uuid])).content.decode()
