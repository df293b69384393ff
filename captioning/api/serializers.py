"""What the API reads and writes. Output serializers only present; input serializers only check shapes (the
rules are in the services)."""

import datetime
from collections.abc import Iterable
from datetime import tzinfo

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from captioning import selectors
from captioning.decoding import NUMBER_LIMITS, STRATEGIES
from captioning.links import PhotoLinks
from captioning.models import Caption, Gallery, GalleryMembership, ModelVersion, Photo, Translation, gallery_url
from captioning.search.results import SearchHit

# Output --------------------------------------------------------------------------------------------------


# The lists present rows by hand, field by field as DRF's generic code would (tests/api/test_presentation.py
# compares the two on varied rows): DRF spends about a thousand Python calls per photo, and a profile of the photo
# list put 64% of its time in building a CaptionSerializer per photo. The serializers stay the schema.


def _datetime(value, zone: tzinfo | None = None) -> str | None:
    """What DRF's DateTimeField writes (ISO 8601 in the current time zone, `zone` when a list passes it, UTC as
    "Z") without its per-call settings look-ups, a tenth of the photo list's time."""
    if value is None:
        return None
    zone = zone or timezone.get_current_timezone()
    text = (value if value.tzinfo is zone else value.astimezone(zone)).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _row(instance, fields: Iterable[str]) -> dict:
    """What `.values(*fields)` reads, from an instance already read (through a null foreign key: None)."""
    row = {}
    for field in fields:
        value = instance
        for name in field.split("__"):
            value = None if value is None else getattr(value, name)
        row[field] = value
    return row


class GalleryCoverSerializer(serializers.Serializer):
    id = serializers.UUIDField(help_text="The cover photo's id")
    thumbnail = serializers.CharField(help_text="Its thumbnail's address")


