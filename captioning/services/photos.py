import contextlib
import logging
import os
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.db.models.fields.files import FieldFile
from django.utils import timezone

from captioning import jobs
from captioning.decoding import decoding_settings
from captioning.images import UploadRefused, inspect_upload, render_derivative
from captioning.models import Caption, Gallery, ModelVersion, Photo, photo_file_path
from captioning.selectors import gallery_can_upload, photo_can_manage

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UploadOutcome:
    photo: Photo
    duplicate: bool  # the uploader had put this very file into this gallery before: `photo` is that earlier one


def photo_upload(*, acting_user: AbstractBaseUser, gallery: Gallery, file: File, filename: str = "") -> UploadOutcome:
    """Checks the file by decoding it, stores it with its derivatives and queues it for captioning.

    Raises UploadRefused (the file is not accepted: nothing was written) or PermissionDenied. A file the
    uploader put into this same gallery before returns that photo; into another gallery, it is stored again
    (a duplicate must never name a photo, gallery or caption the uploader may no longer see). Any failure
    after the first file is written removes every file written and the row, so nothing of a failed upload
    stays behind.
    """
    if not gallery_can_upload(acting_user, gallery):
        raise PermissionDenied("You cannot upload photos to this gallery.")
    inspected = inspect_upload(_read_at_most(file, settings.UPLOAD_MAX_BYTES))
    existing = _same_file_in_gallery(acting_user, gallery, inspected.sha256)
    if existing is not None:
        return UploadOutcome(existing, duplicate=True)

    photo = Photo(
        owner=acting_user,
        gallery=gallery,
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
            store(photo.original, f"original.{inspected.extension}", inspected.content)
            store(photo.display_image, "display.webp", display_image)
            store(photo.thumbnail, "thumbnail.webp", thumbnail)
            jobs.queue_new_photo(photo)
            photo.save()
            Gallery.objects.filter(pk=gallery.pk).update(updated_at=timezone.now())
    except IntegrityError:
        _delete_files(written)
        # The same file arrived twice at once; the other request stored it first.
        existing = _same_file_in_gallery(acting_user, gallery, inspected.sha256)
        if existing is None:
            raise
        return UploadOutcome(existing, duplicate=True)
    except BaseException:
        _delete_files(written)
        raise
    return UploadOutcome(photo, duplicate=False)


def _same_file_in_gallery(acting_user: AbstractBaseUser, gallery: Gallery, sha256: str) -> Photo | None:
    """The uploader's earlier copy of this file in `gallery` (the one_copy_of_a_file_per_owner_and_gallery
    constraint). Only that gallery is looked in: the uploader may upload there, so may see it, whereas a copy
    elsewhere may sit in a gallery they have left since."""
    return Photo.objects.filter(owner=acting_user, gallery=gallery, sha256=sha256).first()


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
    """Deletes the photo, its captions and, once that is committed, its files (its owner or the gallery's)."""
    _require_manage(acting_user, photo)
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
        raise PermissionDenied("Only the photo's owner or the gallery's owner can change it.")


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
