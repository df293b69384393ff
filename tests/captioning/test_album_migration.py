"""Migration 0012 turns each photo's gallery into an album placement: every photo stays in its gallery, with
its captions, and two photos of one owner with the same bytes (in two galleries, as 0005 allowed) stay two
photos. Migrating back puts each photo in the first gallery that held it."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("captioning", "0011_request_budget")]
AFTER = [("captioning", "0012_gallery_photo_albums")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def at_0009(transactional_db):
    apps = migrate(BEFORE)
    yield apps
    migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())


def _photo(apps, owner, gallery, sha256: str):
    return apps.get_model("captioning", "Photo").objects.create(
        owner_id=owner.pk, gallery_id=gallery.pk, sha256=sha256, byte_size=1, width=1, height=1, format="JPEG"
    )


def test_every_photo_keeps_its_gallery_and_captions_and_same_bytes_stay_two_photos(at_0009):
    apps = at_0009
    User = apps.get_model("auth", "User")
    Gallery = apps.get_model("captioning", "Gallery")
    alice, bob = User.objects.create(username="alice"), User.objects.create(username="bob")
    holidays = Gallery.objects.create(owner=alice, title="Holidays", slug="holidays", public_id="h1")
    family = Gallery.objects.create(owner=alice, title="Family", slug="family", public_id="f1")
    bobs = Gallery.objects.create(owner=bob, title="Bob's", slug="bobs", public_id="b1")
    in_holidays = _photo(apps, alice, holidays, "a" * 64)
    same_bytes_in_family = _photo(apps, alice, family, "a" * 64)
    bobs_photo = _photo(apps, bob, bobs, "a" * 64)
    Caption = apps.get_model("captioning", "Caption")
    Caption.objects.create(photo=in_holidays, text="at the beach", is_current=True)
    Caption.objects.create(photo=same_bytes_in_family, text="grandma's birthday", is_current=True)

    apps = migrate(AFTER)

    GalleryPhoto = apps.get_model("captioning", "GalleryPhoto")
    Photo = apps.get_model("captioning", "Photo")
    placements = set(GalleryPhoto.objects.values_list("photo_id", "gallery_id", "added_by_id"))
    assert placements == {
        (in_holidays.pk, holidays.pk, alice.pk),
        (same_bytes_in_family.pk, family.pk, alice.pk),
        (bobs_photo.pk, bobs.pk, bob.pk),
    }
    assert Photo.objects.count() == 3
    captions = dict(apps.get_model("captioning", "Caption").objects.values_list("photo_id", "text"))
    assert captions == {in_holidays.pk: "at the beach", same_bytes_in_family.pk: "grandma's birthday"}
    added_at = GalleryPhoto.objects.get(photo_id=in_holidays.pk).added_at
    assert added_at == Photo.objects.get(pk=in_holidays.pk).created_at

    # A second album, then back: each photo returns to the first gallery that held it.
    GalleryPhoto.objects.create(photo_id=bobs_photo.pk, gallery_id=holidays.pk)
    apps = migrate(BEFORE)

    gallery_of = dict(apps.get_model("captioning", "Photo").objects.values_list("pk", "gallery_id"))
    assert gallery_of == {in_holidays.pk: holidays.pk, same_bytes_in_family.pk: family.pk, bobs_photo.pk: bobs.pk}


def test_migrating_back_refuses_while_a_photo_is_in_no_gallery(at_0009):
    apps = at_0009
    alice = apps.get_model("auth", "User").objects.create(username="alice")
    gallery = apps.get_model("captioning", "Gallery").objects.create(owner=alice, title="G", slug="g", public_id="g1")
    photo = _photo(apps, alice, gallery, "b" * 64)
    apps = migrate(AFTER)
    apps.get_model("captioning", "GalleryPhoto").objects.filter(photo_id=photo.pk).delete()

    with pytest.raises(RuntimeError, match="1 photos are in no gallery"):
        migrate(BEFORE)
