import contextlib
import enum
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from captioning import jobs
from captioning.decoding import decoding_settings
from captioning.images import UploadRefused, inspect_upload, render_derivative
from captioning.models import Caption, Gallery, GalleryPhoto, ModelVersion, Photo, photo_file_path
from captioning.selectors import gallery_can_upload, photo_can_delete, photo_can_manage, photo_list_addable

logger = logging.getLogger(__name__)


class UploadResult(enum.StrEnum):
    UPLOADED = "uploaded"  # a new photo
    ADDED = "added"  # the uploader's photo of these very bytes, now also in this gallery
    DUPLICATE = "duplicate"  # the uploader's photo of these very bytes, already in this gallery


@dataclass(frozen=True)
class UploadOutcome:
    photo: Photo
    result: UploadResult


def photo_upload(*, acting_user: AbstractBaseUser, gallery: Gallery, file: File, filename: str = "") -> UploadOutcome:
    """Checks the file by decoding it, stores it with its derivatives and queues it for captioning.

    Raises UploadRefused (the file is not accepted: nothing was written) or PermissionDenied. Bytes the uploader
    has in their library already are not stored twice: that photo is added to this gallery (or already is in
    it). Only a photo the uploader may see now counts (a duplicate must never name a photo, gallery or caption
    they may no longer see): one left only in a gallery they have left is not theirs to reach, and these bytes
    become a new photo. Any failure after the first file is written removes every file written and the rows,
    so nothing of a failed upload stays behind.
    """
    if not gallery_can_upload(acting_user, gallery):
        raise PermissionDenied("You cannot upload photos to this gallery.")
    inspected = inspect_upload(_read_at_most(file, settings.UPLOAD_MAX_BYTES))
    if _known_outcome(acting_user, gallery, inspected.sha256) is not None:
        with transaction.atomic():
            known = _record_known(acting_user, gallery, inspected.sha256)
        if known is not None:
            return known

    photo = Photo(
        owner=acting_user,
        original_filename=os.path.basename(filename or getattr(file, "name", "") or "")[:255],
        sha256=inspected.sha256,
        byte_size=len(inspected.content),
        width=inspected.width,
        height=inspected.height,
        format=inspected.format,
        taken_at=inspected.taken_at,
        has_location=inspected.has_location,
    )
    written: list[str] = []

    def store(field: FieldFile, name: str, content: bytes) -> None:
        stored_name = default_storage.save(photo_file_path(photo, name), ContentFile(content))
        written.append(stored_name)
        field.name = stored_name

    # Image work before the transaction: on SQLite a transaction holds the whole database's write lock from its
    # start (settings: IMMEDIATE), and every other writer waits for it.
    display_image = render_derivative(inspected.upright, settings.DISPLAY_IMAGE_SIZE, 88)
    thumbnail = render_derivative(inspected.upright, settings.THUMBNAIL_SIZE, 80)
    try:
        with transaction.atomic():
            # The same bytes may have arrived in another request meanwhile.
            known = _record_known(acting_user, gallery, inspected.sha256)
            if known is not None:
                return known
            store(photo.original, f"original.{inspected.extension}", inspected.content)
            store(photo.display_image, "display.webp", display_image)
            store(photo.thumbnail, "thumbnail.webp", thumbnail)
            jobs.queue_new_photo(photo)
            photo.save()
            _add_to_gallery(gallery, [photo], acting_user)
    except BaseException:
        _delete_files(written)
        raise
    return UploadOutcome(photo, UploadResult.UPLOADED)


def _known_outcome(acting_user: AbstractBaseUser, gallery: Gallery, sha256: str) -> UploadOutcome | None:
    """The uploader's photo of these bytes that they may see now: already in `gallery` (a duplicate), else the
    oldest elsewhere (to be added); None when there is none."""
    same_bytes = photo_list_addable(acting_user).filter(sha256=sha256)
    in_gallery = same_bytes.filter(pk__in=GalleryPhoto.objects.filter(gallery=gallery).values("photo_id")).first()
    if in_gallery is not None:
        return UploadOutcome(in_gallery, UploadResult.DUPLICATE)
    elsewhere = same_bytes.order_by("created_at", "id").first()
    return UploadOutcome(elsewhere, UploadResult.ADDED) if elsewhere is not None else None


def _record_known(acting_user: AbstractBaseUser, gallery: Gallery, sha256: str) -> UploadOutcome | None:
    """Under the gallery's lock (in the caller's transaction): the known photo's outcome, added to the gallery when
    it was elsewhere."""
    _lock_gallery(gallery)
    known = _known_outcome(acting_user, gallery, sha256)
    if known is not None and known.result == UploadResult.ADDED:
        _add_to_gallery(gallery, [known.photo], acting_user)
    return known


