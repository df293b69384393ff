"""Reads. Who may see and do what is decided here, once; pages, the JSON endpoints and the API all ask here.

Visibility of a gallery and of every photo it holds:
- private: its owner and its members;
- unlisted: also anyone who has the link (never listed, never searched by others);
- public: anyone, and listed on Explore.
Galleries are albums: a photo may be held by several, and is visible to you when any gallery holding it is
(a private photo added to a public gallery is public). A photo held by no gallery stays in its owner's library,
for its owner alone. Members are viewers (see) or editors (see, upload, add their own photos and remove photos).
Changing a photo (caption, re-caption, delete) is for the photo's owner and the owners of galleries holding it.
The original file, with its metadata, is for the photo's owner only; everyone else gets the derivative without
metadata.
"""

import dataclasses
import datetime
import functools
import logging
import operator
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    FilteredRelation,
    Func,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThan, IsNull

from captioning.models import (
    GALLERY_PUBLIC_ID_PATTERN,
    Caption,
    Gallery,
    GalleryMembership,
    GalleryPhoto,
    ModelVersion,
    Photo,
    Translation,
)
from captioning.statements import (
    STAND_IN_TEXT,
    STAND_IN_UUID,
    stand_in_ids,
    stand_in_user,
    stand_in_values,
    statement,
)

# Whoever is asking: a signed-in user or an anonymous visitor (request.user).
UserOrAnonymous = AbstractBaseUser | AnonymousUser

OWNER = "owner"

logger = logging.getLogger(__name__)


def _signed_in(user: UserOrAnonymous | None) -> bool:
    return user is not None and user.is_authenticated


def _visible_gallery_q(user: UserOrAnonymous | None, *, include_unlisted: bool) -> Q:
    levels = [Gallery.Visibility.PUBLIC]
    if include_unlisted:
        levels.append(Gallery.Visibility.UNLISTED)
    condition = Q(visibility__in=levels)
    if _signed_in(user):
        member_of = GalleryMembership.objects.filter(user=user).values("gallery_id")
        condition |= Q(owner=user) | Q(pk__in=member_of)
    return condition


def _visible_photo_q(user: UserOrAnonymous | None, *, include_unlisted: bool, **shape: bool) -> Q:
    """Held by a gallery `user` may open, or `user`'s own and held by none (their library keeps it). `shape`: how
    the SQL asks it (`_visible_photo_parts`)."""
    return functools.reduce(operator.or_, _visible_photo_parts(user, include_unlisted=include_unlisted, **shape))


class _EqualsAny(Func):
    """`column = ANY(array)` (PostgreSQL)."""

    output_field = BooleanField()

    def as_sql(self, compiler, connection, **extra_context):
        (column_sql, column_params), (array_sql, array_params) = (
            compiler.compile(expression) for expression in self.source_expressions
        )
        return f"{column_sql} = ANY({array_sql})", [*column_params, *array_params]


def _visible_photo_parts(
    user: UserOrAnonymous | None,
    *,
    include_unlisted: bool,
    asked_photo_by_photo: bool = False,
) -> list[Q]:
    """`_visible_photo_q`'s parts, which no photo meets both of (one is held by a gallery, the other by none).
    "Held by" is asked of each photo (EXISTS over its own placements), so PostgreSQL tests only the photos a query
    reads (a photo page, a search's candidates) instead of first listing every photo of every gallery the user
    may see.

    `asked_photo_by_photo`, for a page read newest first: each part asks for one placement of the photo (a
    subquery with LIMIT 1, galleries listed once) rather than whether one EXISTS, which PostgreSQL may answer by
    hashing every placement first (the rule's OR keeps it from joining). A page then costs the photos it reads:
    PostgreSQL's time for the API's first page of 50 at 10,000 photos 1.9 -> 0.5 ms (prepared, so not planned).
    The other side of it: a user who sees few photos has many read for a page (one who sees 4% of them: 1.0 ->
    2.0 ms); one who may open no gallery has none looked up (the galleries' array is empty: 4.5 -> 3.1 ms)."""
    listed_once = asked_photo_by_photo and connection.vendor == "postgresql"
    visible_galleries = _visible_gallery_ids(user, include_unlisted=include_unlisted, as_array=listed_once)
    in_visible_gallery = _in_galleries(visible_galleries)
    if asked_photo_by_photo:
        held = Q(IsNull(_one_placement(in_visible_gallery), False))
        if listed_once:
            held = Q(GreaterThan(Func(visible_galleries, function="cardinality"), 0)) & held
        parts = [held]
    else:
        parts = [Q(Exists(GalleryPhoto.objects.filter(in_visible_gallery, photo=OuterRef("pk"))))]
    if _signed_in(user):
        parts.append(_library_only_q(user, asked_photo_by_photo=asked_photo_by_photo))
    return parts


def _visible_gallery_ids(user: UserOrAnonymous | None, *, include_unlisted: bool, as_array: bool) -> QuerySet | Func:
    """The ids of the galleries `user` may open; `as_array` (PostgreSQL): listed once, as an array, in which each
    placement is then looked up (from an index on the placements)."""
    ids = Gallery.objects.filter(_visible_gallery_q(user, include_unlisted=include_unlisted)).order_by().values("pk")
    return ArraySubquery(ids) if as_array else ids


def _in_galleries(gallery_ids: QuerySet | ArraySubquery) -> Q | Func:
    """On placements: in one of `gallery_ids` (`_visible_gallery_ids`)."""
    if isinstance(gallery_ids, ArraySubquery):
        return _EqualsAny(F("gallery_id"), gallery_ids)
    return Q(gallery__in=gallery_ids)


def _one_placement(condition: Q | Func) -> Subquery:
    """On photos: the photo's id if one of its placements meets `condition`, else NULL (read from the index on
    (photo, gallery) alone)."""
    placements = GalleryPhoto.objects.filter(condition, photo=OuterRef("pk")).order_by()
    return Subquery(placements.values("photo_id")[:1])


def _library_only_q(user: AbstractBaseUser, *, asked_photo_by_photo: bool = False) -> Q:
    """`user`'s own photos that no gallery holds. `asked_photo_by_photo`: one index look-up per photo of theirs
    (`_one_placement`), where NOT EXISTS let PostgreSQL scan every placement beside them (a merge join)."""
    if asked_photo_by_photo:
        return Q(owner=user) & Q(IsNull(_one_placement(Q()), True))
    return Q(owner=user) & ~Exists(GalleryPhoto.objects.filter(photo=OuterRef("pk")))


