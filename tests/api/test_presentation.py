"""The API's lists present rows by hand (captioning/api/serializers.py) for speed: what they write must be what
DRF's generic serializer code writes from the same declared fields, for every kind of row."""

import datetime

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from captioning import selectors
from captioning.api.serializers import (
    CaptionSerializer,
    GallerySerializer,
    PhotoSerializer,
    SearchHitSerializer,
    caption_representation,
    gallery_rows_representation,
    photo_rows_representation,
    search_hit_rows_representation,
)
from captioning.models import Caption, Gallery, GalleryPhoto, ModelVersion, Photo
from captioning.search import SearchHit, SearchResults
from captioning.services.galleries import gallery_create
from tests.api.conftest import caption, upload


def _varied_photos(people, private_gallery) -> list[Photo]:
    owner, staff = people["owner"], people["staff"]
    model = ModelVersion.objects.create(name="coco", checkpoint_path="/nowhere")
    by_model = upload(owner, private_gallery, seed=1, name="a.jpg")
    caption(by_model, "a dog", model_version=model, score=-1.25, clip_score=0.5, decoding={"strategy": "beam"})
    guessed = upload(owner, private_gallery, seed=4, name="d.jpg")
    caption(guessed, "a yellow star", model_version=model, score=-0.5, familiarity=0.3125, confident=False)
    edited = upload(owner, private_gallery, seed=2, name="b.jpg")
    caption(
        edited,
        "my own words",
        source=Caption.Source.EDITED,
        created_by=owner,
        review_state=Caption.ReviewState.APPROVED,
        reviewed_by=staff,
        reviewed_at=timezone.now(),
    )
    failed = upload(owner, private_gallery, seed=3, name="c.jpg")
    Photo.objects.filter(pk=failed.pk).update(
        status=Photo.Status.FAILED,
        error_message="no model",
        attempts=3,
        taken_at=datetime.datetime(2024, 6, 1, 12, 30, tzinfo=datetime.UTC),
    )
    return list(selectors.photo_list_visible_to(owner).order_by("pk").select_related("owner"))


def test_photos_are_presented_as_drfs_generic_serializer_presents_them(people, private_gallery):
    photos = _varied_photos(people, private_gallery)
    request = APIRequestFactory().get("/api/photos/")
    for user in (people["owner"], people["viewer"]):
        request.user = user
        presenter = PhotoSerializer(context={"request": request})
        for photo in photos:
            generic = serializers.ModelSerializer.to_representation(presenter, photo)
            assert presenter.to_representation(photo) == dict(generic)
    assert {photo.status for photo in photos} == {Photo.Status.CAPTIONED, Photo.Status.FAILED}


def _photos_in_every_kind_of_gallery(people, private_gallery) -> None:
    """Held by two galleries, one of them someone else's; held by an unlisted one; held by none (its owner's
    alone)."""
    owner, viewer = people["owner"], people["viewer"]
    photos = _varied_photos(people, private_gallery)
    public = gallery_create(acting_user=viewer, title="Also here", visibility=Gallery.Visibility.PUBLIC)
    GalleryPhoto.objects.create(gallery=public, photo=photos[0], added_by=owner)
    unlisted = gallery_create(acting_user=owner, title="By link", visibility=Gallery.Visibility.UNLISTED)
    GalleryPhoto.objects.create(gallery=unlisted, photo=photos[1], added_by=owner)
    GalleryPhoto.objects.filter(photo=photos[3]).delete()


@pytest.mark.parametrize("zone", ["UTC", "Europe/Zurich"])
def test_the_photo_list_presents_its_rows_as_drfs_generic_serializer_presents_each_photo(people, private_gallery, zone):
    _photos_in_every_kind_of_gallery(people, private_gallery)
    request = APIRequestFactory().get("/api/photos/")
    presented = []
    for user in (people["owner"], people["viewer"], people["stranger"], AnonymousUser()):
        request.user = user
        presenter = PhotoSerializer(context={"request": request})
        visible = selectors.photo_list_visible_to(user).order_by("pk")
        rows = selectors.photo_rows_with_details(selectors.photo_rows(visible), acting_user=user)
        with timezone.override(zone):
            expected = [dict(serializers.ModelSerializer.to_representation(presenter, photo)) for photo in visible]
            assert photo_rows_representation(rows) == expected
        presented += expected
    assert {len(photo["galleries"]) for photo in presented} == {0, 1, 2}
    assert {photo["can_manage"] for photo in presented} == {True, False}
    assert None in {photo["caption"] and photo["caption"]["created_by"] for photo in presented}


def test_the_photo_list_read_through_statements_compiled_once_is_what_its_querysets_read(people, private_gallery):
    """captioning.statements compiles the list's SQL once, for a stand-in user: each user still gets their own
    rows and count."""
    _photos_in_every_kind_of_gallery(people, private_gallery)
    counts = []
    for user in (people["owner"], people["viewer"], people["stranger"], AnonymousUser()):
        newest_first = selectors.photo_list_for_viewer(acting_user=user).order_by(*selectors.PHOTO_LIST_ORDER)
        expected = list(selectors.photo_rows(newest_first))
        assert selectors.photo_rows_for_viewer(acting_user=user, offset=0, limit=50) == expected
        assert selectors.photo_rows_for_viewer(acting_user=user, offset=1, limit=2) == expected[1:3]
        assert selectors.photo_count_for_viewer(acting_user=user) == newest_first.count() == len(expected)
        counts.append(len(expected))
    assert counts == [4, 3, 1, 1]