def _lock_gallery(gallery: Gallery) -> None:
    """Holds the gallery's row until the transaction ends, so that additions to one gallery happen one at a time
    (on SQLite every write transaction is one at a time already)."""
    list(Gallery.objects.select_for_update().filter(pk=gallery.pk).values_list("pk"))


def _add_to_gallery(gallery: Gallery, photos: list[Photo], acting_user: AbstractBaseUser) -> None:
    GalleryPhoto.objects.bulk_create(
        [GalleryPhoto(gallery=gallery, photo=photo, added_by=acting_user) for photo in photos]
    )
    Gallery.objects.filter(pk=gallery.pk).update(updated_at=timezone.now())


class AlbumResult(enum.StrEnum):
    ADDED = "added"
    ALREADY_IN_GALLERY = "already_in_gallery"
    REMOVED = "removed"
    NOT_IN_GALLERY = "not_in_gallery"
    NOT_FOUND = "not_found"  # no such photo, or none the acting user may add: which of the two is not said


def photo_gallery_add(
    *, gallery: Gallery, photo_uuids: Iterable[uuid.UUID], acting_user: AbstractBaseUser
) -> dict[uuid.UUID, AlbumResult]:
    """Adds photos of `acting_user`'s library to `gallery` (they must be allowed to upload to it). Only the
    photo's owner adds it, and only a photo they may see now: adding someone else's photo to a public gallery
    would publish it. Each id gets its outcome, in the order given."""
    if not gallery_can_upload(acting_user, gallery):
        raise PermissionDenied("You cannot add photos to this gallery.")
    wanted = list(dict.fromkeys(photo_uuids))
    with transaction.atomic():
        _lock_gallery(gallery)
        addable = {photo.uuid: photo for photo in photo_list_addable(acting_user).filter(uuid__in=wanted)}
        held = set(
            GalleryPhoto.objects.filter(gallery=gallery, photo__uuid__in=addable).values_list("photo__uuid", flat=True)
        )
        new = [photo for photo_uuid, photo in addable.items() if photo_uuid not in held]
        if new:
            _add_to_gallery(gallery, new, acting_user)
    return {
        photo_uuid: (
            AlbumResult.NOT_FOUND
            if photo_uuid not in addable
            else AlbumResult.ALREADY_IN_GALLERY
            if photo_uuid in held
            else AlbumResult.ADDED
        )
        for photo_uuid in wanted
    }


def photo_gallery_remove(
    *, gallery: Gallery, photo_uuids: Iterable[uuid.UUID], acting_user: AbstractBaseUser
) -> dict[uuid.UUID, AlbumResult]:
    """Takes photos out of `gallery` (its owner and editors), nothing more: each stays in its owner's library and
    in its other galleries. A photo that was the gallery's cover stops being it."""
    if not gallery_can_upload(acting_user, gallery):
        raise PermissionDenied("Only the gallery's owner and editors can remove photos from it.")
    wanted = list(dict.fromkeys(photo_uuids))
    with transaction.atomic():
        placements = GalleryPhoto.objects.filter(gallery=gallery, photo__uuid__in=wanted)
        removed = dict(placements.values_list("photo__uuid", "photo_id"))
        GalleryPhoto.objects.filter(gallery=gallery, photo_id__in=removed.values()).delete()
        Gallery.objects.filter(pk=gallery.pk, cover_photo_id__in=removed.values()).update(cover_photo=None)
    return {
        photo_uuid: AlbumResult.REMOVED if photo_uuid in removed else AlbumResult.NOT_IN_GALLERY
        for photo_uuid in wanted
    }


def _read_at_most(file: File, limit: int) -> bytes:
    """Reads the upload, refusing it as soon as it is larger than `limit` (without reading it all)."""
    size = getattr(file, "size", None)
    if size is not None and size > limit:
        raise UploadRefused(f"The file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.1f} MB.")
    if hasattr(file, "seek"):
        file.seek(0)
    content = file.read(limit + 1)
    if len(content) > limit:
        raise UploadRefused(f"The file is larger than the limit of {limit / 2**20:.1f} MB.")
    return content


def photo_delete(*, photo: Photo, acting_user: AbstractBaseUser) -> None:
    """Deletes the photo from every gallery, with its captions and, once that is committed, its files: its owner's
    alone, since it goes from their own albums too (a gallery's owner takes it out of their gallery instead)."""
    if not photo_can_delete(acting_user, photo):
        _require_manage(acting_user, photo)  # who may not even change it is told that
        raise PermissionDenied(
            "Only the photo's owner can delete it (from every gallery); remove it from your gallery instead."
        )
    with transaction.atomic():
        photo_files_delete_on_commit(Photo.objects.filter(pk=photo.pk))
        photo.delete()


