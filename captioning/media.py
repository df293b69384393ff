"""Reading stored photo files for serving, from the file system or an S3-compatible object store, through Django's
storage API (settings.STORAGES["default"]). Views check permissions before they call anything here."""

import sys
from typing import IO

from django.conf import settings
from django.core.files.storage import Storage
from django.db.models.fields.files import FieldFile
from django.http import FileResponse
from django.utils.http import content_disposition_header


def is_object_store(storage: Storage) -> bool:
    storage_class = storage.__class__  # default_storage is made here, importing its backend
    # django-storages' S3 module is never imported here: with boto3 it costs a process about 27 MB, which a site
    # keeping its photos on the file system need not pay. An S3Storage exists only once its module is imported.
    s3_backend = sys.modules.get("storages.backends.s3")
    return s3_backend is not None and issubclass(storage_class, s3_backend.S3Storage)


def media_open_stream(file_field: FieldFile) -> tuple[IO[bytes], int]:
    """The stored file as a stream and its size in bytes. From an object store the body is read as it arrives,
    so a web process holds one chunk of it at a time (opening it through the storage would first download it
    all). Raises FileNotFoundError when the file is missing."""
    stored = file_field.storage.open(file_field.name, "rb")
    if not is_object_store(file_field.storage):
        return stored, file_field.storage.size(file_field.name)
    body = stored.obj.get()
    return body["Body"], body["ContentLength"]


def media_signed_url(file_field: FieldFile, content_type: str, *, download_name: str | None) -> str:
    """A URL of the object that works for MEDIA_SIGNED_URL_SECONDS, with the content type (and for a download,
    the file name) the store must answer with."""
    disposition = content_disposition_header(as_attachment=download_name is not None, filename=download_name or "")
    parameters = {"ResponseContentType": content_type}
    if disposition:
        parameters["ResponseContentDisposition"] = disposition
    return file_field.storage.url(file_field.name, parameters=parameters, expire=settings.MEDIA_SIGNED_URL_SECONDS)


def media_file_response(file_field: FieldFile, content_type: str, *, download_name: str | None) -> FileResponse:
    stream, size = media_open_stream(file_field)
    response = FileResponse(
        stream, content_type=content_type, as_attachment=download_name is not None, filename=download_name or ""
    )
    response["Content-Length"] = str(size)
    return response
