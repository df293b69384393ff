"""Who may do what, cell by cell: anonymous / a stranger / a viewer of the gallery / its owner / staff against
every API endpoint and every media URL, on a private gallery. What a client may not see answers 404 (its
existence is not revealed), what it sees but may not change 403, and a write without signing in 401.

Each cell is one test, on a fresh database, and asserts the status code and, for lists and search, whether
the private photo or gallery is in the answer."""

from dataclasses import dataclass
from typing import Any

import pytest
from django.urls import reverse

from captioning.models import Caption, GalleryMembership, ModelVersion, Photo
from captioning.services.photos import photo_gallery_remove
from tests.api.conftest import ROLES, caption, upload

pytestmark = pytest.mark.django_db

# Expected outcome per role: a status code, or (status code, the private item is listed).
ANONYMOUS, STRANGER, VIEWER, OWNER, STAFF = ROLES


@dataclass(frozen=True)
class Cell:
    name: str
    method: str
    url: Any  # a function of the world -> str
    expected: dict
    body: Any = None  # a function of the world -> dict
    form: bool = False  # multipart instead of JSON
    listed: Any = None  # a function (response json, world) -> whether the private item is in the answer


def private_photo_listed(data, world) -> bool:
    return str(world["photo"].uuid) in {item["id"] for item in data["results"]}


def private_gallery_listed(data, world) -> bool:
    return world["gallery"].public_id in {item["public_id"] for item in data["results"]}


PHOTO_WRITE = {ANONYMOUS: 401, STRANGER: 404, VIEWER: 403, STAFF: 404}
GALLERY_READ = {ANONYMOUS: 404, STRANGER: 404, VIEWER: 200, OWNER: 200, STAFF: 404}
GALLERY_OWNER_ONLY = {ANONYMOUS: 401, STRANGER: 404, VIEWER: 403, STAFF: 404}

