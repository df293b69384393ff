"""Galleries as albums through the API: POST /api/galleries/{public_id}/photos/ adds photos of your library to a
gallery, DELETE takes them out of it (only). A photo is seen through any gallery holding it; only its owner adds
it anywhere; an answer never tells someone else's photo from no photo at all."""

import uuid

import pytest
from django.urls import reverse

from captioning.models import Gallery, GalleryMembership, Photo
from captioning.services.galleries import gallery_create, gallery_member_set
from tests.api.conftest import caption, upload

pytestmark = pytest.mark.django_db


def photos_url(gallery: Gallery) -> str:
    return reverse("api-gallery-photos", args=[gallery.public_id])


@pytest.fixture
def public_album(people) -> Gallery:
    return gallery_create(acting_user=people["owner"], title="Best of", visibility=Gallery.Visibility.PUBLIC)


def test_the_owner_adds_photos_of_their_library_to_another_gallery(
    people, private_gallery, public_album, api_client_for
):
    first, second = upload(people["owner"], private_gallery, seed=1), upload(people["owner"], private_gallery, seed=2)
    client = api_client_for(people["owner"])

    response = client.post(
        photos_url(public_album), {"photos": [str(first.uuid), str(second.uuid), str(first.uuid)]}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["results"] == [
        {"photo": str(first.uuid), "outcome": "added"},
        {"photo": str(second.uuid), "outcome": "added"},
    ]
    assert set(first.galleries.all()) == {private_gallery, public_album}
    again = client.post(photos_url(public_album), {"photos": [str(first.uuid)]}, format="json")
    assert again.json()["results"] == [{"photo": str(first.uuid), "outcome": "already_in_gallery"}]
    assert Photo.objects.count() == 2  # an album references photos: nothing is copied
    listed = client.get(reverse("api-photo-list"), {"gallery": public_album.public_id}).json()["results"]
    assert {item["id"] for item in listed} == {str(first.uuid), str(second.uuid)}
    assert sorted(listed[0]["galleries"]) == sorted([private_gallery.public_id, public_album.public_id])


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"photos": []},
        {"photos": "not a list"},
        {"photos": ["not-a-uuid"]},
        {"photos": [42]},
        {"photos": [str(uuid.uuid4())] * 501},
    ],
)
def test_a_malformed_list_of_ids_is_a_400_that_says_which(people, private_gallery, api_client_for, body):
    response = api_client_for(people["owner"]).post(photos_url(private_gallery), body, format="json")
    assert response.status_code == 400
    assert "photos" in response.json()["error"]["fields"]


def test_someone_elses_photo_is_not_found_exactly_like_no_photo(people, private_gallery, api_client_for):
    """Even a public photo of another user: adding it to your public gallery would publish it under your name,
    and adding it to a private one would give its owner's photo to your members."""
    stranger = people["stranger"]
    theirs = upload(
        stranger, gallery_create(acting_user=stranger, title="Open", visibility=Gallery.Visibility.PUBLIC), seed=3
    )
    mine = upload(people["owner"], gallery_create(acting_user=people["owner"], title="Other"), seed=4)
    client = api_client_for(people["owner"])
    missing = str(uuid.uuid4())

    only_theirs = client.post(photos_url(private_gallery), {"photos": [str(theirs.uuid)]}, format="json")
    only_missing = client.post(photos_url(private_gallery), {"photos": [missing]}, format="json")
    mixed = client.post(photos_url(private_gallery), {"photos": [str(theirs.uuid), str(mine.uuid)]}, format="json")

    assert only_theirs.status_code == only_missing.status_code == 404
    assert only_theirs.json()["error"]["message"] == only_missing.json()["error"]["message"]
    assert mixed.status_code == 200
    assert mixed.json()["results"] == [
        {"photo": str(theirs.uuid), "outcome": "not_found"},
        {"photo": str(mine.uuid), "outcome": "added"},
    ]
    assert list(theirs.galleries.all()) != [] and private_gallery not in theirs.galleries.all()