class GallerySerializer(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username", read_only=True)
    role = serializers.SerializerMethodField(help_text="Your role: owner, editor, viewer, or null")
    url = serializers.CharField(source="get_absolute_url", read_only=True, help_text="The gallery's page")
    # Unicode letters allowed: not the ASCII-only pattern a SlugField would put in the schema.
    slug = serializers.CharField(read_only=True)
    cover = serializers.SerializerMethodField(
        help_text="The photo on the gallery's card: the one its owner chose, else the first uploaded; null if empty"
    )

    class Meta:
        model = Gallery
        fields = [
            "public_id",
            "title",
            "slug",
            "description",
            "visibility",
            "owner",
            "role",
            "url",
            "cover",
            "created_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=["owner", "editor", "viewer"], allow_null=True))
    def get_role(self, gallery: Gallery) -> str | None:
        roles = self.context.get("roles")
        if roles is not None:
            return roles.get(gallery.pk)
        return selectors.gallery_role(self.context["request"].user, gallery)

    @extend_schema_field(GalleryCoverSerializer(allow_null=True))
    def get_cover(self, gallery: Gallery) -> dict | None:
        return _cover(self._cover_uuid(gallery), self.__dict__.setdefault("_links", PhotoLinks()))

    def to_representation(self, gallery: Gallery) -> dict:
        row = {**_row(gallery, selectors.GALLERY_ROW_FIELDS), "cover_uuid": self._cover_uuid(gallery)}
        links = self.__dict__.setdefault("_links", PhotoLinks())
        return gallery_row_representation(row, self.get_role(gallery), links)

    @staticmethod
    def _cover_uuid(gallery: Gallery):
        # A list's galleries come with their covers (selectors.gallery_list_with_covers); one gallery is asked.
        return gallery.cover_uuid if hasattr(gallery, "cover_uuid") else selectors.gallery_cover_uuid(gallery)


def gallery_rows_representation(rows: Iterable[dict], roles: dict[int, str]) -> list[dict]:
    """GallerySerializer(many=True).data from rows of selectors.gallery_rows_for_viewer and the viewer's `roles`
    (selectors.gallery_roles_by_id): the API's gallery list."""
    links = PhotoLinks()
    return [gallery_row_representation(row, roles.get(row["id"]), links) for row in rows]


def gallery_row_representation(row: dict, role: str | None, links: PhotoLinks) -> dict:
    """GallerySerializer's fields from a row of selectors.GALLERY_ROW_FIELDS and its `cover_uuid`."""
    return {
        "public_id": str(row["public_id"]),
        "title": str(row["title"]),
        "slug": str(row["slug"]),
        "description": str(row["description"]),
        "visibility": str(row["visibility"]),
        "owner": str(row["owner__username"]),
        "role": role,
        "url": gallery_url(row["public_id"], row["slug"]),
        "cover": _cover(row["cover_uuid"], links),
        "created_at": _datetime(row["created_at"]),
    }


def _cover(cover_uuid, links: PhotoLinks) -> dict | None:
    return (
        None if cover_uuid is None else {"id": str(cover_uuid), "thumbnail": links.url("photo-thumbnail", cover_uuid)}
    )


class MemberSerializer(serializers.ModelSerializer):
    user_id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = GalleryMembership
        fields = ["user_id", "username", "role", "created_at"]
        read_only_fields = fields


class CaptionSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.name", allow_null=True, read_only=True, default=None)
    created_by = serializers.CharField(source="created_by.username", allow_null=True, read_only=True, default=None)
    reviewed_by = serializers.CharField(source="reviewed_by.username", allow_null=True, read_only=True, default=None)

    class Meta:
        model = Caption
        fields = [
            "id",
            "text",
            "source",
            "model_version",
            "decoding",
            "score",
            "clip_score",
            "familiarity",
            "confident",
            "is_current",
            "created_by",
            "created_at",
            "review_state",
            "reviewed_by",
            "reviewed_at",
        ]
        read_only_fields = fields


def caption_representation(caption: Caption) -> dict:
    """CaptionSerializer(caption).data, without its per-field machinery."""
    return caption_row_representation(_row(caption, selectors.CAPTION_ROW_FIELDS), timezone.get_current_timezone())


def caption_row_representation(caption: dict, zone: tzinfo) -> dict:
    """CaptionSerializer's fields from a row of selectors.CAPTION_ROW_FIELDS."""
    score, clip_score, familiarity = caption["score"], caption["clip_score"], caption["familiarity"]
    reviewed_at = caption["reviewed_at"]
    return {
        "id": caption["id"],
        "text": str(caption["text"]),
        "source": str(caption["source"]),
        "model_version": caption["model_version__name"],
        "decoding": caption["decoding"],
        "score": None if score is None else float(score),
        "clip_score": None if clip_score is None else float(clip_score),
        "familiarity": None if familiarity is None else float(familiarity),
        "confident": bool(caption["confident"]),
        "is_current": bool(caption["is_current"]),
        "created_by": caption["created_by__username"],
        "created_at": _datetime(caption["created_at"], zone),
        "review_state": str(caption["review_state"]),
        "reviewed_by": caption["reviewed_by__username"],
        "reviewed_at": None if reviewed_at is None else _datetime(reviewed_at, zone),
    }


class PhotoUrlsSerializer(serializers.Serializer):
    page = serializers.CharField()
    thumbnail = serializers.CharField()
    image = serializers.CharField()
    original = serializers.CharField(help_text="The uploaded file for its owner; a copy without metadata otherwise")


# PhotoUrlsSerializer's fields: the URL name of each.
_PHOTO_URL_NAMES = (
    ("page", "photo-detail"),
    ("thumbnail", "photo-thumbnail"),
    ("image", "photo-image"),
    ("original", "photo-original"),
)


class PhotoSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="uuid", read_only=True)
    galleries = serializers.SerializerMethodField(
        help_text="The public_ids of the galleries holding the photo that you may see listed (someone's unlisted "
        "gallery is never named); empty for a photo in no gallery, which only its owner sees"
    )
    owner = serializers.CharField(source="owner.username", read_only=True)
    error = serializers.CharField(source="error_message", read_only=True)
    caption = serializers.SerializerMethodField()
    urls = serializers.SerializerMethodField()
    can_manage = serializers.SerializerMethodField(help_text="You may edit, re-caption, retry and delete it")

    class Meta:
        model = Photo
        fields = [
            "id",
            "galleries",
            "owner",
            "original_filename",
            "status",
            "error",
            "attempts",
            "width",
            "height",
            "format",
            "byte_size",
            "taken_at",
            "created_at",
            "updated_at",
            "caption",
            "urls",
            "can_manage",
        ]
        read_only_fields = fields

    def get_galleries(self, photo: Photo) -> list[str]:
        return [
            str(gallery.public_id) for gallery in selectors.gallery_list_holding(photo, self.context["request"].user)
        ]

    @extend_schema_field(CaptionSerializer(allow_null=True))
    def get_caption(self, photo: Photo) -> dict | None:
        caption = selectors.caption_current(photo)
        return caption_representation(caption) if caption else None

    @extend_schema_field(PhotoUrlsSerializer)
    def get_urls(self, photo: Photo) -> dict:
        # The serializer of a list presents every row: the addresses are resolved once for all of them.
        return self.__dict__.setdefault("_links", PhotoLinks()).urls(photo.uuid, _PHOTO_URL_NAMES)

    def get_can_manage(self, photo: Photo) -> bool:
        return selectors.photo_can_manage(self.context["request"].user, photo)

    def to_representation(self, photo: Photo) -> dict:
        caption = selectors.caption_current(photo)
        row = {
            **_row(photo, selectors.PHOTO_ROW_FIELDS),
            "caption": None if caption is None else _row(caption, selectors.CAPTION_ROW_FIELDS),
            "galleries": self.get_galleries(photo),
            "can_manage": self.get_can_manage(photo),
        }
        links = self.__dict__.setdefault("_links", PhotoLinks())
        return photo_row_representation(row, links, timezone.get_current_timezone())


def photo_rows_representation(rows: Iterable[dict]) -> list[dict]:
    """PhotoSerializer(many=True).data from rows of selectors.photo_rows_with_details: the API's photo list."""
    links, zone = PhotoLinks(), _same_zone_as_read(timezone.get_current_timezone())
    return [photo_row_representation(row, links, zone) for row in rows]


def _same_zone_as_read(zone: tzinfo) -> tzinfo:
    """`zone`, or the very zone the database's timestamps are read in when it is UTC too (ZoneInfo("UTC") and
    datetime.UTC write alike): `_datetime` then writes them without converting each."""
    return datetime.UTC if zone.utcoffset(None) == datetime.timedelta(0) and str(zone) in ("UTC", "Etc/UTC") else zone


def photo_row_representation(row: dict, links: PhotoLinks, zone: tzinfo) -> dict:
    """PhotoSerializer's fields from a row of selectors.photo_rows_with_details."""
    photo_uuid = str(row["uuid"])
    caption, taken_at = row["caption"], row["taken_at"]
    return {
        "id": photo_uuid,
        "galleries": list(map(str, row["galleries"])),
        "owner": str(row["owner__username"]),
        "original_filename": str(row["original_filename"]),
        "status": str(row["status"]),
        "error": str(row["error_message"]),
        "attempts": int(row["attempts"]),
        "width": int(row["width"]),
        "height": int(row["height"]),
        "format": str(row["format"]),
        "byte_size": int(row["byte_size"]),
        "taken_at": None if taken_at is None else _datetime(taken_at, zone),
        "created_at": _datetime(row["created_at"], zone),
        "updated_at": _datetime(row["updated_at"], zone),
        "caption": None if caption is None else caption_row_representation(caption, zone),
        "urls": links.urls(photo_uuid, _PHOTO_URL_NAMES),
        "can_manage": bool(row["can_manage"]),
    }


class UploadResultSerializer(serializers.Serializer):
    filename = serializers.CharField()
    outcome = serializers.ChoiceField(
        choices=["uploaded", "added", "duplicate", "refused"],
        help_text="uploaded: a new photo; added: your photo of these very bytes, now also in this gallery; "
        "duplicate: your photo of these very bytes, already in this gallery; refused: not an accepted image",
    )
    error = serializers.CharField(allow_null=True)
    photo = PhotoSerializer(allow_null=True)


class UploadResultsSerializer(serializers.Serializer):
    results = UploadResultSerializer(many=True)


class SelectionResultSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    outcome = serializers.ChoiceField(choices=["queued", "deleted", "forbidden"])
    message = serializers.CharField(help_text="Why it was refused; empty otherwise")


class SelectionResultsSerializer(serializers.Serializer):
    results = SelectionResultSerializer(many=True, help_text="One per photo you may see, in the order sent")
    not_found = serializers.IntegerField(help_text="How many ids name no photo you may see (never which)")


class TranslationSerializer(serializers.ModelSerializer):
    error = serializers.CharField(source="error_message", read_only=True)
    caption_id = serializers.IntegerField(read_only=True)

    class Meta:
        model = Translation
        fields = ["caption_id", "language", "text", "status", "provider", "error", "updated_at"]
        read_only_fields = fields


class ModelVersionSerializer(serializers.ModelSerializer):
    clip_model = serializers.CharField(read_only=True)
    trained_on = serializers.CharField(read_only=True, help_text="What it was trained on, in words; blank if unknown")
    familiarity_reference = serializers.JSONField(
        read_only=True,
        help_text="Its sample of training embeddings (size, threshold, calibration); empty when it has none and its "
        "captions' familiarity is null",
    )

    class Meta:
        model = ModelVersion
        fields = [
            "id",
            "name",
            "clip_model",
            "trained_on",
            "is_active",
            "metrics",
            "familiarity_reference",
            "created_at",
        ]
        read_only_fields = fields


class ThroughputSerializer(serializers.Serializer):
    captions_last_hour = serializers.IntegerField()
    captions_last_day = serializers.IntegerField()
    tasks_succeeded_last_hour = serializers.IntegerField()
    tasks_failed_last_hour = serializers.IntegerField()


class TaskFailureSerializer(serializers.Serializer):
    name = serializers.CharField()
    func = serializers.CharField()
    stopped = serializers.DateTimeField()
    result = serializers.CharField()


class QueueStatusSerializer(serializers.Serializer):
    photos = serializers.DictField(
        child=serializers.IntegerField(), help_text="Photos by status: yours, or every photo for staff"
    )
    translations_pending = serializers.IntegerField()
    queued_tasks = serializers.IntegerField(allow_null=True, help_text="Tasks waiting in the broker; null if down")
    reviews_pending = serializers.IntegerField(allow_null=True, help_text="Staff only")
    throughput = ThroughputSerializer(allow_null=True, help_text="Staff only")
    recent_failures = TaskFailureSerializer(many=True, allow_null=True, help_text="Staff only")


class SearchHitSerializer(PhotoSerializer):
    score = serializers.FloatField(source="search_hit.score", read_only=True, help_text="Fused rank score")
    image_similarity = serializers.FloatField(
        source="search_hit.image_similarity",
        allow_null=True,
        read_only=True,
        help_text="Cosine between the query's and the photo's CLIP embeddings",
    )
    text_match = serializers.FloatField(
        source="search_hit.text_match",
        allow_null=True,
        read_only=True,
        help_text="Share of the query's words in the caption or a translation (+1 for the whole phrase)",
    )

    class Meta(PhotoSerializer.Meta):
        fields = [*PhotoSerializer.Meta.fields, "score", "image_similarity", "text_match"]
        read_only_fields = fields


def search_hit_rows_representation(rows: Iterable[dict]) -> list[dict]:
    """SearchHitSerializer(many=True).data from the rows of a page of search results (SearchResults): the
    photo as the photo list presents it, and its `search_hit`."""
    links, zone = PhotoLinks(), timezone.get_current_timezone()
    return [{**photo_row_representation(row, links, zone), **_hit_representation(row["search_hit"])} for row in rows]


def _hit_representation(hit: SearchHit) -> dict:
    return {
        "score": float(hit.score),
        "image_similarity": None if hit.image_similarity is None else float(hit.image_similarity),
        "text_match": None if hit.text_match is None else float(hit.text_match),
    }


class GalleryPhotoResultSerializer(serializers.Serializer):
    photo = serializers.UUIDField(help_text="The photo id sent")
    outcome = serializers.ChoiceField(
        choices=["added", "already_in_gallery", "removed", "not_in_gallery", "not_found"],
        help_text="not_found: no photo of yours that you may see has this id (someone else's photo is not found "
        "either: only a photo's owner adds it to a gallery)",
    )


class GalleryPhotoResultsSerializer(serializers.Serializer):
    results = GalleryPhotoResultSerializer(many=True)


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


# Input ---------------------------------------------------------------------------------------------------


class GalleryInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    visibility = serializers.ChoiceField(choices=Gallery.Visibility.choices, default=Gallery.Visibility.PRIVATE)


class MemberInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    role = serializers.ChoiceField(choices=GalleryMembership.Role.choices, default=GalleryMembership.Role.VIEWER)


class PhotoIdField(serializers.UUIDField):
    """A photo's id as the API writes it: a string (DRF's UUIDField would also read 42 as a uuid)."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid", value=data)
        return super().to_internal_value(data)


class GalleryPhotosInputSerializer(serializers.Serializer):
    photos = serializers.ListField(
        child=PhotoIdField(),
        min_length=1,
        max_length=500,
        help_text="Photo ids (their `id`), at most 500",
    )


class UploadInputSerializer(serializers.Serializer):
    gallery = serializers.CharField(max_length=16, help_text="The gallery's public_id")
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True, use_url=False),
        allow_empty=False,
        min_length=1,
        help_text="One or many image files (JPEG, PNG, WebP, GIF; HEIC with pillow-heif)",
    )


class CaptionEditInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=1000)


def _decoding_field(name: str) -> serializers.Field:
    """An input field for one of the numeric decoding settings, within its limits (captioning.decoding)."""
    limit = NUMBER_LIMITS[name]
    field_class = serializers.IntegerField if limit.kind is int else serializers.FloatField
    return field_class(min_value=limit.minimum, max_value=limit.maximum, required=False)


class DecodingInputSerializer(serializers.Serializer):
    strategy = serializers.ChoiceField(choices=list(STRATEGIES), required=False)
    beam_size = _decoding_field("beam_size")
    max_length = _decoding_field("max_length")
    temperature = _decoding_field("temperature")
    top_p = _decoding_field("top_p")
    top_k = _decoding_field("top_k")
    length_normalization = _decoding_field("length_normalization")
    seed = _decoding_field("seed")


class RecaptionInputSerializer(serializers.Serializer):
    model_version = serializers.IntegerField(
        required=False, allow_null=True, help_text="A model version's id; null or absent for the active model"
    )
    decoding = DecodingInputSerializer(required=False)


class PhotoSelectionInputSerializer(serializers.Serializer):
    photos = serializers.ListField(
        child=serializers.UUIDField(), min_length=1, help_text="Photo ids (a repeated id counts once)"
    )


class SelectionRecaptionInputSerializer(PhotoSelectionInputSerializer, RecaptionInputSerializer):
    pass


class TranslationInputSerializer(serializers.Serializer):
    language = serializers.CharField(max_length=10, help_text="One of CAPTION_LANGUAGES, e.g. fr")
    retry = serializers.BooleanField(default=False, help_text="Try a failed translation again")


class SearchInputSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=200, help_text="Words to find in captions, or a description of the image")


class TokenInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, style={"input_type": "password"}, trim_whitespace=False)
