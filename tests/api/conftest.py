"""Fixtures for the REST API: the five kinds of client the permission matrix asks about, a private gallery with
a captioned, translated photo, and API clients signed in with a token."""

from collections.abc import Callable

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from captioning.models import Caption, Gallery, GalleryMembership, Photo, Translation
from captioning.search import forget_indexes
from captioning.services.galleries import gallery_create, gallery_member_set
from captioning.services.photos import photo_upload

# The platform's own fixtures: isolated media folder, users, the tiny active model.
from tests.captioning.conftest import (  # noqa: F401
    active_model,
    alice,
    bob,
    fresh_engine,
    isolated_files,
    make_user,
    media_files,
    start_web_server,
)
from tests.captioning.helpers import encode, picture

ROLES = ["anonymous", "stranger", "viewer", "owner", "staff"]
PASSWORD = "a-Long-passw0rd"


@pytest.fixture(autouse=True)
def generous_rates(settings):
    """Throttling and sign-in lockouts have their own tests; elsewhere they must not get in the way."""
    settings.API_THROTTLE_RATES = {scope: "100000/minute" for scope in ("anonymous", "user", "uploads", "sign_in")}
    settings.AXES_FAILURE_LIMIT = 100000


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The matrix creates five users per test: a deliberately slow password hash would dominate its time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_search_index():
    forget_indexes()
    yield
    forget_indexes()


@pytest.fixture
def people(db) -> dict:
    """owner: owns the private gallery; viewer: one of its viewers; stranger: another signed-in user; staff:
    a staff reviewer (all the captioning app's permissions) who is not a member."""
    users = get_user_model().objects
    owner = users.create_user("owner", password=PASSWORD)
    viewer = users.create_user("viewer", password=PASSWORD)
    stranger = users.create_user("stranger", password=PASSWORD)
    staff = users.create_user("staff", password=PASSWORD, is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(content_type__app_label="captioning"))
    users.create_user("carol", password=PASSWORD)
    return {"anonymous": None, "stranger": stranger, "viewer": viewer, "owner": owner, "staff": staff}


def upload(user, gallery: Gallery, seed: int, name: str = "photo.jpg") -> Photo:
    content = encode(picture(seed=seed), "JPEG")
    return photo_upload(acting_user=user, gallery=gallery, file=SimpleUploadedFile(name, content)).photo


def caption(photo: Photo, text: str, **fields) -> Caption:
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.CAPTIONED)
    Caption.objects.filter(photo=photo, is_current=True).update(is_current=False)
    return Caption.objects.create(photo=photo, text=text, is_current=True, **fields)


@pytest.fixture
def private_gallery(people) -> Gallery:
    gallery = gallery_create(acting_user=people["owner"], title="Family", visibility=Gallery.Visibility.PRIVATE)
    gallery_member_set(
        gallery=gallery, acting_user=people["owner"], username="viewer", role=GalleryMembership.Role.VIEWER
    )
    return gallery


@pytest.fixture
def private_photo(people, private_gallery) -> Photo:
    photo = upload(people["owner"], private_gallery, seed=31, name="beach.jpg")
    current = caption(photo, "a zebra standing on a sandy beach", score=-1.2, clip_score=0.4)
    Translation.objects.create(
        caption=current, language="fr", text="un zèbre sur une plage", status=Translation.Status.DONE
    )
    return photo


@pytest.fixture
def api_client_for() -> Callable[[object], APIClient]:
    """An API client signed in with `user`'s token (anonymous for None)."""

    def make(user) -> APIClient:
        client = APIClient()
        if user is not None:
            token, _created = Token.objects.get_or_create(user=user)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make
