"""Galleries, their photos, the captions a model wrote for them, and their translations.

Business rules live in services (writes) and selectors (reads); the models hold data and the database
constraints that must hold whatever code runs (one current caption per photo, a photo at most once in a gallery,
one translation per caption and language, one active model).

A photo belongs to its owner's library; galleries are albums that hold photos (GalleryPhoto, many-to-many).
"""

import secrets
import uuid

import numpy as np
from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse

# What new_public_id makes (URL-safe base64), and all a gallery id may ever be: input is checked against it
# before it can name a gallery.
GALLERY_PUBLIC_ID_PATTERN = r"[A-Za-z0-9_-]{1,16}"


def new_public_id() -> str:
    """An unguessable id for URLs: an unlisted gallery is as private as its link."""
    return secrets.token_urlsafe(9)


class ModelVersion(models.Model):
    """A captioning checkpoint the worker can run. At most one is active: new photos get its captions."""

    name = models.CharField(max_length=200, unique=True)
    checkpoint_path = models.CharField(max_length=1000, help_text="Directory holding config.json and model.safetensors")
    config = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # The checkpoint's familiarity reference (mlcore.familiarity.describe): its size and calibration; empty when
    # it has none (imported weights), and then its captions' familiarity is unknown.
    familiarity_reference = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model_version")
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("model-detail", kwargs={"model_version_id": self.pk})

    @property
    def clip_model(self) -> str:
        return str(self.config.get("clip_model", ""))

    @property
    def trained_on(self) -> str:
        return str(self.config.get("training", {}).get("trained_on", ""))

    @property
    def is_demo(self) -> bool:
        return "demo" in self.config.get("training", {})


class Gallery(models.Model):
    class Visibility(models.TextChoices):
        PRIVATE = "private", "Private — only you and members"
        UNLISTED = "unlisted", "Unlisted — anyone with the link"
        PUBLIC = "public", "Public — listed on Explore"

    public_id = models.CharField(max_length=16, unique=True, default=new_public_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="galleries")
    title = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, allow_unicode=True)
    description = models.TextField(blank=True)
    visibility = models.CharField(max_length=10, choices=Visibility.choices, default=Visibility.PRIVATE)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="GalleryMembership", related_name="shared_galleries", blank=True
    )
    # The photos this album holds: GalleryPhoto is the one record of which galleries hold a photo.
    photos = models.ManyToManyField("Photo", through="GalleryPhoto", related_name="galleries", blank=True)
    # The photo its owner chose for the gallery's card (one it holds); without one the first photo added is shown.
    cover_photo = models.ForeignKey("Photo", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name_plural = "galleries"
        indexes = [models.Index(fields=["visibility", "-updated_at"])]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return gallery_url(self.public_id, self.slug)


def gallery_url(public_id: str, slug: str) -> str:
    """A gallery's page (Gallery.get_absolute_url), for a gallery read as a row."""
    return reverse("gallery-detail", kwargs={"public_id": public_id, "slug": slug or "-"})


class GalleryMembership(models.Model):
    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer — sees the gallery"
        EDITOR = "editor", "Editor — also uploads photos"

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="gallery_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gallery", "user"], name="one_membership_per_user_and_gallery")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.gallery}"