def test_an_editor_adds_their_own_photos_and_removes_any_a_viewer_neither(people, private_gallery, api_client_for):
    owner, viewer, stranger = people["owner"], people["viewer"], people["stranger"]
    gallery_member_set(gallery=private_gallery, acting_user=owner, username=stranger.username, role="editor")
    stranger_photo = upload(stranger, gallery_create(acting_user=stranger, title="Mine"), seed=5)
    owner_photo = upload(owner, private_gallery, seed=6)
    viewer_photo = upload(viewer, gallery_create(acting_user=viewer, title="Viewer's"), seed=7)
    editor, member = api_client_for(stranger), api_client_for(viewer)

    assert (
        member.post(photos_url(private_gallery), {"photos": [str(viewer_photo.uuid)]}, format="json").status_code == 403
    )
    assert (
        member.delete(photos_url(private_gallery), {"photos": [str(owner_photo.uuid)]}, format="json").status_code
        == 403
    )
    added = editor.post(photos_url(private_gallery), {"photos": [str(stranger_photo.uuid)]}, format="json")
    removed = editor.delete(photos_url(private_gallery), {"photos": [str(owner_photo.uuid)]}, format="json")

    assert added.json()["results"] == [{"photo": str(stranger_photo.uuid), "outcome": "added"}]
    assert removed.json()["results"] == [{"photo": str(owner_photo.uuid), "outcome": "removed"}]
    assert private_gallery not in owner_photo.galleries.all()
    assert Photo.objects.filter(pk=owner_photo.pk).exists()  # out of the album, still in its owner's library


def test_a_private_photo_added_to_a_public_gallery_is_public_until_it_is_removed(
    people, private_gallery, public_album, api_client_for
):
    photo = upload(people["owner"], private_gallery, seed=8)
    caption(photo, "a zebra on the beach")
    anonymous, owner = api_client_for(None), api_client_for(people["owner"])
    detail = reverse("api-photo-detail", args=[photo.uuid])
    assert anonymous.get(detail).status_code == 404

    owner.post(photos_url(public_album), {"photos": [str(photo.uuid)]}, format="json")
    seen = anonymous.get(detail)
    found = anonymous.get(reverse("api-search"), {"q": "zebra"}).json()["results"]

    assert seen.status_code == 200
    assert seen.json()["galleries"] == [public_album.public_id]  # never the private gallery
    assert [item["id"] for item in found] == [str(photo.uuid)]

    removed = owner.delete(photos_url(public_album), {"photos": [str(photo.uuid)]}, format="json")
    assert removed.json()["results"] == [{"photo": str(photo.uuid), "outcome": "removed"}]
    assert anonymous.get(detail).status_code == 404
    assert anonymous.get(reverse("api-search"), {"q": "zebra"}).json()["results"] == []
    assert owner.get(detail).status_code == 200


def test_a_photo_removed_from_every_gallery_stays_its_owners_alone(people, private_gallery, api_client_for, client):
    photo = upload(people["owner"], private_gallery, seed=9)
    owner = api_client_for(people["owner"])

    owner.delete(photos_url(private_gallery), {"photos": [str(photo.uuid)]}, format="json")

    assert owner.get(reverse("api-photo-detail", args=[photo.uuid])).json()["galleries"] == []
    assert api_client_for(people["viewer"]).get(reverse("api-photo-detail", args=[photo.uuid])).status_code == 404
    client.force_login(people["owner"])
    assert str(photo.uuid) in client.get(reverse("timeline")).content.decode()
    again = owner.delete(photos_url(private_gallery), {"photos": [str(photo.uuid)]}, format="json")
    assert again.json()["results"] == [{"photo": str(photo.uuid), "outcome": "not_in_gallery"}]


def test_deleting_a_photo_removes_it_from_every_gallery_and_its_files(
    people, private_gallery, public_album, api_client_for, media_files, django_capture_on_commit_callbacks
):
    photo = upload(people["owner"], private_gallery, seed=10)
    owner = api_client_for(people["owner"])
    owner.post(photos_url(public_album), {"photos": [str(photo.uuid)]}, format="json")
    public_album.cover_photo = photo
    public_album.save()

    with django_capture_on_commit_callbacks(execute=True):  # the files go once the deletion is committed
        assert owner.delete(reverse("api-photo-detail", args=[photo.uuid])).status_code == 204

    assert not Photo.objects.exists()
    assert private_gallery.photos.count() == public_album.photos.count() == 0
    public_album.refresh_from_db()
    assert public_album.cover_photo is None
    assert media_files() == []


