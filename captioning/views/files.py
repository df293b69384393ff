"""Photo files, streamed (or redirected to a signed URL) after the same visibility check as the pages."""

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.views.decorators.http import require_GET

from captioning.downloads import photo_download
from captioning.media import is_object_store, media_file_response, media_signed_url
from captioning.views.common import photo_or_404


def file_response(file_field, content_type: str, *, download_name: str | None = None) -> HttpResponse:
    """The file, streamed from its store, or with MEDIA_SIGNED_URL_SECONDS set, a redirect to a short-lived signed
    URL of it in the object store. Called only after the permission check."""
    if not file_field:
        raise Http404("The file is missing")
    if settings.MEDIA_SIGNED_URL_SECONDS and is_object_store(file_field.storage):
        response = HttpResponseRedirect(media_signed_url(file_field, content_type, download_name=download_name))
        # Never kept longer than the URL works, and never by a shared cache: the URL lets anyone read the file.
        response["Cache-Control"] = f"private, max-age={settings.MEDIA_SIGNED_URL_SECONDS // 2}"
        return response
    try:
        response = media_file_response(file_field, content_type, download_name=download_name)
    except FileNotFoundError:
        raise Http404("The file is missing") from None
    response["Cache-Control"] = "private, max-age=3600"
    # Even if a file were not what it seems, a browser must not run it as a page.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
def photo_thumbnail(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    return file_response(photo.thumbnail, "image/webp")


@require_GET
def photo_image(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    return file_response(photo.display_image, "image/webp")


@require_GET
def photo_original(request: HttpRequest, photo_uuid) -> HttpResponse:
    """The uploaded file for its owner; for everyone else the copy without metadata (no GPS)."""
    photo = photo_or_404(request, photo_uuid)
    download = photo_download(acting_user=request.user, photo=photo)
    return file_response(download.file, download.content_type, download_name=download.filename)
