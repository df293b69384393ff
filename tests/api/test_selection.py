"""Many photos at once, as a grid's selection sends them: caption again, delete and download as a zip, for each
kind of visitor of a private gallery (its owner, an editor, a viewer, a stranger, anonymous). Photos one may not
see are only counted (`not_found`), never named."""

import io
import uuid
import zipfile
from urllib.parse import urlencode

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import StreamingHttpResponse
from django.urls import reverse
from PIL import Image
from rest_framework.authtoken.models import Token

from captioning.models import GalleryMembership, Photo
from captioning.services.galleries import gallery_create, gallery_member_set
from captioning.services.photos import photo_upload
from tests.api.conftest import caption, upload
from tests.captioning.helpers import jpeg_with_exif

RECAPTION = reverse("api-photo-selection-recaption")
DELETE = reverse("api-photo-selection-delete")
DOWNLOAD = reverse("api-photo-selection-download")
UNKNOWN = str(uuid.uuid4())
ROLES = ["anonymous", "stranger", "viewer", "editor", "owner"]


@pytest.fixture
def selection(people, private_gallery, isolated_files) -> dict:
    """The private gallery with one photo of its owner's (with GPS in its EXIF) and one of an editor's, both
    captioned; `people` gains the editor."""
    editor = get_user_model().objects.create_user("editor", password="a-Long-passw0rd")
    gallery_member_set(
        gallery=private_gallery, acting_user=people["owner"], username="editor", role=GalleryMembership.Role.EDITOR
    )
    owners_file = jpeg_with_exif(gps=True, seed=1)
    owners = photo_upload(
        acting_user=people["owner"], gallery=private_gallery, file=SimpleUploadedFile("beach.jpg", owners_file)
    ).photo
    editors = upload(editor, private_gallery, seed=2, name="beach.jpg")
    for photo in (owners, editors):
        caption(photo, "a zebra on a beach")
    return {
        "people": {**people, "editor": editor},
        "owners": owners,
        "editors": editors,
        "owners_file": owners_file,
        "ids": [str(owners.uuid), str(editors.uuid), UNKNOWN],
    }


def outcomes(response) -> dict[str, str]:
    return {result["id"]: result["outcome"] for result in response.json()["results"]}


# What each role may do to (the owner's photo, the editor's photo): the gallery's owner changes both, an editor
# their own, a viewer sees both but changes neither, a stranger sees neither.
MAY_CHANGE = {"owner": (True, True), "editor": (False, True), "viewer": (False, False)}
# Deleting takes a photo out of its owner's every album: the photo's owner's alone, not the gallery owner's.
MAY_DELETE = {"owner": (True, False), "editor": (False, True), "viewer": (False, False)}


@pytest.mark.parametrize("role", ROLES)
def test_caption_again_queues_what_each_role_may_change_and_refuses_the_rest(role, selection, api_client_for):
    owners, editors = selection["owners"], selection["editors"]
    response = api_client_for(selection["people"][role]).post(
        RECAPTION, {"photos": selection["ids"], "decoding": {"strategy": "greedy"}}, format="json"
    )

    if role == "anonymous":
        assert response.status_code == 401
        assert response.json()["error"]["status"] == 401
        return
    assert response.status_code == 200, response.content
    body = response.json()
    if role == "stranger":
        assert body == {"results": [], "not_found": 3}
        assert set(Photo.objects.values_list("status", flat=True)) == {"captioned"}
        return
    assert body["not_found"] == 1
    expected = ["queued" if allowed else "forbidden" for allowed in MAY_CHANGE[role]]
    assert outcomes(response) == {str(owners.uuid): expected[0], str(editors.uuid): expected[1]}
    for photo, allowed in zip((owners, editors), MAY_CHANGE[role], strict=True):
        photo.refresh_from_db()
        assert photo.status == ("queued" if allowed else "captioned"), (role, photo.original_filename)
        assert photo.requested_decoding == ({"strategy": "greedy"} if allowed else {})
    refused = [result for result in body["results"] if result["outcome"] == "forbidden"]
    assert all(result["message"] for result in refused)


@pytest.mark.parametrize("role", ROLES)
def test_delete_removes_what_each_role_may_delete_and_refuses_the_rest(
    role, selection, api_client_for, media_files, django_capture_on_commit_callbacks
):
    owners, editors = selection["owners"], selection["editors"]
    files_before = len(media_files())
    with django_capture_on_commit_callbacks(execute=True):
        response = api_client_for(selection["people"][role]).post(DELETE, {"photos": selection["ids"]}, format="json")

    if role == "anonymous":
        assert response.status_code == 401
        assert Photo.objects.count() == 2
        return
    assert response.status_code == 200, response.content
    if role == "stranger":
        assert response.json() == {"results": [], "not_found": 3}
        assert Photo.objects.count() == 2
        return
    expected = ["deleted" if allowed else "forbidden" for allowed in MAY_DELETE[role]]
    assert outcomes(response) == {str(owners.uuid): expected[0], str(editors.uuid): expected[1]}
    assert response.json()["not_found"] == 1
    remaining = set(Photo.objects.values_list("uuid", flat=True))
    for photo, allowed in zip((owners, editors), MAY_DELETE[role], strict=True):
        assert (photo.uuid in remaining) is not allowed, (role, photo.original_filename)
    deleted = sum(MAY_DELETE[role])
    assert len(media_files()) == files_before - 3 * deleted  # original, display image, thumbnail