def embedding_to_bytes(vector: np.ndarray) -> bytes:
    """How Photo.embedding stores a CLIP image embedding: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def embedding_from_bytes(stored: bytes | memoryview) -> np.ndarray:
    """The vector embedding_to_bytes stored (read-only: it shares the bytes' memory)."""
    return np.frombuffer(bytes(stored), dtype="<f4")


def photo_file_path(photo: "Photo", filename: str) -> str:
    """Every file of a photo in one folder named by its random uuid, never by the uploaded name."""
    return f"photos/{photo.owner_id}/{photo.uuid.hex}/{filename}"


class Photo(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        PROCESSING = "processing", "Captioning"
        CAPTIONED = "captioned", "Captioned"
        FAILED = "failed", "Failed"

    class FailureKind(models.TextChoices):
        """Why the last attempt failed (the message says it in words)."""

        NO_MODEL = "no_model", "No model is active"
        MODEL_UNUSABLE = "model_unusable", "The model is missing or cannot be used"
        BAD_SETTINGS = "bad_settings", "Invalid decoding settings"
        UNREADABLE_FILE = "unreadable_file", "The stored file cannot be read"
        ENGINE_ERROR = "engine_error", "The engine failed"
        ABANDONED = "abandoned", "The worker stopped too often"

    uuid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="photos")

    # The file as uploaded, metadata included: served to its owner only.
    original = models.FileField(upload_to=photo_file_path, max_length=500)
    original_filename = models.CharField(max_length=255, blank=True)
    # Derivatives: EXIF orientation applied, no metadata (no GPS). What everyone else gets.
    display_image = models.FileField(upload_to=photo_file_path, max_length=500)
    thumbnail = models.FileField(upload_to=photo_file_path, max_length=500)
    sha256 = models.CharField(max_length=64)
    byte_size = models.PositiveBigIntegerField()
    width = models.PositiveIntegerField(help_text="After EXIF orientation")
    height = models.PositiveIntegerField(help_text="After EXIF orientation")
    format = models.CharField(max_length=10)
    taken_at = models.DateTimeField(null=True, blank=True)
    has_location = models.BooleanField(
        default=False, help_text="The original carries GPS data (shown to its owner only)"
    )

    # Raw (unnormalised) CLIP image embedding (embedding_to_bytes), and the model version whose
    # CLIP made it: search embeds a query with that same CLIP, and a re-caption by that model reuses it.
    embedding = models.BinaryField(null=True, blank=True, editable=False)
    embedding_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="embedded_photos"
    )

    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    error_message = models.TextField(blank=True)
    # Set with error_message (captioning.jobs writes both), empty when there is none.
    failure_kind = models.CharField(max_length=20, choices=FailureKind.choices, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    # Set when a worker claims the photo and renewed by its heartbeat; older than CAPTION_LEASE_SECONDS: abandoned.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(null=True, blank=True)
    # After a failed attempt, not claimed again before this time.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # What the next captioning run uses: null means the active model and the default decoding.
    requested_model = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="requested_photos"
    )
    requested_decoding = models.JSONField(default=dict, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        # No unique (owner, sha256): an owner's earlier copy of a file may sit only in a gallery they have left,
        # which they may no longer see, and then a new upload of it is a new photo (services.photos.photo_upload).
        indexes = [
            models.Index(fields=["owner", "sha256"]),
            models.Index(fields=["status", "claimed_at"]),
            # The lists' order: newest first across galleries (the API's photo list) walks this, not a sort.
            models.Index(fields=["-created_at", "-id"], name="photo_newest_first"),
            # Search keeps an in-memory matrix per model version fresh by asking what changed since (count, max).
            models.Index(fields=["embedding_model", "updated_at"]),
            # The API's photo count finds a user's photos held by no gallery from this index alone, not the rows.
            models.Index(fields=["owner", "id"], name="photo_owner_and_id"),
        ]

    def __str__(self) -> str:
        return self.original_filename or str(self.uuid)

    def get_absolute_url(self) -> str:
        return reverse("photo-detail", kwargs={"photo_uuid": self.uuid})

    def embedding_vector(self) -> np.ndarray | None:
        if self.embedding is None:
            return None
        return embedding_from_bytes(self.embedding)

    @property
    def storage_names(self) -> list[str]:
        return [name for name in (self.original.name, self.display_image.name, self.thumbnail.name) if name]


class GalleryPhoto(models.Model):
    """A gallery holds a photo: who put it there and when. Removing it from the gallery leaves the photo in its
    owner's library; deleting the photo removes it from every gallery."""

    gallery = models.ForeignKey(Gallery, on_delete=models.CASCADE, related_name="placements")
    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="placements")
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["gallery", "photo"], name="a_photo_once_per_gallery")]
        # A gallery's first photo, its cover unless one is chosen (selectors.gallery_list_with_covers), read from
        # the index's first entry: without it PostgreSQL joined the gallery's placements to every photo and sorted
        # them (15 ms of the home page at 10,000 photos; 0.15 ms with it).
        indexes = [
            models.Index(fields=["gallery", "added_at", "id"], name="galleryphoto_first_added"),
            # Whether a photo is in a gallery one may open, asked photo by photo down the API's page (selectors.
            # _visible_photo_parts), read from this index alone.
            models.Index(fields=["photo", "gallery"], name="galleryphoto_by_photo"),
        ]

    def __str__(self) -> str:
        return f"{self.photo} in {self.gallery}"