API_CELLS = [
    Cell(
        "list galleries",
        "get",
        lambda w: reverse("api-gallery-list"),
        {ANONYMOUS: (200, False), STRANGER: (200, False), VIEWER: (200, True), OWNER: (200, True), STAFF: (200, False)},
        listed=private_gallery_listed,
    ),
    Cell(
        "create a gallery",
        "post",
        lambda w: reverse("api-gallery-list"),
        {ANONYMOUS: 401, STRANGER: 201, VIEWER: 201, OWNER: 201, STAFF: 201},
        body=lambda w: {"title": "New one"},
    ),
    Cell("read a gallery", "get", lambda w: reverse("api-gallery-detail", args=[w["gallery"].public_id]), GALLERY_READ),
    Cell(
        "change a gallery (PATCH)",
        "patch",
        lambda w: reverse("api-gallery-detail", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 200},
        body=lambda w: {"title": "Renamed"},
    ),
    Cell(
        "replace a gallery (PUT)",
        "put",
        lambda w: reverse("api-gallery-detail", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 200},
        body=lambda w: {"title": "Renamed", "visibility": "private"},
    ),
    Cell(
        "delete a gallery",
        "delete",
        lambda w: reverse("api-gallery-detail", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 204},
    ),
    Cell(
        "list members",
        "get",
        lambda w: reverse("api-gallery-members", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 200},
    ),
    Cell(
        "add a member",
        "post",
        lambda w: reverse("api-gallery-members", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 200},
        body=lambda w: {"username": "carol", "role": "editor"},
    ),
    Cell(
        "remove a member",
        "delete",
        lambda w: reverse("api-gallery-member", args=[w["gallery"].public_id, w["people"]["viewer"].pk]),
        {**GALLERY_OWNER_ONLY, OWNER: 204},
    ),
    Cell(
        "list photos",
        "get",
        lambda w: reverse("api-photo-list"),
        {ANONYMOUS: (200, False), STRANGER: (200, False), VIEWER: (200, True), OWNER: (200, True), STAFF: (200, False)},
        listed=private_photo_listed,
    ),
    Cell(
        "list a gallery's photos",
        "get",
        lambda w: reverse("api-photo-list") + f"?gallery={w['gallery'].public_id}",
        {ANONYMOUS: (200, False), STRANGER: (200, False), VIEWER: (200, True), OWNER: (200, True), STAFF: (200, False)},
        listed=private_photo_listed,
    ),
    Cell(
        "upload a photo",
        "post",
        lambda w: reverse("api-photo-list"),
        {ANONYMOUS: 401, STRANGER: 404, VIEWER: 403, OWNER: 201, STAFF: 404},
        body=lambda w: {"gallery": w["gallery"].public_id, "files": [w["new_file"]()]},
        form=True,
    ),
    Cell("read a photo", "get", lambda w: reverse("api-photo-detail", args=[w["photo"].uuid]), GALLERY_READ),
    Cell(
        "read a photo in no gallery",
        "get",
        lambda w: reverse("api-photo-detail", args=[w["loose_photo"].uuid]),
        {ANONYMOUS: 404, STRANGER: 404, VIEWER: 404, OWNER: 200, STAFF: 404},
    ),
    Cell(
        "add a photo to a gallery",
        "post",
        lambda w: reverse("api-gallery-photos", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 200},
        body=lambda w: {"photos": [str(w["loose_photo"].uuid)]},
    ),
    Cell(
        "remove a photo from a gallery",
        "delete",
        lambda w: reverse("api-gallery-photos", args=[w["gallery"].public_id]),
        {**GALLERY_OWNER_ONLY, OWNER: 200},
        body=lambda w: {"photos": [str(w["photo"].uuid)]},
    ),
    Cell(
        "delete a photo",
        "delete",
        lambda w: reverse("api-photo-detail", args=[w["photo"].uuid]),
        {**PHOTO_WRITE, OWNER: 204},
    ),
    Cell(
        "retry a failed photo",
        "post",
        lambda w: reverse("api-photo-retry", args=[w["failed_photo"].uuid]),
        {**PHOTO_WRITE, OWNER: 202},
    ),
    Cell(
        "re-caption a photo",
        "post",
        lambda w: reverse("api-photo-recaption", args=[w["photo"].uuid]),
        {**PHOTO_WRITE, OWNER: 202},
        body=lambda w: {"decoding": {"strategy": "greedy"}},
    ),
    Cell(
        "read the caption history",
        "get",
        lambda w: reverse("api-photo-captions", args=[w["photo"].uuid]),
        GALLERY_READ,
    ),
    Cell(
        "edit the caption",
        "post",
        lambda w: reverse("api-photo-captions", args=[w["photo"].uuid]),
        {**PHOTO_WRITE, OWNER: 201},
        body=lambda w: {"text": "a zebra on the sand"},
    ),
    Cell(
        "list translations",
        "get",
        lambda w: reverse("api-photo-translations", args=[w["photo"].uuid]),
        GALLERY_READ,
    ),
    Cell(
        "request a translation",
        "post",
        lambda w: reverse("api-photo-translations", args=[w["photo"].uuid]),
        {ANONYMOUS: 401, STRANGER: 404, VIEWER: 202, OWNER: 202, STAFF: 404},
        body=lambda w: {"language": "de"},
    ),
    Cell(
        "list model versions",
        "get",
        lambda w: reverse("api-model-versions"),
        {ANONYMOUS: 401, STRANGER: 200, VIEWER: 200, OWNER: 200, STAFF: 200},
    ),
    Cell(
        "activate a model version",
        "post",
        lambda w: reverse("api-model-version-activate", args=[w["model"].pk]),
        {ANONYMOUS: 401, STRANGER: 403, VIEWER: 403, OWNER: 403, STAFF: 200},
    ),
    Cell(
        "read the queue status",
        "get",
        lambda w: reverse("api-queue"),
        {ANONYMOUS: 401, STRANGER: 200, VIEWER: 200, OWNER: 200, STAFF: 200},
    ),
    Cell(
        "search",
        "get",
        lambda w: reverse("api-search") + "?q=zebra",
        {ANONYMOUS: (200, False), STRANGER: (200, False), VIEWER: (200, True), OWNER: (200, True), STAFF: (200, False)},
        listed=private_photo_listed,
    ),
    Cell(
        "revoke one's token",
        "delete",
        lambda w: reverse("api-token"),
        {ANONYMOUS: 401, STRANGER: 204, VIEWER: 204, OWNER: 204, STAFF: 204},
    ),
    Cell("read the schema", "get", lambda w: reverse("api-schema"), dict.fromkeys(ROLES, 200)),
    Cell("open the API docs", "get", lambda w: reverse("api-docs"), dict.fromkeys(ROLES, 200)),
]

# The site's media and photo URLs (session sign-in), and the admin's thumbnail for reviewers.
MEDIA_CELLS = [
    Cell("photo page", "get", lambda w: reverse("photo-detail", args=[w["photo"].uuid]), GALLERY_READ),
    Cell(
        "page of a photo in no gallery",
        "get",
        lambda w: reverse("photo-detail", args=[w["loose_photo"].uuid]),
        {ANONYMOUS: 404, STRANGER: 404, VIEWER: 404, OWNER: 200, STAFF: 404},
    ),
    Cell("photo status", "get", lambda w: reverse("photo-status", args=[w["photo"].uuid]), GALLERY_READ),
    Cell("thumbnail", "get", lambda w: reverse("photo-thumbnail", args=[w["photo"].uuid]), GALLERY_READ),
    Cell("display image", "get", lambda w: reverse("photo-image", args=[w["photo"].uuid]), GALLERY_READ),
    Cell("original file", "get", lambda w: reverse("photo-original", args=[w["photo"].uuid]), GALLERY_READ),
    Cell(
        "admin review thumbnail",
        "get",
        lambda w: reverse("admin:captioning_photo_thumbnail", args=[w["photo"].pk]),
        {ANONYMOUS: 302, STRANGER: 302, VIEWER: 302, OWNER: 302, STAFF: 200},
    ),
]


