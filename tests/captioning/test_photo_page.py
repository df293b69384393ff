"""The photo page, role by role: what it shows and offers its owner, the owner of another gallery holding it, an
editor and a viewer of one, a stranger, staff and an anonymous visitor, on photos in galleries of every
visibility, with a caption history and translations."""

import html
import re
from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from captioning.models import Caption, Gallery, GalleryMembership, ModelVersion, Photo, Translation
from captioning.services.galleries import gallery_cover_set, gallery_create, gallery_member_set
from captioning.services.photos import photo_gallery_add
from tests.api.conftest import upload

pytestmark = pytest.mark.django_db

PRIVATE, UNLISTED, PUBLIC = Gallery.Visibility.PRIVATE, Gallery.Visibility.UNLISTED, Gallery.Visibility.PUBLIC


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db) -> dict:
    """`photo`, the owner's, in her private "Family" (its cover; an editor and a viewer), her public "Beach" and
    Bob's unlisted "Bob's finds" (she edits it), with a model caption, an edit and translations; `guess`, hers,
    only in Bob's unlisted gallery, failed, with GPS data and an unsure caption; `loose`, hers, in no gallery."""
    users = get_user_model().objects
    people = {name: users.create_user(name, password="x") for name in ("owner", "bob", "editor", "viewer", "stranger")}
    people["staff"] = users.create_user("staff", password="x", is_staff=True)
    people["anonymous"] = None
    owner, bob = people["owner"], people["bob"]
    family = gallery_create(acting_user=owner, title="Family", visibility=PRIVATE)
    beach = gallery_create(acting_user=owner, title="Beach", visibility=PUBLIC)
    finds = gallery_create(acting_user=bob, title="Bob's finds", visibility=UNLISTED)
    spare = gallery_create(acting_user=owner, title="Spare", visibility=PRIVATE)
    shared = gallery_create(acting_user=bob, title="Bob's shared", visibility=PRIVATE)
    watched = gallery_create(acting_user=bob, title="Bob's watched", visibility=PRIVATE)
    for gallery, username, role in (
        (family, "editor", GalleryMembership.Role.EDITOR),
        (family, "viewer", GalleryMembership.Role.VIEWER),
        (finds, "owner", GalleryMembership.Role.EDITOR),
        (shared, "owner", GalleryMembership.Role.EDITOR),
        (watched, "owner", GalleryMembership.Role.VIEWER),
    ):
        gallery_member_set(gallery=gallery, acting_user=gallery.owner, username=username, role=role)

    photo = upload(owner, family, seed=1, name="beach.jpg")
    photo_gallery_add(gallery=beach, photo_uuids=[photo.uuid], acting_user=owner)
    photo_gallery_add(gallery=finds, photo_uuids=[photo.uuid], acting_user=owner)
    gallery_cover_set(gallery=family, photo=photo, acting_user=owner)
    model = ModelVersion.objects.create(name="tiny-v1", checkpoint_path="/nowhere", config={})
    first = Caption.objects.create(
        photo=photo, text="a dog on a beach", model_version=model, decoding={"strategy": "beam"}, score=-1.25
    )
    Caption.objects.filter(pk=first.pk).update(is_current=False, created_at=datetime(2024, 5, 1, 9, tzinfo=UTC))
    current = Caption.objects.create(photo=photo, text="our dog at the sea", source="edited", created_by=owner)
    Caption.objects.filter(pk=current.pk).update(created_at=datetime(2024, 5, 2, 9, tzinfo=UTC))
    for language, status, text, error in (
        ("fr", Translation.Status.DONE, "notre chien à la mer", ""),
        ("de", Translation.Status.PENDING, "", ""),
        ("es", Translation.Status.FAILED, "", "The service said no."),
    ):
        Translation.objects.create(caption=current, language=language, status=status, text=text, error_message=error)

    guess = upload(owner, spare, seed=2, name="odd.jpg")
    photo_gallery_add(gallery=finds, photo_uuids=[guess.uuid], acting_user=owner)
    spare.placements.all().delete()
    Photo.objects.filter(pk=guess.pk).update(status=Photo.Status.FAILED, error_message="It broke.", has_location=True)
    odd = Caption.objects.create(photo=guess, text="a shape", model_version=model, confident=False, familiarity=None)
    Caption.objects.filter(pk=odd.pk).update(created_at=datetime(2024, 6, 1, 9, tzinfo=UTC))

    loose = upload(owner, spare, seed=3, name="loose.jpg")
    spare.placements.all().delete()
    return {"people": people, "photo": photo, "guess": guess, "loose": loose}


def page_for(client, world: dict, role: str, photo_name: str, **params) -> tuple[int, str]:
    user = world["people"][role]
    if user is not None:
        client.force_login(user)
    response = client.get(reverse("photo-detail", args=[world[photo_name].uuid]), params)
    return response.status_code, response.content.decode()