def gallery_list_visible_to(user: UserOrAnonymous | None, *, include_unlisted: bool = False) -> QuerySet[Gallery]:
    """Galleries `user` may open. Others' unlisted ones only with `include_unlisted` (someone has the link)."""
    return Gallery.objects.filter(_visible_gallery_q(user, include_unlisted=include_unlisted)).select_related("owner")


@dataclasses.dataclass(frozen=True, slots=True)
class GalleryCard:
    """What a list of galleries shows of each (templates/captioning/_gallery_card.html)."""

    public_id: str
    title: str
    slug: str
    description: str
    visibility: str
    owner_id: int
    owner_username: str
    updated_at: datetime.datetime
    photo_count: int
    cover_uuid: uuid.UUID | None


def gallery_list_for_member(user: UserOrAnonymous) -> list[GalleryCard]:
    """`user`'s own galleries and those shared with them, the most recently changed first: the "My galleries"
    page."""
    if not _signed_in(user):
        return []
    cards = statement(("member gallery cards",), lambda: _gallery_cards(_member_galleries(stand_in_user())))
    return [GalleryCard(**row) for row in cards.rows(stand_in_values(user=user))]


def gallery_list_public(*, limit: int | None = None) -> list[GalleryCard]:
    """The public galleries (Explore, and the home page's first `limit`), the most recently changed first."""
    public = Gallery.objects.filter(visibility=Gallery.Visibility.PUBLIC)
    cards = statement(("public gallery cards",), lambda: _gallery_cards(public))
    return [GalleryCard(**row) for row in cards.rows({}, limit=limit)]


def _member_galleries(user: AbstractBaseUser) -> QuerySet[Gallery]:
    member_of = GalleryMembership.objects.filter(user=user).values("gallery_id")
    return Gallery.objects.filter(Q(owner=user) | Q(pk__in=member_of))


def _gallery_cards(galleries: QuerySet[Gallery]) -> QuerySet:
    """`galleries` as GalleryCard's fields, compiled once per server thread (captioning.statements): building and
    compiling this queryset cost Explore 1.7 ms of its 7, and reading model instances most of another."""
    fields = [field.name for field in dataclasses.fields(GalleryCard) if field.name != "owner_username"]
    counted = gallery_list_with_covers(_with_photo_counts(galleries))
    return counted.values(*fields, owner_username=F("owner__username"))  # in Gallery's order: newest change first


def gallery_list_with_covers(galleries: QuerySet[Gallery]) -> QuerySet[Gallery]:
    """`cover_uuid` on each gallery: the photo its owner chose, else the first one uploaded (None when empty).
    Whoever may see the gallery may see its photos, so the cover's thumbnail is theirs to load; a chosen photo
    that is not (or no longer) in the gallery is passed over, so no other gallery's photo is ever shown."""
    first_photo = (
        GalleryPhoto.objects.filter(gallery=OuterRef("pk")).order_by("added_at", "id").values("photo__uuid")[:1]
    )
    held = GalleryPhoto.objects.filter(gallery=OuterRef("pk"), photo=OuterRef("cover_photo"))
    chosen = Case(When(Exists(held), then=F("cover_photo__uuid")))
    return galleries.annotate(cover_uuid=Coalesce(chosen, Subquery(first_photo)))


GALLERY_LIST_ORDER = ("-updated_at", "-id")  # the most recently changed first
GALLERY_ROW_FIELDS = (
    "id",
    "public_id",
    "title",
    "slug",
    "description",
    "visibility",
    "owner_id",
    "owner__username",
    "created_at",
)


def gallery_rows_for_viewer(
    *,
    acting_user: UserOrAnonymous | None,
    narrow: Callable[[QuerySet[Gallery]], QuerySet[Gallery]] | None = None,
    offset: int,
    limit: int,
) -> list[dict]:
    """`limit` galleries from `offset` of `narrow(gallery_list_visible_to(acting_user))`, the most recently changed
    first, as rows of GALLERY_ROW_FIELDS and their `cover_uuid` (`gallery_list_with_covers`). Without `narrow`
    (the list as most clients read it) from a statement compiled once per server thread (captioning.statements)."""
    if narrow is None:
        signed_in = _signed_in(acting_user)
        page = statement(
            ("gallery rows", signed_in), lambda: _gallery_rows(gallery_list_visible_to(_stand_in(signed_in)))
        )
        return page.rows(stand_in_values(user=acting_user), limit=limit, offset=offset)
    return list(_gallery_rows(narrow(gallery_list_visible_to(acting_user)))[offset : offset + limit])


def _gallery_rows(galleries: QuerySet[Gallery]) -> QuerySet:
    ordered = galleries.order_by(*GALLERY_LIST_ORDER)
    return gallery_list_with_covers(ordered).values(*GALLERY_ROW_FIELDS, "cover_uuid")


def gallery_count_for_viewer(
    *, acting_user: UserOrAnonymous | None, narrow: Callable[[QuerySet[Gallery]], QuerySet[Gallery]] | None = None
) -> int:
    galleries = gallery_list_visible_to(acting_user)
    return (galleries if narrow is None else narrow(galleries)).count()


def gallery_cover_uuid(gallery: Gallery) -> uuid.UUID | None:
    """The uuid of `gallery`'s cover (as `gallery_list_with_covers` chooses it), for a gallery read without it."""
    return gallery_list_with_covers(Gallery.objects.filter(pk=gallery.pk)).values_list("cover_uuid", flat=True).first()


def _with_photo_counts(galleries: QuerySet[Gallery]) -> QuerySet[Gallery]:
    """`photo_count` on each gallery. Counted per gallery from the index on (gallery, photo) (an index-only
    scan) rather than by joining every photo and grouping: that join cost Explore about 17 ms at 10,000 photos,
    and a grouped query drops the galleries' ordering (newest first)."""
    photo_count = (
        GalleryPhoto.objects.filter(gallery=OuterRef("pk"))
        .order_by()
        .values("gallery")
        .annotate(count=Count("gallery_id"))
        .values("count")
    )
    return galleries.select_related("owner").annotate(
        photo_count=Coalesce(Subquery(photo_count, output_field=IntegerField()), 0)
    )