def post_form(client, url: str, photo_ids: list[str]):
    return client.post(url, urlencode({"photos": photo_ids}, doseq=True), "application/x-www-form-urlencoded")


def read_zip(response) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    return {name: archive.read(name) for name in archive.namelist()}


def has_metadata(content: bytes) -> bool:
    image = Image.open(io.BytesIO(content))
    return bool(image.getexif()) or "exif" in image.info or "xmp" in image.info


@pytest.mark.parametrize("role", ROLES)
def test_the_zip_holds_originals_of_ones_own_photos_and_clean_copies_of_the_others(role, selection, client):
    user = selection["people"][role]
    if user is not None:
        client.force_login(user)
    # As the grid's form sends it: form-encoded, signed in by the session.
    response = post_form(client, DOWNLOAD, selection["ids"])

    if role in ("anonymous", "stranger"):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        return
    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="clip-pro-photos-')
    files = read_zip(response)
    owners, editors = selection["owners"], selection["editors"]
    sees_original = {"owner": (True, False), "editor": (False, True), "viewer": (False, False)}[role]
    # Both were uploaded as beach.jpg: the second name is made unique.
    names = ["beach.jpg" if sees_original[0] else "beach.webp"]
    second = "jpg" if sees_original[1] else "webp"
    names.append(f"beach (2).{second}" if names[0].endswith(second) else f"beach.{second}")
    assert list(files) == names
    for name, photo, original in zip(names, (owners, editors), sees_original, strict=True):
        if original:
            with photo.original.open("rb") as stored:
                assert files[name] == stored.read()
        else:
            assert Image.open(io.BytesIO(files[name])).format == "WEBP"
            assert not has_metadata(files[name]), (role, name)
    if sees_original[0]:
        assert files[names[0]] == selection["owners_file"]
        assert has_metadata(files[names[0]])  # the owner's original keeps its GPS


def test_anyone_downloads_a_public_gallerys_photos_as_clean_copies(people, client):
    gallery = gallery_create(acting_user=people["owner"], title="Open", visibility="public")
    photos = [upload(people["owner"], gallery, seed=seed, name=f"p{seed}.png") for seed in (5, 6)]
    response = post_form(client, DOWNLOAD, [str(photo.uuid) for photo in photos])
    assert response.status_code == 200
    assert list(read_zip(response)) == ["p5.webp", "p6.webp"]


def test_a_zip_of_more_photos_than_the_limit_is_refused_with_the_reason(selection, api_client_for, settings):
    settings.ZIP_MAX_PHOTOS = 1
    response = api_client_for(selection["people"]["owner"]).post(
        DOWNLOAD, {"photos": selection["ids"][:2]}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "2 photos were selected; at most 1 go into one zip."


def test_too_large_a_selection_is_refused_and_nothing_changes(selection, api_client_for, settings):
    settings.SELECTION_MAX_PHOTOS = 1
    response = api_client_for(selection["people"]["owner"]).post(
        DELETE, {"photos": selection["ids"][:2]}, format="json"
    )
    assert response.status_code == 400
    assert "at most 1" in response.json()["error"]["message"]
    assert Photo.objects.count() == 2


def test_a_repeated_id_counts_once_and_a_malformed_one_is_refused(selection, api_client_for):
    client = api_client_for(selection["people"]["owner"])
    owners = str(selection["owners"].uuid)
    response = client.post(RECAPTION, {"photos": [owners, owners]}, format="json")
    assert response.json() == {"results": [{"id": owners, "outcome": "queued", "message": ""}], "not_found": 0}
    response = client.post(RECAPTION, {"photos": ["not-a-photo"]}, format="json")
    assert response.status_code == 400
    assert "photos" in response.json()["error"]["fields"]
    assert client.post(DELETE, {"photos": []}, format="json").status_code == 400


def test_invalid_decoding_settings_queue_nothing(selection, api_client_for):
    response = api_client_for(selection["people"]["owner"]).post(
        RECAPTION, {"photos": selection["ids"], "decoding": {"strategy": "beam", "beam_size": 0}}, format="json"
    )
    assert response.status_code == 400
    assert set(Photo.objects.values_list("status", flat=True)) == {"captioned"}


def test_through_gunicorn_the_zip_arrives_in_chunks_as_it_is_written(start_web_server, people, private_gallery):
    owner = people["owner"]
    photos = [upload(owner, private_gallery, seed=seed, name=f"photo-{seed}.jpg") for seed in range(3)]
    token = Token.objects.create(user=owner).key
    server = start_web_server()

    response = requests.post(
        server.base_url + DOWNLOAD,
        json={"photos": [str(photo.uuid) for photo in photos]},
        headers={"Authorization": f"Token {token}"},
        stream=True,
        timeout=60,
    )
    assert response.status_code == 200
    # No length announced: the zip is sent while it is being written, not built first.
    assert "Content-Length" not in response.headers
    assert response.headers["Transfer-Encoding"] == "chunked"
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == ["photo-0.jpg", "photo-1.jpg", "photo-2.jpg"]