class Caption(models.Model):
    """One caption a photo had. The history is kept; exactly one per captioned photo is current."""

    class Source(models.TextChoices):
        MODEL = "model", "Model"
        EDITED = "edited", "Edited by hand"

    class ReviewState(models.TextChoices):
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EDITED = "edited", "Edited in review"

    photo = models.ForeignKey(Photo, on_delete=models.CASCADE, related_name="captions")
    text = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MODEL)
    model_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="captions"
    )
    decoding = models.JSONField(default=dict, blank=True)
    score = models.FloatField(null=True, blank=True, help_text="Model score: mean log-probability, higher is better")
    clip_score = models.FloatField(
        null=True,
        blank=True,
        help_text="CLIPScore of the caption against its photo (2.5 * max(cosine, 0), from 0 to 2.5): how well the text "
        "matches the image in the model's own CLIP; the review queue shows the lowest first",
    )
    familiarity = models.FloatField(
        null=True,
        blank=True,
        help_text="How close the photo is to the model's training images (mean cosine to the nearest ones in its "
        "reference sample, 0 to 1); null when the model has no reference sample or a person wrote the caption",
    )
    confident = models.BooleanField(
        default=True,
        help_text="False when the photo is unlike anything the model was trained on: the caption is a guess, never "
        "alt text, first in the review queue and ranked below confident matches in search",
    )
    is_current = models.BooleanField(default=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Staff review (the admin's review queue): who approved, rejected or rewrote the caption, and when.
    review_state = models.CharField(max_length=10, choices=ReviewState.choices, default=ReviewState.PENDING)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["photo"], condition=Q(is_current=True), name="one_current_caption_per_photo"
            )
        ]
        indexes = [models.Index(fields=["is_current", "review_state", "clip_score"])]

    def __str__(self) -> str:
        return self.text


class Translation(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Translating"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    caption = models.ForeignKey(Caption, on_delete=models.CASCADE, related_name="translations")
    language = models.CharField(max_length=10)
    text = models.TextField(blank=True)
    provider = models.CharField(max_length=20, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["language"]
        constraints = [
            models.UniqueConstraint(fields=["caption", "language"], name="one_translation_per_caption_and_language")
        ]

    def __str__(self) -> str:
        return f"{self.language}: {self.text or self.status}"


class RequestBudget(models.Model):
    """One API client's request budget (captioning.request_rates): the time at which it will have spent all of
    it. One row per client whatever its rate; on PostgreSQL an unlogged table (migration 0011), so counting a
    request waits for no disk: the counts are lost in a crash, and every client starts with a full budget."""

    key = models.CharField(max_length=200, primary_key=True)
    spent_until = models.FloatField(help_text="Seconds since the epoch")

    def __str__(self) -> str:
        return self.key


class CaptionReview(Caption):
    """The admin's review queue: current captions, worst first (a proxy: same table as Caption)."""

    class Meta:
        proxy = True
        verbose_name = "caption to review"
        verbose_name_plural = "caption review queue"


class CaptioningActivity(Photo):
    """The admin's page on the worker queue, its failures and throughput (a proxy: no table of its own)."""

    class Meta:
        proxy = True
        verbose_name = "captioning activity"
        verbose_name_plural = "captioning queue and throughput"
