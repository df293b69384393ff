"""What a visitor downloads of a photo, alone or many at once in a zip: the original for its owner, the copy
without metadata (the display image) for everyone else. Callers pass photos the visitor may see."""

import mimetypes
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from django.db.models.fields.files import FieldFile
from zipstream import ZipStream

from captioning import selectors
from captioning.media import media_open_stream
from captioning.models import Photo
from captioning.selectors import UserOrAnonymous

CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "HEIF": "image/heic",
}
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class PhotoDownload:
    file: FieldFile
    content_type: str
    filename: str


def photo_download(*, acting_user: UserOrAnonymous | None, photo: Photo) -> PhotoDownload:
    """The file `acting_user` gets of `photo`, its type and the name to save it under."""
    stem = (photo.original_filename.rsplit(".", 1)[0] if photo.original_filename else str(photo.uuid)) or "photo"
    if selectors.photo_sees_original(acting_user, photo):
        extension = photo.original.name.rsplit(".", 1)[-1]
        content_type = (
            CONTENT_TYPES.get(photo.format)
            or mimetypes.guess_type(photo.original.name)[0]
            or "application/octet-stream"
        )
        return PhotoDownload(photo.original, content_type, f"{stem}.{extension}")
    return PhotoDownload(photo.display_image, "image/webp", f"{stem}.webp")


def photo_zip_stream(*, acting_user: UserOrAnonymous | None, photos: Iterable[Photo]) -> ZipStream:
    """A zip of `photos` as `acting_user` downloads each, written as it is read: one chunk of one file is in
    memory at a time. Names are unique inside the zip ("beach.jpg", "beach (2).jpg")."""
    archive = ZipStream(sized=False)  # stored, not compressed: photos are compressed already
    taken: set[str] = set()
    for photo in photos:
        download = photo_download(acting_user=acting_user, photo=photo)
        archive.add(_chunks(download.file), _unique_name(download.filename, taken))
    return archive


def _unique_name(filename: str, taken: set[str]) -> str:
    stem, dot, extension = filename.rpartition(".")
    if not dot:
        stem, extension = filename, ""
    name, number = filename, 1
    while name.lower() in taken:
        number += 1
        name = f"{stem} ({number}){dot}{extension}"
    taken.add(name.lower())
    return name


def _chunks(file: FieldFile) -> Iterator[bytes]:
    """The stored file, a chunk at a time, opened only when the zip reaches it."""
    stream, _size = media_open_stream(file)
    try:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()