def test_deleting_a_gallery_keeps_the_photos_another_gallery_holds(people, private_gallery, public_album):
    from captioning.services.galleries import gallery_delete
    from captioning.services.photos import photo_gallery_add

    kept = upload(people["owner"], private_gallery, seed=11)
    gone = upload(people["owner"], private_gallery, seed=12)
    photo_gallery_add(gallery=public_album, photo_uuids=[kept.uuid], acting_user=people["owner"])

    gallery_delete(gallery=private_gallery, acting_user=people["owner"])

    assert list(Photo.objects.all()) == [kept]
    assert list(kept.galleries.all()) == [public_album]
    assert not Photo.objects.filter(pk=gone.pk).exists()


def test_removing_the_cover_from_its_gallery_unsets_it(people, private_gallery, api_client_for):
    from captioning.services.galleries import gallery_cover_set

    photo = upload(people["owner"], private_gallery, seed=13)
    gallery_cover_set(gallery=private_gallery, photo=photo, acting_user=people["owner"])

    api_client_for(people["owner"]).delete(photos_url(private_gallery), {"photos": [str(photo.uuid)]}, format="json")

    private_gallery.refresh_from_db()
    assert private_gallery.cover_photo is None


def test_known_bytes_into_another_gallery_add_the_photo_and_into_the_same_are_a_duplicate(
    people, private_gallery, public_album, api_client_for
):
    from tests.captioning.helpers import encode, picture

    def send(gallery):
        from django.core.files.uploadedfile import SimpleUploadedFile

        files = [SimpleUploadedFile("same.jpg", encode(picture(seed=14), "JPEG"))]
        return client.post(
            reverse("api-photo-list"), {"gallery": gallery.public_id, "files": files}, format="multipart"
        )

    client = api_client_for(people["owner"])
    first = send(private_gallery)
    added = send(public_album)
    duplicate = send(public_album)

    assert (first.status_code, added.status_code, duplicate.status_code) == (201, 201, 200)
    outcomes = [answer.json()["results"][0] for answer in (first, added, duplicate)]
    assert [result["outcome"] for result in outcomes] == ["uploaded", "added", "duplicate"]
    assert len({result["photo"]["id"] for result in outcomes}) == 1
    assert Photo.objects.count() == 1


def test_an_editor_removed_from_a_gallery_cannot_add_the_photo_they_left_there(people, private_gallery, api_client_for):
    """Issue 10: nothing may reach a photo its uploader can no longer see (the gallery's owner may have rewritten
    its caption since)."""
    from captioning.services.galleries import gallery_member_remove

    stranger = people["stranger"]
    gallery_member_set(gallery=private_gallery, acting_user=people["owner"], username=stranger.username, role="editor")
    left_behind = upload(stranger, private_gallery, seed=15)
    gallery_member_remove(gallery=private_gallery, acting_user=people["owner"], user_id=stranger.pk)
    own = gallery_create(acting_user=stranger, title="Mine")

    response = api_client_for(stranger).post(photos_url(own), {"photos": [str(left_behind.uuid)]}, format="json")

    assert response.status_code == 404
    assert not GalleryMembership.objects.filter(user=stranger).exists()
    assert list(left_behind.galleries.all()) == [private_gallery]


def test_a_gallery_owner_takes_an_editors_photo_out_of_the_gallery_but_cannot_delete_it(
    people, private_gallery, api_client_for
):
    """Deleting removes a photo from every gallery, its owner's own albums too: only its owner may. The owner of a
    gallery holding it takes it out of that gallery."""
    editor = people["stranger"]
    gallery_member_set(
        gallery=private_gallery,
        acting_user=people["owner"],
        username=editor.username,
        role=GalleryMembership.Role.EDITOR,
    )
    own_album = gallery_create(acting_user=editor, title="Mine")
    photo = upload(editor, private_gallery, seed=7)
    api_client_for(editor).post(photos_url(own_album), {"photos": [str(photo.uuid)]}, format="json")
    gallery_owner = api_client_for(people["owner"])

    refused = gallery_owner.delete(reverse("api-photo-detail", args=[photo.uuid]))

    assert refused.status_code == 403
    assert "remove it from your gallery" in refused.json()["error"]["message"]
    assert Photo.objects.filter(pk=photo.pk).exists()
    removed = gallery_owner.delete(photos_url(private_gallery), {"photos": [str(photo.uuid)]}, format="json")
    assert removed.json()["results"] == [{"photo": str(photo.uuid), "outcome": "removed"}]
    assert list(photo.galleries.all()) == [own_album]
    assert api_client_for(editor).delete(reverse("api-photo-detail", args=[photo.uuid])).status_code == 204