def gallery_get_for_viewer(*, user: UserOrAnonymous | None, public_id: str) -> Gallery:
    """The gallery behind a link, if `user` may see it; Gallery.DoesNotExist otherwise (a 404, never a 403,
    so a private gallery's existence is not revealed)."""
    return gallery_list_visible_to(user, include_unlisted=True).get(public_id=public_id)


@dataclass(frozen=True)
class GalleryForViewer:
    """A gallery as its page shows it to one visitor: their role in it (`gallery_role`) and how many of its
    photos failed (the "Retry N failed" button counts them all)."""

    gallery: Gallery
    owner_username: str
    role: str | None
    failed_count: int

    @property
    def can_upload(self) -> bool:
        return _role_uploads(self.role)


_GALLERY_FIELDS = tuple(field.attname for field in Gallery._meta.concrete_fields)


def gallery_get_with_role(*, acting_user: UserOrAnonymous | None, public_id: str) -> GalleryForViewer:
    """`gallery_get_for_viewer` (Gallery.DoesNotExist for a gallery `acting_user` may not see) with the visitor's
    role and the failed photos' count, in one statement compiled once per process (captioning.statements):
    building and compiling the look-up, the role's and the count's querysets cost the page more than running
    them."""
    signed_in = _signed_in(acting_user)
    look_up = statement(("gallery with role", signed_in), lambda: _gallery_with_role(_stand_in(signed_in)))
    rows = look_up.rows(stand_in_values(user=acting_user, text=public_id))
    if not rows:
        raise Gallery.DoesNotExist(f"No gallery {public_id!r} that this visitor may see.")
    row = rows[0]
    return GalleryForViewer(
        gallery=Gallery(**{name: row[name] for name in _GALLERY_FIELDS}),
        owner_username=row["owner__username"],
        role=row["role"],
        failed_count=row["failed_count"],
    )


def _gallery_with_role(user: UserOrAnonymous) -> QuerySet:
    if _signed_in(user):
        membership = GalleryMembership.objects.filter(gallery=OuterRef("pk"), user=user).values("role")[:1]
        role = Case(When(owner=user, then=Value(OWNER)), default=Subquery(membership), output_field=CharField())
    else:
        role = Value(None, output_field=CharField())
    failed = (
        GalleryPhoto.objects.filter(gallery=OuterRef("pk"), photo__status=Photo.Status.FAILED)
        .order_by()
        .values("gallery")
        .annotate(count=Count("pk"))
        .values("count")
    )
    return (
        gallery_list_visible_to(user, include_unlisted=True)
        .filter(public_id=STAND_IN_TEXT)
        .order_by()
        .annotate(role=role, failed_count=Coalesce(Subquery(failed, output_field=IntegerField()), 0))
        .values(*_GALLERY_FIELDS, "owner__username", "role", "failed_count")
    )


def gallery_role(user: UserOrAnonymous | None, gallery: Gallery) -> str | None:
    """ "owner", "editor", "viewer" or None (someone who sees it only because it is public or unlisted)."""
    if not _signed_in(user):
        return None
    if gallery.owner_id == user.pk:
        return OWNER
    membership = GalleryMembership.objects.filter(gallery=gallery, user=user).only("role").first()
    return membership.role if membership else None


def gallery_roles(user: UserOrAnonymous | None, galleries: Iterable[Gallery]) -> dict[int, str]:
    """gallery id -> `user`'s role, for a page of galleries at once (absent: no role)."""
    return gallery_roles_by_id(user, {gallery.pk: gallery.owner_id for gallery in galleries})


def gallery_roles_by_id(user: UserOrAnonymous | None, owner_ids: dict[int, int]) -> dict[int, str]:
    """`gallery_roles` of galleries given as their id -> their owner's id (rows of `gallery_rows_for_viewer`)."""
    if not _signed_in(user) or not owner_ids:
        return {}
    roles = {gallery_id: OWNER for gallery_id, owner_id in owner_ids.items() if owner_id == user.pk}
    memberships = statement(
        ("gallery roles", len(owner_ids)),
        lambda: GalleryMembership.objects.filter(user=stand_in_user(), gallery__in=stand_in_ids(len(owner_ids))).values(
            "gallery_id", "role"
        ),
    )
    for membership in memberships.rows(stand_in_values(user=user, ids=list(owner_ids))):
        roles[membership["gallery_id"]] = membership["role"]
    return roles


def gallery_can_edit(user: UserOrAnonymous | None, gallery: Gallery) -> bool:
    return gallery_role(user, gallery) == OWNER


def gallery_can_upload(user: UserOrAnonymous | None, gallery: Gallery) -> bool:
    return _role_uploads(gallery_role(user, gallery))


def _role_uploads(role: str | None) -> bool:
    return role in (OWNER, GalleryMembership.Role.EDITOR)


def gallery_members(gallery: Gallery) -> QuerySet[GalleryMembership]:
    return gallery.memberships.select_related("user").order_by("user__username")


def gallery_list_for_upload(acting_user: UserOrAnonymous | None) -> QuerySet[Gallery]:
    """The galleries `acting_user` may upload to and add their photos to: their own and those they edit."""
    if not _signed_in(acting_user):
        return Gallery.objects.none()
    return Gallery.objects.filter(_uploadable_gallery_q(acting_user)).order_by("title", "id")


def _uploadable_gallery_q(acting_user: AbstractBaseUser) -> Q:
    edits = GalleryMembership.objects.filter(user=acting_user, role=GalleryMembership.Role.EDITOR).values("gallery_id")
    return Q(owner=acting_user) | Q(pk__in=edits)


@dataclass(frozen=True)
class PhotoPlaces:
    """Where a photo is, and where it may go, as its page shows `acting_user` (`photo_places`)."""

    listed: list[Gallery]  # holding it, `acting_user` may see listed (gallery_list_holding); each with its `role`
    managed: bool  # photo_can_manage
    addable: list[Gallery]  # not holding it, `acting_user` may add it to: for its owner alone (photo_sees_original)