@pytest.fixture
def world(people, private_gallery, private_photo, settings) -> dict:
    # Who may ask for a translation is checked with a translation service configured (none is by default).
    settings.TRANSLATION_PROVIDER = "google"
    owner = people["owner"]
    failed = upload(owner, private_gallery, seed=32, name="broken.jpg")
    Photo.objects.filter(pk=failed.pk).update(status=Photo.Status.FAILED, error_message="The model crashed.")
    other_model = ModelVersion.objects.create(name="other", checkpoint_path="/nowhere", config={"clip_model": "x"})
    loose = upload(owner, private_gallery, seed=33, name="loose.jpg")
    photo_gallery_remove(gallery=private_gallery, photo_uuids=[loose.uuid], acting_user=owner)
    seeds = iter(range(40, 60))
    return {
        "people": people,
        "gallery": private_gallery,
        "photo": private_photo,
        "caption": Caption.objects.get(photo=private_photo, is_current=True),
        "failed_photo": failed,
        "loose_photo": loose,
        "model": other_model,
        "new_file": lambda: _jpeg(next(seeds)),
    }


def _jpeg(seed: int):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.captioning.helpers import encode, picture

    return SimpleUploadedFile(f"new-{seed}.jpg", encode(picture(seed=seed), "JPEG"), content_type="image/jpeg")


def _expected(cell: Cell, role: str) -> tuple[int, bool | None]:
    value = cell.expected[role]
    return value if isinstance(value, tuple) else (value, None)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("cell", API_CELLS, ids=[cell.name for cell in API_CELLS])
def test_api_permission_matrix(cell, role, world, api_client_for):
    client = api_client_for(world["people"][role])
    url = cell.url(world)
    body = cell.body(world) if cell.body else None
    if cell.form:
        response = getattr(client, cell.method)(url, body, format="multipart")
    else:
        response = getattr(client, cell.method)(url, body, format="json")

    status, listed = _expected(cell, role)
    assert response.status_code == status, (role, cell.name, response.content[:500])
    if status >= 400:
        error = response.json()["error"]
        assert error["status"] == status and error["message"], error
    if listed is not None:
        assert cell.listed(response.json(), world) is listed, (role, cell.name)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("cell", MEDIA_CELLS, ids=[cell.name for cell in MEDIA_CELLS])
def test_media_permission_matrix(cell, role, world, client):
    user = world["people"][role]
    if user is not None:
        client.force_login(user)
    response = client.get(cell.url(world))
    status, _listed = _expected(cell, role)
    assert response.status_code == status, (role, cell.name)
    if cell.name == "admin review thumbnail" and status == 302:
        assert "/admin/login/" in response["Location"]


@pytest.mark.parametrize(("role", "content_type"), [("viewer", "image/webp"), ("owner", "image/jpeg")])
def test_only_the_owner_downloads_the_original_file(role, content_type, world, client):
    client.force_login(world["people"][role])
    response = client.get(reverse("photo-original", args=[world["photo"].uuid]))
    assert response["Content-Type"] == content_type


def test_a_viewer_who_becomes_editor_may_upload(world, api_client_for):
    people = world["people"]
    GalleryMembership.objects.filter(user=people["viewer"]).update(role=GalleryMembership.Role.EDITOR)
    response = api_client_for(people["viewer"]).post(
        reverse("api-photo-list"), {"gallery": world["gallery"].public_id, "files": [_jpeg(99)]}, format="multipart"
    )
    assert response.status_code == 201
    assert response.json()["results"][0]["photo"]["owner"] == "viewer"


def test_a_public_gallery_is_read_by_everyone_but_changed_by_its_owner_only(world, api_client_for):
    gallery, photo, people = world["gallery"], world["photo"], world["people"]
    gallery.visibility = "public"
    gallery.save()
    caption(photo, "a zebra in the sun")
    for role in ROLES:
        client = api_client_for(people[role])
        assert client.get(reverse("api-photo-detail", args=[photo.uuid])).status_code == 200, role
        expected = {"anonymous": 401, "owner": 200}.get(role, 403)
        response = client.patch(reverse("api-gallery-detail", args=[gallery.public_id]), {"title": "x"}, format="json")
        assert response.status_code == expected, role
