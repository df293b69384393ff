"""Property: whatever a list's query string holds (blank, whitespace, unicode, overlong, repeated, near-miss
gallery ids), no client ever gets a photo or a gallery it may not see.

One world per test (the five roles of the permission matrix, and private, unlisted and public galleries of
three owners, one shared with the viewer; galleries are albums, so some photos are held by two galleries of
different visibility, and one by none); the requests only read, so every example runs against it. What each
role may see is written out here, from how the world was built, not asked of the selectors under test.
"""

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from captioning.models import Gallery, GalleryMembership, Photo, Translation
from captioning.services.galleries import gallery_create, gallery_member_set
from captioning.services.photos import photo_gallery_add, photo_gallery_remove
from tests.api.conftest import ROLES, caption, upload

pytestmark = pytest.mark.django_db

ANONYMOUS, STRANGER, VIEWER, OWNER, STAFF = ROLES
# (gallery owner, visibility, {member: role}): every visibility for each owner, and a gallery someone else
# owns that the viewer may see as a member (unlisted: listed to its members, never to others).
GALLERIES = [
    (OWNER, "private", {VIEWER: "viewer"}),
    (OWNER, "unlisted", {}),
    (OWNER, "public", {}),
    (STRANGER, "private", {}),
    (STRANGER, "unlisted", {}),
    (STRANGER, "public", {}),
    ("carol", "unlisted", {VIEWER: "viewer"}),
    ("carol", "private", {STRANGER: "editor"}),
]


@dataclass(frozen=True)
class Placed:
    gallery: Gallery
    photo: Photo
    owner: str
    visibility: str
    members: frozenset[str]

    def seen_by(self, role: str, *, by_link: bool) -> bool:
        """The rule as the README states it: owner and members always; anyone when public; anyone with the
        link when unlisted."""
        return (
            role in (self.owner, *self.members)
            or self.visibility == "public"
            or (self.visibility == "unlisted" and by_link)
        )


# (photo's gallery owner and visibility) -> (a second gallery's owner and visibility) that also holds it; the
# photo's owner adds it (the third as an editor of carol's private gallery).
SECOND_ALBUMS = [
    ((OWNER, "private"), (OWNER, "public")),  # a private photo made public by a second album
    ((OWNER, "unlisted"), (OWNER, "private")),  # an unlisted photo in a private album: its members see it
    ((STRANGER, "private"), ("carol", "private")),
]


@dataclass
class World:
    placed: list[Placed]  # one per gallery holding a photo: a photo may be placed twice
    api: dict[str, Client]
    pages: dict[str, Client]
    in_no_gallery: list[tuple[Photo, str]]  # (photo, its owner's role): its owner alone sees it

    def photos_listed_to(self, role: str, linked_gallery_ids: set[str]) -> set[str]:
        """A photo is seen when any gallery holding it is."""
        held = {
            str(item.photo.uuid)
            for item in self.placed
            if item.seen_by(role, by_link=item.gallery.public_id in linked_gallery_ids)
        }
        return held | {str(photo.uuid) for photo, owner in self.in_no_gallery if owner == role}

    def galleries_listed_to(self, role: str) -> set[str]:
        return {item.gallery.public_id for item in self.placed if item.seen_by(role, by_link=False)}


@pytest.fixture
def world(people, api_client_for) -> World:
    users = {**people, "carol": get_user_model().objects.get(username="carol")}
    placed = []
    for seed, (owner, visibility, members) in enumerate(GALLERIES):
        gallery = gallery_create(acting_user=users[owner], title=f"{owner} {visibility}", visibility=visibility)
        for member, role in members.items():
            gallery_member_set(gallery=gallery, acting_user=users[owner], username=member, role=role)
        photo = upload(users[owner], gallery, seed=60 + seed)
        current = caption(photo, f"a zebra in the {visibility} gallery of {owner}")
        Translation.objects.create(
            caption=current, language="fr", text=f"un zèbre {seed}", status=Translation.Status.DONE
        )
        placed.append(Placed(gallery, photo, owner, visibility, frozenset(members)))
    by_gallery = {(item.owner, item.visibility): item for item in placed}
    for first, second in SECOND_ALBUMS:
        photo, host = by_gallery[first].photo, by_gallery[second]
        added = photo_gallery_add(gallery=host.gallery, photo_uuids=[photo.uuid], acting_user=users[first[0]])
        assert list(added.values()) == ["added"]
        placed.append(Placed(host.gallery, photo, host.owner, host.visibility, host.members))
    public_album = by_gallery[(OWNER, "public")].gallery
    left_out = upload(users[OWNER], public_album, seed=90)
    caption(left_out, "a zebra in no gallery at all")
    photo_gallery_remove(gallery=public_album, photo_uuids=[left_out.uuid], acting_user=users[OWNER])
    pages = {}
    for role in ROLES:
        pages[role] = Client()
        if people[role] is not None:
            pages[role].force_login(people[role])
    assert GalleryMembership.objects.count() == 3
    return World(placed, {role: api_client_for(people[role]) for role in ROLES}, pages, [(left_out, OWNER)])