def photo_places(photo: Photo, acting_user: UserOrAnonymous | None) -> PhotoPlaces:
    """`PhotoPlaces` of `photo`, in one statement compiled once per process (captioning.statements): every
    gallery holding it (its owner may manage it) and, for the photo's owner, those they may upload to, by title,
    with whether `acting_user` may see each listed and their role in it. Building the three querysets this
    replaces (gallery_list_holding, gallery_roles, gallery_list_for_upload) cost the photo page more than
    running them."""
    signed_in = _signed_in(acting_user)
    with_addable = photo_sees_original(acting_user, photo)
    galleries = statement(
        ("photo places", signed_in, with_addable),
        lambda: _photo_places_query(stand_in_ids(1)[0], _stand_in(signed_in), with_addable=with_addable),
    ).instances(stand_in_values(user=acting_user, ids=[photo.pk]))
    for gallery in galleries:
        gallery.role = OWNER if signed_in and gallery.owner_id == acting_user.pk else gallery.member_role
    return PhotoPlaces(
        listed=[gallery for gallery in galleries if gallery.holds and gallery.listed],
        managed=_manages(acting_user, photo.owner_id, [gallery.owner_id for gallery in galleries if gallery.holds]),
        addable=[gallery for gallery in galleries if not gallery.holds],
    )


def _photo_places_query(photo_id: int, acting_user: UserOrAnonymous, *, with_addable: bool) -> QuerySet[Gallery]:
    holds = Exists(GalleryPhoto.objects.filter(gallery=OuterRef("pk"), photo_id=photo_id))
    wanted = Q(holds) | _uploadable_gallery_q(acting_user) if with_addable else Q(holds)
    member_role = (
        GalleryMembership.objects.filter(gallery=OuterRef("pk"), user=acting_user).values("role")
        if _signed_in(acting_user)
        else GalleryMembership.objects.none().values("role")
    )
    return (
        Gallery.objects.filter(wanted)
        .only("public_id", "owner_id", "title", "slug", "cover_photo_id")
        .annotate(holds=holds, listed=_listed(acting_user), member_role=Subquery(member_role))
        .order_by("title", "id")
    )


def gallery_rows_for_upload(acting_user: UserOrAnonymous | None) -> list[dict]:
    """`gallery_list_for_upload` as rows of `public_id` and `title` (a grid's "Add to gallery" dialog), from a
    statement compiled once per process (captioning.statements)."""
    if not _signed_in(acting_user):
        return []
    rows = statement(
        "gallery rows for upload", lambda: gallery_list_for_upload(stand_in_user()).values("public_id", "title")
    )
    return rows.rows(stand_in_values(user=acting_user))


def gallery_list_holding(photo: Photo, acting_user: UserOrAnonymous | None) -> list[Gallery]:
    """The galleries holding `photo` that `acting_user` may see listed (never someone's unlisted gallery whose
    link they may not have)."""
    return list(gallery_list_visible_to(acting_user).filter(placements__photo=photo).order_by("title", "id"))


def photo_list_visible_to(
    user: UserOrAnonymous | None,
    *,
    include_unlisted: bool = False,
    asked_photo_by_photo: bool = False,
) -> QuerySet[Photo]:
    """Photos `user` may see: the one rule behind galleries, photo pages, media files, search and the API.

    `asked_photo_by_photo`: for a page read newest first and for a statement that tests many photos one by one
    (search's candidates, `photo_visible_sql`): the galleries `user` may open are listed once (an array on
    PostgreSQL) and each photo costs one look-up in its placements (`_visible_photo_parts`). Not the default:
    pgvector's image search with the galleries listed once took 4.9 s instead of 0.1 s in one run at 100,000
    photos (benchmarks/search.py), not understood yet."""
    visible = _visible_photo_q(user, include_unlisted=include_unlisted, asked_photo_by_photo=asked_photo_by_photo)
    return Photo.objects.filter(visible).select_related("owner")


def photo_visible_sql(user: UserOrAnonymous | None, *, photo_id_sql: str) -> tuple[str, list]:
    """(SQL, parameters) of a subquery that has a row when the photo whose id `photo_id_sql` names (a column of
    an outer statement) is in `photo_list_visible_to(user, asked_photo_by_photo=True)`: EXISTS of it tests a
    statement's candidates one by one (search's). Asked photo by photo, as a page asks, because with EXISTS
    PostgreSQL hashed every photo of every gallery a signed-in user may open first (357,200 at a million photos:
    the caption statement's visibility tests took 380 ms instead of 30). Built and compiled once per thread
    (captioning.statements): building it cost more than running it."""
    signed_in = _signed_in(user)
    visible = statement(
        ("photo visible", signed_in, photo_id_sql),
        lambda: (
            photo_list_visible_to(_stand_in(signed_in), asked_photo_by_photo=True)
            .filter(pk=RawSQL(photo_id_sql, []))
            .values("pk")
            .order_by()
        ),
    )
    return visible.sql, visible.params_with(stand_in_values(user=user))


def photo_exists_visible_to(user: UserOrAnonymous | None, *, embedded_by: list[int]) -> bool:
    """Whether `user` may see any photo that one of the model versions `embedded_by` embedded. The visibility
    rule's parts are asked apart (UNION ALL, as `photo_id_list_visible_to`), from a statement compiled once per
    thread (captioning.statements)."""
    signed_in = _signed_in(user)
    exists = statement(
        ("photo visible embedded by", signed_in, len(embedded_by)),
        lambda: _union_all(
            [
                Photo.objects.filter(part, embedding_model_id__in=stand_in_ids(len(embedded_by)))
                .order_by()
                .values("pk")
                for part in _visible_photo_parts(_stand_in(signed_in), include_unlisted=False)
            ]
        ),
    )
    return bool(exists.rows(stand_in_values(user=user, ids=embedded_by), limit=1))


def photo_id_list_visible_to(user: UserOrAnonymous | None) -> QuerySet:
    """The ids of `photo_list_visible_to(user)`, every one (the in-memory image index masks its matrix with
    them), listed as the visibility rule's parts apart and put together (UNION ALL), as `photo_count_for_viewer`
    counts them: PostgreSQL finds each part's photos by a join or an index, where the rule's OR tested every
    photo against both."""
    return _union_all(
        [
            Photo.objects.filter(part).order_by().values_list("pk", flat=True)
            for part in _visible_photo_parts(user, include_unlisted=False)
        ]
    )


