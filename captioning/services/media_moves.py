"""Moving the photos' files from one store to another (the file system to an object store), under the same names,
so the database needs no change: `manage.py move_media_to_object_store` calls it."""

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from django.core.files.base import ContentFile
from django.core.files.storage import Storage

from captioning.media import is_object_store
from captioning.models import Photo

logger = logging.getLogger(__name__)


@dataclass
class MediaMoveReport:
    copied: int = 0  # written to the destination and read back equal
    already_there: int = 0  # the destination held an equal copy (an earlier run)
    deleted_from_source: int = 0
    missing: list[str] = field(default_factory=list)  # named by a photo, in neither store
    mismatched: list[str] = field(default_factory=list)  # the copy read back differs: the source file was kept

    @property
    def failed(self) -> bool:
        return bool(self.missing or self.mismatched)


def media_move(
    *,
    source: Storage,
    destination: Storage,
    delete_from_source: bool,
    progress: Callable[[int, MediaMoveReport], None] | None = None,
) -> MediaMoveReport:
    """Copies every file a photo names from `source` to `destination` under the same name and checks each copy by
    checksum; with `delete_from_source`, a file leaves the source only once its copy is checked. Resumable: a file
    whose checked copy is in the destination is not sent again, so a run stopped anywhere can simply be run again.
    `progress(photos_done, report)` is called after every 100 photos."""
    report = MediaMoveReport()
    names = Photo.objects.order_by("pk").values_list("original", "display_image", "thumbnail")
    for photos_done, photo_names in enumerate(names.iterator(chunk_size=500), start=1):
        for name in filter(None, photo_names):
            _move_one(name, source, destination, delete_from_source, report)
        if progress is not None and photos_done % 100 == 0:
            progress(photos_done, report)
    return report


def _move_one(
    name: str, source: Storage, destination: Storage, delete_from_source: bool, report: MediaMoveReport
) -> None:
    if not source.exists(name):
        if not destination.exists(name):
            report.missing.append(name)
        return  # moved by an earlier run
    with source.open(name, "rb") as file:
        content = file.read()
    if _copy_is_equal(destination, name, content):
        report.already_there += 1
    else:
        stored_name = destination.save(name, ContentFile(content))
        if stored_name != name or not _copy_is_equal(destination, name, content):
            logger.error("the copy of %s in the destination differs from the source; the source file is kept", name)
            report.mismatched.append(name)
            return
        report.copied += 1
    if delete_from_source:
        source.delete(name)
        report.deleted_from_source += 1
        _remove_folder_if_empty(source, os.path.dirname(name))


def _copy_is_equal(destination: Storage, name: str, content: bytes) -> bool:
    """Whether the destination has `name`, holding `content`. An object store computed the MD5 of what it received
    when the object was uploaded in one part (its ETag): equal to ours, nothing needs reading back. Otherwise (a
    multipart upload, encryption with a customer key, another kind of store) the copy is read back and compared
    by SHA-256."""
    try:
        stored_file = destination.open(name, "rb")
    except FileNotFoundError:
        return False
    with stored_file as stored:
        if (
            is_object_store(destination)
            and stored.obj.e_tag.strip('"') == hashlib.md5(content, usedforsecurity=False).hexdigest()
        ):
            return True
        return hashlib.sha256(stored.read()).digest() == hashlib.sha256(content).digest()


def _remove_folder_if_empty(storage: Storage, folder: str) -> None:
    with contextlib.suppress(NotImplementedError, OSError):  # object stores have no folders; not empty
        os.rmdir(storage.path(folder))