def test_someone_who_may_open_no_gallery_still_lists_their_library(people, api_client_for):
    """The photo list skips looking photos up in galleries when the user may open none: not their own photos."""
    stranger = people["stranger"]
    album = gallery_create(acting_user=stranger, title="Soon gone")
    kept = upload(stranger, album, seed=3, name="kept.jpg")
    GalleryPhoto.objects.filter(photo=kept).delete()
    Gallery.objects.filter(pk=album.pk).delete()
    assert not selectors.gallery_list_visible_to(stranger).exists()
    listed = api_client_for(stranger).get("/api/photos/?page_size=2").json()
    assert (listed["count"], [photo["id"] for photo in listed["results"]]) == (1, [str(kept.uuid)])
    assert api_client_for(people["viewer"]).get("/api/photos/").json()["count"] == 0


def test_search_hits_and_captions_are_presented_as_drf_presents_them(people, private_gallery):
    _photos_in_every_kind_of_gallery(people, private_gallery)
    photos = list(Photo.objects.order_by("-pk"))
    hits = [
        SearchHit(photo.pk, 0.03 / (number + 1), 0.25 if number % 2 else None, 1.5 if number else None)
        for number, photo in enumerate(photos)
    ]
    request = APIRequestFactory().get("/api/search/")
    presented = []
    for user in (people["owner"], people["viewer"], people["stranger"], AnonymousUser()):
        request.user = user
        page = SearchResults(user, "anything", hits, image_search=True, image_cutoffs={})[: len(hits)]
        presenter = SearchHitSerializer(context={"request": request})
        expected = []
        for hit, photo in zip(hits, photos, strict=True):
            if selectors.photo_list_visible_to(user).filter(pk=photo.pk).exists():
                photo.search_hit = hit
                expected.append(dict(serializers.ModelSerializer.to_representation(presenter, photo)))
        assert search_hit_rows_representation(page) == expected
        presented += expected
    assert {len(photo["galleries"]) for photo in presented} == {0, 1, 2}
    assert {photo["image_similarity"] is None for photo in presented} == {True, False}
    for current in Caption.objects.all():
        assert caption_representation(current) == dict(CaptionSerializer(current).data)


def test_galleries_are_presented_as_drfs_generic_serializer_presents_them(people, private_gallery):
    owner, viewer = people["owner"], people["viewer"]
    gallery_create(acting_user=viewer, title="Été à Zürich", description="Lakes\nand hills", visibility="public")
    gallery_create(acting_user=owner, title="???", visibility=Gallery.Visibility.UNLISTED)
    galleries = list(Gallery.objects.select_related("owner").order_by("pk"))
    request = APIRequestFactory().get("/api/galleries/")
    for user in (owner, viewer, people["stranger"]):
        request.user = user
        for context in ({"request": request}, {"request": request, "roles": selectors.gallery_roles(user, galleries)}):
            presenter = GallerySerializer(context=context)
            for gallery in galleries:
                generic = serializers.ModelSerializer.to_representation(presenter, gallery)
                assert presenter.to_representation(gallery) == dict(generic)
    assert {gallery.visibility for gallery in galleries} == set(Gallery.Visibility.values)
    assert "été-à-zürich" in {gallery.slug for gallery in galleries}


def test_the_gallery_list_presents_its_rows_as_the_serializer_presents_each_gallery(people, private_gallery):
    owner, viewer = people["owner"], people["viewer"]
    upload(owner, private_gallery, seed=1, name="cover.jpg")
    gallery_create(acting_user=viewer, title="Été à Zürich", description="Lakes\nand hills", visibility="public")
    gallery_create(acting_user=owner, title="By link", visibility=Gallery.Visibility.UNLISTED)
    request = APIRequestFactory().get("/api/galleries/")
    presented = []
    for user in (owner, viewer, people["stranger"], AnonymousUser()):
        request.user = user
        rows = selectors.gallery_rows_for_viewer(acting_user=user, offset=0, limit=50)
        roles = selectors.gallery_roles_by_id(user, {row["id"]: row["owner_id"] for row in rows})
        visible = selectors.gallery_list_visible_to(user).order_by(*selectors.GALLERY_LIST_ORDER)
        galleries = selectors.gallery_list_with_covers(visible)
        expected = [dict(GallerySerializer(gallery, context={"request": request}).data) for gallery in galleries]
        assert gallery_rows_representation(rows, roles) == expected
        assert selectors.gallery_rows_for_viewer(acting_user=user, offset=1, limit=1) == rows[1:2]
        presented += expected
    assert {gallery["role"] for gallery in presented} == {"owner", "viewer", None}
    assert {gallery["cover"] is None for gallery in presented} == {True, False}
    assert len(presented) == 3 + 2 + 1 + 1