def _union_all(parts: list[QuerySet]) -> QuerySet:
    """The rows of every one of `parts`, which share no row (the visibility rule's parts): UNION ALL."""
    return parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]


def photo_list_addable(acting_user: UserOrAnonymous | None) -> QuerySet[Photo]:
    """The photos `acting_user` may add to a gallery they may upload to: their own that they may see now. Only
    a photo's owner adds it anywhere: adding another's photo to a public gallery would publish it."""
    if not _signed_in(acting_user):
        return Photo.objects.none()
    return photo_list_visible_to(acting_user, include_unlisted=True).filter(owner=acting_user)


def photo_list_for_viewer(
    *, acting_user: UserOrAnonymous | None, gallery_public_id: str | None = None, asked_photo_by_photo: bool = False
) -> QuerySet[Photo]:
    """What a list of photos shows `acting_user`: every photo they may see, others' unlisted galleries left out;
    or, given a gallery's id, that gallery's photos if they may open it (someone's unlisted gallery too: they
    have its link). `gallery_public_id` is validated input: None for no gallery. Anything else that is not a
    gallery id is refused here rather than read as "no gallery", which would list every unlisted gallery.
    `asked_photo_by_photo`: see `_visible_photo_parts`."""
    include_unlisted, in_gallery = _photo_list_gallery(gallery_public_id)
    photos = photo_list_visible_to(
        acting_user, include_unlisted=include_unlisted, asked_photo_by_photo=asked_photo_by_photo
    )
    return photos.filter(in_gallery)


def photo_count_for_viewer(
    *,
    acting_user: UserOrAnonymous | None,
    gallery_public_id: str | None = None,
    narrow: Callable[[QuerySet[Photo]], QuerySet[Photo]] | None = None,
) -> int:
    """`narrow(photo_list_for_viewer(...)).count()`, in one statement that counts the visibility rule's parts
    apart and adds them up (UNION ALL): PostgreSQL then finds each part's photos by a join or an index, where the
    rule's OR had it test every photo against both. Without a gallery or `narrow`, the photos held by a visible
    gallery are counted from the placements alone (`_photo_count_visible`)."""
    if gallery_public_id is None and narrow is None:
        return _photo_count_visible(acting_user)
    include_unlisted, in_gallery = _photo_list_gallery(gallery_public_id)
    narrow = narrow or (lambda photos: photos)
    parts = [
        narrow(Photo.objects.filter(part, in_gallery)).order_by().values("pk")
        for part in _visible_photo_parts(acting_user, include_unlisted=include_unlisted)
    ]
    return _union_all(parts).count()


def _photo_count_visible(acting_user: UserOrAnonymous | None) -> int:
    """How many photos `acting_user` may see, others' unlisted galleries left out, from a statement compiled once
    per process (captioning.statements): `_photo_count_visible_query`."""
    signed_in = _signed_in(acting_user)
    count = statement(("photo count", signed_in), lambda: _photo_count_visible_query(_stand_in(signed_in)))
    return count.rows(stand_in_values(user=acting_user))[0]["count"]


def _photo_count_visible_query(user: UserOrAnonymous) -> QuerySet:
    """One row: the distinct photos of the placements in galleries `user` may see (an index, never the photos
    themselves; a photo in two of them counts once), plus `user`'s own photos held by no gallery. Testing each
    photo against the rule read all 10,000 of them: PostgreSQL's time for the count 8.8 -> 2.7 ms (fastest of 60,
    EXPLAIN ANALYZE, 10,000 photos)."""
    count = Func(F("photo_id"), function="COUNT", template="%(function)s(DISTINCT %(expressions)s)")
    if _signed_in(user):
        library = (
            Photo.objects.filter(_library_only_q(user, asked_photo_by_photo=True))
            .order_by()
            .annotate(count=Func(F("pk"), function="COUNT"))
            .values("count")
        )
        count = count + Subquery(library, output_field=IntegerField())
    visible_galleries = _visible_gallery_ids(user, include_unlisted=False, as_array=connection.vendor == "postgresql")
    held = GalleryPhoto.objects.filter(_in_galleries(visible_galleries)).order_by()
    return held.annotate(count=ExpressionWrapper(count, output_field=IntegerField())).values("count")


def _stand_in(signed_in: bool) -> UserOrAnonymous:
    return stand_in_user() if signed_in else AnonymousUser()


def _photo_list_gallery(gallery_public_id: str | None) -> tuple[bool, Q]:
    """(include_unlisted, the condition) of a photo list in one gallery, or in none (None)."""
    if gallery_public_id is None:
        return False, Q()
    if not re.fullmatch(GALLERY_PUBLIC_ID_PATTERN, gallery_public_id):
        raise ValueError(f"Not a gallery id: {gallery_public_id!r}; validate the input first.")
    return True, Q(galleries__public_id=gallery_public_id)


def photo_get_for_viewer(*, user: UserOrAnonymous | None, photo_uuid: uuid.UUID | str) -> Photo:
    """The photo behind a link, with its owner, if `user` may see it; Photo.DoesNotExist otherwise. From a
    statement compiled once per process (captioning.statements): building the visibility rule's queryset cost
    a photo's page a fifth of its time."""
    try:
        photo_uuid = photo_uuid if isinstance(photo_uuid, uuid.UUID) else uuid.UUID(str(photo_uuid))
    except ValueError:
        raise Photo.DoesNotExist(f"Not a photo's uuid: {photo_uuid!r}") from None
    signed_in = _signed_in(user)
    found = statement(
        ("photo for viewer", signed_in),
        lambda: photo_list_visible_to(_stand_in(signed_in), include_unlisted=True).filter(uuid=STAND_IN_UUID),
    ).instances(stand_in_values(user=user, uuid_value=photo_uuid))
    if not found:
        raise Photo.DoesNotExist("No such photo, or not one `user` may see.")
    return found[0]


def photo_list_selected(*, acting_user: UserOrAnonymous | None, photo_uuids: Iterable[uuid.UUID]) -> list[Photo]:
    """Those of the photos a visitor selected in a grid that they may see, in the order given (repeats once); the
    rest, unknown or not theirs to see, are simply absent."""
    order = list(dict.fromkeys(photo_uuids))
    # Behind links, as photo_get_for_viewer finds one: an unlisted gallery's photos too.
    visible = photo_list_visible_to(acting_user, include_unlisted=True).filter(uuid__in=order)
    found = {photo.uuid: photo for photo in visible}
    return [found[photo_uuid] for photo_uuid in order if photo_uuid in found]