# Query strings ----------------------------------------------------------------------------------------------

BLANKS = ["", " ", "  ", "\t", "\n", "\r\n", "\xa0", "\u2003", "\u3000", "\u200b", "\ufeff"]
TRICKY = [
    "+",
    "%20",
    "%09",
    "*",
    "%",
    "_",
    "null",
    "None",
    "true",
    "0",
    "-1",
    "1e99",
    "é",
    "zebra",
    "ZEBRA",
    "zèbre",
    "2020-01-01",
]
TRICKY += ["private", "unlisted", "public", "owner", "OWNER", "stranger", "carol", "viewer", "fr", "de", "en"]


def gallery_id_variants(world: World) -> st.SearchStrategy[str]:
    """Real gallery ids (every visibility) as they are and slightly off: padded, cased, cut, extended."""
    ids = [item.gallery.public_id for item in world.placed]
    return st.sampled_from(ids).flatmap(
        lambda public_id: st.sampled_from(
            [public_id, f" {public_id} ", f"\t{public_id}", public_id.upper(), public_id[:-1], public_id + "x"]
        )
    )


def values(world: World) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(BLANKS),
        st.text(st.sampled_from(" \t\n\r\x0b\x0c\xa0\u2028\u3000"), min_size=1, max_size=5),  # whitespace only
        st.sampled_from(TRICKY),
        gallery_id_variants(world),
        st.text(st.characters(exclude_categories=("Cs",)), max_size=30),  # any unicode a URL can carry
        st.integers(min_value=17, max_value=3000).map(lambda length: "a" * length),  # overlong
    )


@dataclass(frozen=True)
class Endpoint:
    """A URL that lists photos or galleries, the query parameters it reads, and what it may show."""

    name: str
    url: Callable[[World], str]
    parameters: tuple[str, ...]
    check: Callable  # (response, role, query as sent, world) -> None; asserts what it may show
    html: bool = False


def _json_results(response) -> list[dict]:
    return response.json()["results"] if response.status_code == 200 else []


def check_photo_list(response, role, query, world):
    # A gallery named by its id may be someone's unlisted one: the client has its link.
    linked = {value.strip() for name, value in query if name == "gallery"}
    shown = {item["id"] for item in _json_results(response)}
    assert shown <= world.photos_listed_to(role, linked), shown - world.photos_listed_to(role, linked)
    named = {public_id for item in _json_results(response) for public_id in item["galleries"]}
    assert named <= world.galleries_listed_to(role), named - world.galleries_listed_to(role)


def check_search(response, role, query, world):
    shown = {item["id"] for item in _json_results(response)}
    assert shown <= world.photos_listed_to(role, set()), shown - world.photos_listed_to(role, set())


def check_gallery_list(response, role, query, world):
    shown = {item["public_id"] for item in _json_results(response)}
    assert shown <= world.galleries_listed_to(role), shown - world.galleries_listed_to(role)


def check_page(response, role, query, world):
    """An HTML page names no photo and no gallery the role may not see (by uuid, public id or title), unless
    the client sent that name itself (a search page repeats its query)."""
    page = response.content.decode()
    sent = " ".join(value for _name, value in query)
    visible_photos, visible_galleries = world.photos_listed_to(role, set()), world.galleries_listed_to(role)
    for photo, _owner in world.in_no_gallery:
        if str(photo.uuid) not in visible_photos and str(photo.uuid) not in sent:
            assert str(photo.uuid) not in page
    for item in world.placed:
        if str(item.photo.uuid) not in visible_photos and str(item.photo.uuid) not in sent:
            assert str(item.photo.uuid) not in page
        if item.gallery.public_id not in visible_galleries and item.gallery.public_id not in sent:
            assert item.gallery.public_id not in page and f">{item.gallery.title}<" not in page