def offered(page: str) -> dict:
    """What a photo page shows and offers, by name."""
    content = page[page.index("<h1") :]
    forms = [
        action.strip("/").split("/")[-1] for action in re.findall(r'<form method="post" action="([^"]+)"', content)
    ]
    add_to = content.split('id="add-to-gallery"')[1].split("</select>")[0] if 'id="add-to-gallery"' in content else ""
    holding = re.findall(r'<li data-holding-gallery="[^"]+"><a href="[^"]+">([^<]+)</a>', content)
    breadcrumb = re.search(r'<p class="breadcrumbs">(.*?)</p>', page).group(1)
    return {
        "breadcrumb": html.unescape(re.sub(r"<[^>]+>", "", breadcrumb)),
        "forms": forms,
        "holding": [html.unescape(title) for title in holding],
        "add_to": [html.unescape(title) for title in re.findall(r"<option [^>]+>([^<]+)</option>", add_to)],
        "download": re.search(r'href="[^"]+/original">([^<]+)</a>', content).group(1),
        "location_note": "Your original holds GPS data" in content,
        "in_no_gallery": "In no gallery" in content,
        "cover_notes": content.count("data-gallery-cover-note"),
        "history": len(re.findall(r"<li( class=\"history__current\")?>\s*<span>", content)),
        "translations": re.findall(r'<li><a href="\?lang=(\w+)">', content),
    }


CAPTION_TOOLS = ["caption", "recaption"]  # the caption's edit form and "Caption again"

PHOTO_PAGE = {
    "owner": {
        "breadcrumb": "← Beach",
        "forms": [*CAPTION_TOOLS, "cover", "remove", "remove", "remove", "galleries", "delete"],
        "cover_notes": 1,  # "Family"'s
        "holding": ["Beach", "Bob's finds", "Family"],
        "add_to": ["Bob's shared", "Spare"],
        "download": "Download original",
    },
    "bob": {
        "breadcrumb": "← Beach",
        "forms": [*CAPTION_TOOLS, "cover", "remove"],
        "holding": ["Beach", "Bob's finds"],
        "add_to": [],
        "download": "Download",
    },
    "editor": {
        "breadcrumb": "← Beach",
        "forms": ["remove"],
        "holding": ["Beach", "Family"],
        "add_to": [],
        "download": "Download",
    },
    "viewer": {
        "breadcrumb": "← Beach",
        "forms": [],
        "holding": ["Beach", "Family"],
        "add_to": [],
        "download": "Download",
    },
    "stranger": {"breadcrumb": "← Beach", "forms": [], "holding": ["Beach"], "add_to": [], "download": "Download"},
    "staff": {"breadcrumb": "← Beach", "forms": [], "holding": ["Beach"], "add_to": [], "download": "Download"},
    "anonymous": {"breadcrumb": "← Beach", "forms": [], "holding": ["Beach"], "add_to": [], "download": "Download"},
}


@pytest.mark.parametrize("role", list(PHOTO_PAGE))
def test_the_photo_page_shows_and_offers_each_role_its_own(client, world, role):
    status, page = page_for(client, world, role, "photo")

    assert status == 200
    shown = offered(page)
    assert {key: shown[key] for key in PHOTO_PAGE[role]} == PHOTO_PAGE[role]
    assert shown["location_note"] is False and shown["in_no_gallery"] is False
    assert shown["history"] == 2 and shown["translations"] == ["de", "es", "fr"]
    assert "our dog at the sea" in page and "Edited by owner" in page
    assert '<a href="/models/' in page and "tiny-v1</a>, beam, -1.25 · 1 May 2024, 09:00" in page


@pytest.mark.parametrize(
    ("language", "shown"),
    [
        ("fr", 'data-translated-caption lang="fr">notre chien à la mer</p>'),
        ("es", "The service said no."),
    ],
)
def test_the_photo_page_shows_the_caption_in_the_visitors_language(client, world, settings, language, shown):
    settings.TRANSLATION_PROVIDER = "google"
    settings.GOOGLE_TRANSLATE_API_KEY = "key"

    status, page = page_for(client, world, "viewer", "photo", lang=language)

    assert status == 200 and shown in page
    assert ("Retry translation" in page) is (language == "es")