GRID_ROW_FIELDS = ("id", "uuid", "owner_id", "original_filename", "status", "error_message", "taken_at", "created_at")


def photo_rows_for_gallery_grid(
    *, gallery_id: int, acting_user: UserOrAnonymous | None, offset: int, limit: int
) -> list[dict]:
    """`limit` photos from `offset` of a gallery's grid (the caller has checked the gallery is visible), newest
    first, as rows of GRID_ROW_FIELDS, with their current caption's `caption_id`, `caption_text`,
    `caption_confident` and its model's `model_name`, `model_is_active` and `model_trained_on` (None without
    one), and `can_manage` (`photo_can_manage`), from a statement compiled once per process
    (captioning.statements). Rows rather than photos: a model instance per photo, caption and model, and the
    prefetch that joined them, were most of the page's Python calls."""
    signed_in = _signed_in(acting_user)
    grid = statement(("gallery grid", signed_in), lambda: _gallery_grid_rows(_stand_in(signed_in)))
    return grid.rows(stand_in_values(user=acting_user, ids=[gallery_id]), limit=limit, offset=offset)


def _gallery_grid_rows(user: UserOrAnonymous) -> QuerySet:
    (gallery_id,) = stand_in_ids(1)
    current_caption = FilteredRelation("captions", condition=Q(captions__is_current=True))
    model = "current_caption__model_version"
    return (
        Photo.objects.filter(galleries=gallery_id)
        .annotate(
            current_caption=current_caption,
            can_manage=_manageable(user),
            model_trained_on=KeyTextTransform("trained_on", KeyTransform("training", f"{model}__config")),
        )
        .order_by(*PHOTO_LIST_ORDER)
        .values(
            *GRID_ROW_FIELDS,
            "can_manage",
            "model_trained_on",
            caption_id=F("current_caption__id"),
            caption_text=F("current_caption__text"),
            caption_confident=F("current_caption__confident"),
            model_name=F(f"{model}__name"),
            model_is_active=F(f"{model}__is_active"),
        )
    )


def _manageable(user: UserOrAnonymous | None) -> ExpressionWrapper | Value:
    """On photos: `photo_can_manage`'s rule, for a query."""
    if not _signed_in(user):
        return Value(False, output_field=BooleanField())
    held_by_own_gallery = Exists(GalleryPhoto.objects.filter(photo=OuterRef("pk"), gallery__owner=user))
    return ExpressionWrapper(Q(owner=user) | Q(held_by_own_gallery), output_field=BooleanField())


def photo_list_timeline(*, acting_user: AbstractBaseUser, include_shared: bool) -> QuerySet[Photo]:
    """The "All photos" timeline: the photos of `acting_user`'s library (uploaded by them or in their galleries)
    and, with `include_shared`, those of the galleries shared with them; the newest taken first (the EXIF date
    taken, else the upload time: `shown_at`). Within what they may see, by the one visibility rule."""
    if not _signed_in(acting_user):
        return Photo.objects.none()
    in_galleries = Q(gallery__owner=acting_user)
    if include_shared:
        in_galleries |= Q(gallery__in=GalleryMembership.objects.filter(user=acting_user).values("gallery_id"))
    library = Q(owner=acting_user) | Q(pk__in=GalleryPhoto.objects.filter(in_galleries).values("photo_id"))
    return (
        photo_list_visible_to(acting_user, include_unlisted=True)
        .filter(library)
        .annotate(shown_at=Coalesce("taken_at", "created_at"))
        .order_by("-shown_at", "-id")
        .prefetch_related(
            Prefetch("captions", queryset=Caption.objects.filter(is_current=True), to_attr="current_captions")
        )
    )


# The API's photo list reads its page as rows (dicts) rather than Photo instances: a model instance per photo, per
# caption, per caption's model and author and per gallery holding it was most of that list's Python calls.
PHOTO_ROW_FIELDS = (
    "id",
    "uuid",
    "owner_id",
    "owner__username",
    "original_filename",
    "status",
    "error_message",
    "attempts",
    "width",
    "height",
    "format",
    "byte_size",
    "taken_at",
    "created_at",
    "updated_at",
)
CAPTION_ROW_FIELDS = (
    "id",
    "text",
    "source",
    "model_version__name",
    "decoding",
    "score",
    "clip_score",
    "familiarity",
    "confident",
    "is_current",
    "created_by__username",
    "created_at",
    "review_state",
    "reviewed_by__username",
    "reviewed_at",
)
_CURRENT_CAPTION_FIELDS = {field: f"current_caption__{field}" for field in CAPTION_ROW_FIELDS}
_current_caption_values = operator.itemgetter(*_CURRENT_CAPTION_FIELDS.values())
PHOTO_LIST_ORDER = ("-created_at", "-id")  # newest first


def photo_rows(photos: QuerySet[Photo]) -> QuerySet:
    """`photos` as rows of PHOTO_ROW_FIELDS with their current caption's fields joined (a photo has one current
    caption at most), for `photo_rows_with_details` once a page of them is read."""
    current_caption = FilteredRelation("captions", condition=Q(captions__is_current=True))
    return photos.annotate(current_caption=current_caption).values(*PHOTO_ROW_FIELDS, *_CURRENT_CAPTION_FIELDS.values())


def photo_rows_for_viewer(
    *,
    acting_user: UserOrAnonymous | None,
    gallery_public_id: str | None = None,
    narrow: Callable[[QuerySet[Photo]], QuerySet[Photo]] | None = None,
    offset: int,
    limit: int,
) -> list[dict]:
    """`limit` photos from `offset` of `narrow(photo_list_for_viewer(...))`, newest first, as `photo_rows`. The
    list as most clients read it, without a gallery or `narrow`, from a statement compiled once per process
    (captioning.statements): building and compiling its query cost more than reading its rows."""
    if gallery_public_id is None and narrow is None:
        signed_in = _signed_in(acting_user)
        page = statement(
            ("photo rows", signed_in),
            lambda: photo_rows(
                photo_list_for_viewer(acting_user=_stand_in(signed_in), asked_photo_by_photo=True).order_by(
                    *PHOTO_LIST_ORDER
                )
            ),
        )
        return page.rows(stand_in_values(user=acting_user), limit=limit, offset=offset)
    photos = photo_list_for_viewer(acting_user=acting_user, gallery_public_id=gallery_public_id)
    if narrow is not None:
        photos = narrow(photos)
    return list(photo_rows(photos.order_by(*PHOTO_LIST_ORDER))[offset : offset + limit])