def photo_delete_many(*, photos: QuerySet[Photo], acting_user: AbstractBaseUser) -> int:
    """Staff with the right to delete photos (the admin): deletes `photos` and their files. Returns how many."""
    if not acting_user.has_perm("captioning.delete_photo"):
        raise PermissionDenied("Only staff with the right to delete photos can delete others' photos.")
    with transaction.atomic():
        photo_files_delete_on_commit(photos)
        deleted, _by_model = Photo.objects.filter(pk__in=photos.values("pk")).delete()
    return deleted


def photo_files_delete_on_commit(photos: QuerySet[Photo]) -> None:
    """Once the transaction that deletes `photos` commits, their files leave the storage too."""
    names = [name for photo in photos.only("original", "display_image", "thumbnail") for name in photo.storage_names]
    transaction.on_commit(lambda: _delete_files(names))


def photo_caption_edit(*, photo: Photo, acting_user: AbstractBaseUser, text: str) -> Caption:
    """The owner's own wording becomes the current caption; the model's stays in the history."""
    _require_manage(acting_user, photo)
    return caption_write_edited(photo=photo, acting_user=acting_user, text=text)


def caption_write_edited(
    *, photo: Photo, acting_user: AbstractBaseUser, text: str, review_state: str = Caption.ReviewState.PENDING
) -> Caption:
    """Makes `text`, written by `acting_user`, the photo's current caption; the earlier ones stay in the history.
    No permission check: the owner's edit (photo_caption_edit) and the reviewer's (caption_review_edit) check."""
    text = " ".join(text.split())
    if not text:
        raise ValidationError("A caption cannot be empty.")
    if len(text) > 1000:
        raise ValidationError("A caption is at most 1000 characters.")
    reviewed = review_state != Caption.ReviewState.PENDING
    with transaction.atomic():
        locked = Photo.objects.select_for_update().get(pk=photo.pk)
        previous = locked.captions.filter(is_current=True).first()
        locked.captions.filter(is_current=True).update(is_current=False)
        caption = Caption.objects.create(
            photo=locked,
            text=text,
            source=Caption.Source.EDITED,
            model_version=previous.model_version if previous else None,
            decoding=previous.decoding if previous else {},
            is_current=True,
            created_by=acting_user,
            review_state=review_state,
            reviewed_by=acting_user if reviewed else None,
            reviewed_at=timezone.now() if reviewed else None,
        )
    return caption


def photo_recaption(
    *,
    photo: Photo,
    acting_user: AbstractBaseUser,
    model_version: ModelVersion | None = None,
    decoding: dict | None = None,
) -> Photo:
    """Queues the photo to be captioned again (another model, other settings); the current caption stays
    current, and in the history, until the new one is written. A worker captioning the photo right now loses
    it to this request (captioning.jobs: the latest request wins)."""
    _require_manage(acting_user, photo)
    decoding = decoding_checked(decoding)
    jobs.requeue(photos=Photo.objects.filter(pk=photo.pk), model_version=model_version, decoding=decoding)
    photo.refresh_from_db()
    return photo


def decoding_checked(decoding: dict | None) -> dict:
    """`decoding` (None: the defaults) if the captioner accepts it; ValidationError saying why otherwise."""
    decoding = decoding or {}
    try:
        decoding_settings(decoding)
    except ValueError as error:
        raise ValidationError(f"Invalid decoding settings: {error}") from None
    return decoding


def photo_retry(*, photo: Photo, acting_user: AbstractBaseUser) -> Photo:
    """A failed photo goes back in the queue with a fresh count of attempts."""
    _require_manage(acting_user, photo)
    if photo.status != Photo.Status.FAILED:
        raise ValidationError("Only a photo whose captioning failed can be retried.")
    jobs.retry_failed(photos=Photo.objects.filter(pk=photo.pk))
    photo.refresh_from_db()
    return photo


def _require_manage(user: AbstractBaseUser, photo: Photo) -> None:
    if not photo_can_manage(user, photo):
        raise PermissionDenied("Only the photo's owner or the owner of a gallery holding it can change it.")


def _delete_files(names: list[str]) -> None:
    folders = set()
    for name in names:
        try:
            default_storage.delete(name)
        except OSError:
            logger.exception("could not delete %s", name)
        folders.add(os.path.dirname(name))
    for folder in folders:
        _remove_empty_folder(folder)


def _remove_empty_folder(folder: str) -> None:
    try:
        path = default_storage.path(folder)
    except NotImplementedError:  # object stores have no folders
        return
    with contextlib.suppress(OSError):  # not empty, or already gone
        os.rmdir(path)