GUESS_PAGE = {
    "owner": {
        "breadcrumb": "← Bob's finds",
        "forms": ["retry", *CAPTION_TOOLS, "remove", "galleries", "delete"],
        "holding": ["Bob's finds"],
        "add_to": ["Beach", "Bob's shared", "Family", "Spare"],
        "download": "Download original",
        "location_note": True,
    },
    "bob": {
        "breadcrumb": "← Bob's finds",
        "forms": ["retry", *CAPTION_TOOLS, "cover", "remove"],
        "holding": ["Bob's finds"],
        "add_to": [],
        "download": "Download",
        "location_note": False,
    },
    # Someone with the link: the unlisted gallery is not named to them, and the photo is not "in no gallery".
    "stranger": {
        "breadcrumb": "← All photos",
        "forms": [],
        "holding": [],
        "add_to": [],
        "download": "Download",
        "location_note": False,
    },
    "anonymous": {
        "breadcrumb": "",
        "forms": [],
        "holding": [],
        "add_to": [],
        "download": "Download",
        "location_note": False,
    },
}


@pytest.mark.parametrize("role", list(GUESS_PAGE))
def test_a_photo_in_an_unlisted_gallery_only_is_named_to_those_who_may_list_it(client, world, role):
    status, page = page_for(client, world, role, "guess")

    assert status == 200
    shown = offered(page)
    assert {key: shown[key] for key in GUESS_PAGE[role]} == GUESS_PAGE[role]
    assert shown["in_no_gallery"] is False and shown["history"] == 0
    assert "Unsure: the model (tiny-v1) has not seen photos like this." in page and "It broke." in page


@pytest.mark.parametrize("role", ["bob", "editor", "viewer", "stranger", "staff", "anonymous"])
def test_a_photo_in_no_gallery_is_its_owners_alone(client, world, role):
    assert page_for(client, world, role, "loose")[0] == 404


def test_a_photo_in_no_gallery_says_so_to_its_owner(client, world):
    status, page = page_for(client, world, "owner", "loose")

    assert status == 200
    shown = offered(page)
    assert shown["in_no_gallery"] is True and shown["holding"] == [] and shown["breadcrumb"] == "← All photos"
    assert shown["forms"] == ["recaption", "galleries", "delete"]  # no caption to edit
    assert shown["add_to"] == ["Beach", "Bob's finds", "Bob's shared", "Family", "Spare"]


def fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_the_photo_pages_statements_compiled_once_read_what_their_querysets_read(world, django_assert_num_queries):
    """captioning.statements compiles the page's SQL once, for a stand-in user, photo and caption: each visitor
    still gets their own photo (or none), and each photo its own captions and translations."""
    from captioning import selectors

    seen = []
    for role, user in world["people"].items():
        for name in ("photo", "guess", "loose"):
            photo_uuid = world[name].uuid
            expected = selectors.photo_list_visible_to(user, include_unlisted=True).filter(uuid=photo_uuid).first()
            with django_assert_num_queries(1):  # its owner read with it
                try:
                    found = selectors.photo_get_for_viewer(user=user, photo_uuid=str(photo_uuid))
                except Photo.DoesNotExist:
                    found = None
                else:
                    assert found.owner.username
            assert (found and (fields(found), found.owner.username)) == (
                expected and (fields(expected), expected.owner.username)
            ), (role, name)
            seen.append(found is not None)
    assert seen.count(True) == 3 + 6 * 2  # the loose photo is its owner's alone
    for name in ("photo", "guess", "loose"):
        with django_assert_num_queries(1):  # their models and authors read with them
            history = selectors.caption_history_list(world[name])
            assert all(item.model_version is None or item.model_version.name for item in history)
            assert all(item.created_by is None or item.created_by.username for item in history)
        expected = list(selectors.caption_history(world[name]))
        assert [(fields(item), item.model_version and fields(item.model_version)) for item in history] == [
            (fields(item), item.model_version and fields(item.model_version)) for item in expected
        ]
        assert [item.created_by and item.created_by.username for item in history] == [
            item.created_by and item.created_by.username for item in expected
        ]
        for caption in history:
            assert [fields(item) for item in selectors.translation_list(caption)] == [
                fields(item) for item in caption.translations.all()
            ]


@pytest.mark.parametrize("text", ["a dog", "", '<b>"Tom" & Jerry\'s</b>', "\nfirst line\nsecond", "x" * 1000])
def test_the_caption_field_rendered_once_is_the_forms_own(text):
    from captioning.forms import CaptionEditForm
    from captioning.views.photos import _caption_field

    field = CaptionEditForm(initial={"text": text})["text"]
    assert _caption_field(text) == {"html": str(field), "id": field.id_for_label}


def test_on_postgresql_the_pages_statements_are_prepared_after_a_few_views(client, world):
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("prepared statements are PostgreSQL's")
    for _view in range(6):
        assert page_for(client, world, "owner", "photo")[0] == 200
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE name LIKE '_pg3_%'")
        prepared = [statement for (statement,) in cursor.fetchall()]
    assert any('FROM "captioning_photo"' in statement and "$" in statement for statement in prepared), prepared