def photo_rows_visible_by_id(*, acting_user: UserOrAnonymous | None, photo_ids: list[int]) -> list[dict]:
    """Those of `photo_ids` that `acting_user` may see (`photo_list_visible_to`), as `photo_rows`, in no order;
    from a statement compiled once per thread and number of ids (captioning.statements)."""
    if not photo_ids:
        return []
    signed_in = _signed_in(acting_user)
    rows = statement(
        ("photo rows by id", signed_in, len(photo_ids)),
        lambda: photo_rows(
            photo_list_visible_to(_stand_in(signed_in)).filter(pk__in=stand_in_ids(len(photo_ids))).order_by()
        ),
    )
    return rows.rows(stand_in_values(user=acting_user, ids=photo_ids))


def photo_rows_with_details(rows: Iterable[dict], *, acting_user: UserOrAnonymous | None) -> list[dict]:
    """`rows` of `photo_rows`, each given what the API presents beside a photo, in one query for any number:
    `caption` (its current caption, a row of CAPTION_ROW_FIELDS, or None), `galleries` (the public_ids of the
    galleries holding it that `acting_user` may see listed, by title: `gallery_list_holding`) and `can_manage`
    (`photo_can_manage`)."""
    rows = list(rows)
    photo_ids = [row["id"] for row in rows]
    # Per photo: the galleries holding it that acting_user may see listed, and the owners of all those holding it.
    listed_holding: dict[int, list[str]] = {photo_id: [] for photo_id in photo_ids}
    holding_owner_ids: dict[int, list[int]] = {photo_id: [] for photo_id in photo_ids}
    if photo_ids:
        for gallery in _galleries_holding(photo_ids, acting_user):
            photo_id = gallery["placements__photo_id"]
            if gallery["listed"]:
                listed_holding[photo_id].append(gallery["public_id"])
            holding_owner_ids[photo_id].append(gallery["owner_id"])
    acting_user_id = acting_user.pk if _signed_in(acting_user) else None  # `_manages`, without a call per row
    for row in rows:
        row["caption"] = (
            None
            if row["current_caption__id"] is None
            else dict(zip(CAPTION_ROW_FIELDS, _current_caption_values(row), strict=True))
        )
        row["galleries"] = listed_holding[row["id"]]
        row["can_manage"] = acting_user_id is not None and (
            acting_user_id == row["owner_id"] or acting_user_id in holding_owner_ids[row["id"]]
        )
    return rows


def _galleries_holding(photo_ids: list[int], acting_user: UserOrAnonymous | None) -> list[dict]:
    """A row for each gallery holding each of `photo_ids`, by title: whether `acting_user` may see it listed. From
    a statement compiled once per process (captioning.statements); on PostgreSQL the ids are one array, so one
    statement serves any number of them (psycopg parsed a statement of more than 50 values anew on every run)."""
    signed_in = _signed_in(acting_user)
    if connection.vendor == "postgresql":
        (array_stand_in,) = stand_in_ids(1)
        holdings = statement(
            ("photo holdings", signed_in),
            lambda: _galleries_holding_query(
                _EqualsAny(F("placements__photo_id"), Value(array_stand_in)), _stand_in(signed_in)
            ),
        )
        return holdings.rows({**stand_in_values(user=acting_user), array_stand_in: photo_ids})
    holdings = statement(
        ("photo holdings", signed_in, len(photo_ids)),
        lambda: _galleries_holding_query(
            Q(placements__photo_id__in=stand_in_ids(len(photo_ids))), _stand_in(signed_in)
        ),
    )
    return holdings.rows(stand_in_values(user=acting_user, ids=photo_ids))


def _galleries_holding_query(holding: Q | Func, acting_user: UserOrAnonymous | None) -> QuerySet:
    return (
        Gallery.objects.filter(holding)
        .annotate(listed=_listed(acting_user))
        .order_by("title", "id")
        .values("placements__photo_id", "public_id", "owner_id", "listed")
    )


def _listed(acting_user: UserOrAnonymous | None) -> Case:
    """On galleries: whether `acting_user` may see each listed (someone's unlisted gallery is never named)."""
    return Case(
        When(_visible_gallery_q(acting_user, include_unlisted=False), then=Value(True)),
        default=Value(False),
        output_field=BooleanField(),
    )


def _manages(user: UserOrAnonymous | None, photo_owner_id: int, holding_owner_ids: Iterable[int]) -> bool:
    return _signed_in(user) and (user.pk == photo_owner_id or user.pk in holding_owner_ids)


def photo_can_manage(user: UserOrAnonymous | None, photo: Photo) -> bool:
    """Edit its caption, re-caption, retry, delete: the photo's owner and the owners of galleries holding it."""
    if not _signed_in(user):
        return False
    return user.pk == photo.owner_id or GalleryPhoto.objects.filter(photo=photo, gallery__owner=user).exists()


def photo_can_delete(user: UserOrAnonymous | None, photo: Photo) -> bool:
    """Deleting takes a photo out of every gallery, its owner's own albums too: the photo's owner's alone."""
    return _signed_in(user) and user.pk == photo.owner_id


def photo_sees_original(user: UserOrAnonymous | None, photo: Photo) -> bool:
    """The file as uploaded, metadata (GPS) included, is its owner's alone."""
    return _signed_in(user) and user.pk == photo.owner_id