PAGE_PARAMETERS = ("page", "page_size")
ENDPOINTS = [
    Endpoint(
        "api photo list",
        lambda w: reverse("api-photo-list"),
        (
            "gallery",
            "status",
            "text",
            "uploaded_after",
            "uploaded_before",
            "taken_after",
            "taken_before",
            *PAGE_PARAMETERS,
        ),
        check_photo_list,
    ),
    Endpoint(
        "api gallery list",
        lambda w: reverse("api-gallery-list"),
        ("visibility", "owner", *PAGE_PARAMETERS),
        check_gallery_list,
    ),
    Endpoint("api search", lambda w: reverse("api-search"), ("q", "gallery", *PAGE_PARAMETERS), check_search),
    Endpoint("search page", lambda w: reverse("search"), ("q", "page", "lang", "gallery"), check_page, html=True),
    Endpoint(
        "explore page",
        lambda w: reverse("gallery-public-list"),
        ("page", "gallery", "visibility"),
        check_page,
        html=True,
    ),
    Endpoint(
        "my galleries page", lambda w: reverse("gallery-list"), ("page", "gallery", "owner"), check_page, html=True
    ),
]


@st.composite
def requests(draw, world: World):
    endpoint = draw(st.sampled_from(ENDPOINTS))
    # Every list is sent `gallery` often, those that do not read it too: none may widen what it shows.
    names = st.one_of(st.just("gallery"), st.sampled_from(endpoint.parameters))
    # Repeated names are the point: a view and a filter once read different copies of `gallery`.
    query = draw(st.lists(st.tuples(names, values(world)), max_size=4))
    return endpoint, query


def send(world: World, role: str, endpoint: Endpoint, query: list[tuple[str, str]]):
    clients = world.pages if endpoint.html else world.api
    url = endpoint.url(world) + ("?" + urlencode(query) if query else "")
    response = clients[role].get(url)
    assert response.status_code in (200, 302, 400, 404), (url, response.status_code)  # never a 500
    return response


# Bounded and the same on every run: the world is built once per test (the examples only read it), and a few
# hundred requests take some ten seconds.
BOUNDED = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@settings(BOUNDED, max_examples=200)
@given(role=st.sampled_from(ROLES), data=st.data())
def test_no_list_shows_what_the_role_may_not_see(world, role, data):
    endpoint, query = data.draw(requests(world))
    endpoint.check(send(world, role, endpoint, query), role, query, world)


def test_no_blank_gallery_value_lists_an_unlisted_gallery_to_any_role(world):
    """The values that once listed every unlisted gallery's photos, each sent alone and after a real id."""
    unlisted = next(item.gallery.public_id for item in world.placed if item.visibility == "unlisted")
    for blank in BLANKS:
        for role in ROLES:
            for query in ([("gallery", blank)], [("gallery", unlisted), ("gallery", blank)]):
                check_photo_list(send(world, role, ENDPOINTS[0], query), role, query, world)


# Addresses of one photo or gallery: the link itself decides, the query string never widens it ----------------

PHOTO_URLS = ["api-photo-detail", "api-photo-captions", "api-photo-translations"]


@settings(BOUNDED, max_examples=60)
@given(role=st.sampled_from(ROLES), data=st.data())
def test_a_photo_or_gallery_address_answers_404_to_whoever_may_not_see_it(world, role, data):
    item = data.draw(st.sampled_from(world.placed))
    query = data.draw(st.lists(st.tuples(st.sampled_from(["gallery", "lang", "page"]), values(world)), max_size=3))
    suffix = "?" + urlencode(query) if query else ""
    # The address is the link: to the photo, seen through any gallery holding it; to the gallery, itself.
    photo_visible = str(item.photo.uuid) in world.photos_listed_to(
        role, {item.gallery.public_id for item in world.placed}
    )
    for name in PHOTO_URLS:
        response = world.api[role].get(reverse(name, args=[item.photo.uuid]) + suffix)
        assert response.status_code == (200 if photo_visible else 404), (name, response.status_code)
    page = world.pages[role].get(reverse("photo-detail", args=[item.photo.uuid]) + suffix)
    assert page.status_code == (200 if photo_visible else 404)
    if photo_visible:  # it names the galleries holding it that the role may see listed, and no other
        listed = world.galleries_listed_to(role)
        for other in world.placed:
            if other.gallery.public_id not in listed:
                assert other.gallery.public_id not in page.content.decode()
    gallery_visible = item.seen_by(role, by_link=True)
    response = world.pages[role].get(reverse("gallery-status", args=[item.gallery.public_id]) + suffix)
    assert response.status_code == (200 if gallery_visible else 404)
    if gallery_visible:
        held = {str(other.photo.uuid) for other in world.placed if other.gallery == item.gallery}
        assert {photo["id"] for photo in response.json()["photos"]} == held