def caption_current(photo: Photo) -> Caption | None:
    prefetched = getattr(photo, "current_captions", None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return photo.captions.filter(is_current=True).select_related("model_version").first()


def caption_list(caption_ids: list[int]) -> list[Caption]:
    """The captions with these ids, in their order."""
    found = Caption.objects.in_bulk(caption_ids)
    return [found[caption_id] for caption_id in caption_ids if caption_id in found]


def caption_history(photo: Photo) -> QuerySet[Caption]:
    return photo.captions.select_related("model_version", "created_by").order_by("-created_at", "-id")


def caption_history_list(photo: Photo) -> list[Caption]:
    """`caption_history(photo)`, from a statement compiled once per process (captioning.statements)."""
    history = statement(("caption history",), lambda: caption_history(Photo(pk=stand_in_ids(1)[0])))
    return history.instances(stand_in_values(ids=[photo.pk]))


def translation_get(*, caption: Caption, language: str) -> Translation | None:
    return Translation.objects.filter(caption=caption, language=language).first()


def translation_list(caption: Caption) -> list[Translation]:
    """`caption`'s translations, by language, from a statement compiled once per process."""
    translations = statement(("translations",), lambda: Translation.objects.filter(caption_id=stand_in_ids(1)[0]))
    return translations.instances(stand_in_values(ids=[caption.pk]))


def translation_map(captions: Iterable[Caption | int], language: str) -> dict[int, Translation]:
    """caption id -> its translation into `language`, for a page of captions (or their ids) at once."""
    return {
        translation.caption_id: translation
        for translation in Translation.objects.filter(caption__in=captions, language=language)
    }


def translation_languages_stored() -> list[str]:
    """The languages some caption has a finished translation in: all the picker offers when no translation
    service is configured."""
    return sorted(
        Translation.objects.filter(status=Translation.Status.DONE)
        .order_by()
        .values_list("language", flat=True)
        .distinct()
    )


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def model_version_list() -> QuerySet[ModelVersion]:
    return ModelVersion.objects.all()


def model_version_choices() -> tuple[tuple[int, str], ...]:
    """Each model's (id, name), in `model_version_list`'s order, from a statement compiled once per process."""
    choices = statement(("model version choices",), lambda: model_version_list().values("pk", "name"))
    return tuple((row["pk"], row["name"]) for row in choices.rows({}))


# Review and operations (the admin dashboard and the API's queue status) ----------------------------------


def caption_can_review(user: UserOrAnonymous | None) -> bool:
    """Staff who may change captions approve, reject and rewrite them in the review queue."""
    return _signed_in(user) and user.is_active and user.is_staff and user.has_perm("captioning.change_caption")


# Worst first: guesses about photos unlike the model's training images (confident is False), then lowest
# CLIPScore, then lowest model score; unscored ones (written by hand) last.
CAPTION_REVIEW_ORDER = (
    "confident",
    F("clip_score").asc(nulls_last=True),
    F("score").asc(nulls_last=True),
    "-created_at",
    "-id",
)


def caption_review_queue() -> QuerySet[Caption]:
    """Current captions, the worst first: guesses about photos unlike the model's training images, then lowest
    CLIPScore, then lowest model score; unscored ones (written by hand) last."""
    return (
        Caption.objects.filter(is_current=True)
        .select_related("photo", "photo__owner", "model_version", "created_by", "reviewed_by")
        .order_by(*CAPTION_REVIEW_ORDER)
    )


def queue_status(user: UserOrAnonymous | None) -> dict:
    """What the captioning and translation workers have to do, and have done.

    Everyone signed in sees the counts of their own photos they may still see and the length of the task queue;
    staff see every photo, the recent task failures and the throughput."""
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.models import Failure, Success

    staff = _signed_in(user) and user.is_staff
    # Your photos that you may still see: one left behind in a gallery you were removed from is its owner's
    # business now (whether it is re-captioned, fails or is translated).
    own_photos = photo_list_visible_to(user, include_unlisted=True).filter(owner=user)
    photos = Photo.objects.all() if staff else own_photos
    by_status = dict(photos.values_list("status").annotate(count=Count("pk")).order_by())
    translations = (
        Translation.objects.all() if staff else Translation.objects.filter(caption__photo__in=own_photos.values("pk"))
    )
    try:
        with transaction.atomic():  # the ORM broker asks the database; a failure must not spoil the caller's
            queued_tasks = get_broker().queue_size()
    except Exception:  # the broker is down: say so rather than fail the page
        logger.warning("could not read the task queue's length; the broker seems down", exc_info=True)
        queued_tasks = None
    status = {
        "photos": {state: by_status.get(state, 0) for state in Photo.Status.values},
        "translations_pending": translations.filter(status=Translation.Status.PENDING).count(),
        "queued_tasks": queued_tasks,
        "reviews_pending": None,
        "throughput": None,
        "recent_failures": None,
    }
    if staff:
        now = timezone.now()
        hour, day = now - timedelta(hours=1), now - timedelta(days=1)
        captions = Caption.objects.filter(source=Caption.Source.MODEL)
        status["reviews_pending"] = Caption.objects.filter(
            is_current=True, review_state=Caption.ReviewState.PENDING
        ).count()
        status["throughput"] = {
            "captions_last_hour": captions.filter(created_at__gte=hour).count(),
            "captions_last_day": captions.filter(created_at__gte=day).count(),
            "tasks_succeeded_last_hour": Success.objects.filter(stopped__gte=hour).count(),
            "tasks_failed_last_hour": Failure.objects.filter(stopped__gte=hour).count(),
        }
        status["recent_failures"] = [
            {"name": task.name, "func": task.func, "stopped": task.stopped, "result": str(task.result)[:500]}
            for task in Failure.objects.order_by("-stopped")[:10]
        ]
    return status


def caption_throughput_by_hour(*, hours: int = 24) -> list[dict]:
    """Captions the models wrote in each of the last `hours` hours, the oldest first (empty hours as 0)."""
    from datetime import timedelta

    from django.db.models.functions import TruncHour
    from django.utils import timezone

    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(hours=hours - 1)
    counts = dict(
        Caption.objects.filter(source=Caption.Source.MODEL, created_at__gte=start)
        .annotate(hour=TruncHour("created_at"))
        .values_list("hour")
        .annotate(count=Count("pk"))
        .order_by()
    )
    counts = {hour.replace(tzinfo=now.tzinfo) if hour.tzinfo is None else hour: count for hour, count in counts.items()}
    return [
        {"hour": start + timedelta(hours=step), "count": counts.get(start + timedelta(hours=step), 0)}
        for step in range(hours)
    ]
