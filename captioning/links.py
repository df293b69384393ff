"""Addresses of many photos (or galleries) at once.

A list of photos needs the same few addresses for each (its page, its thumbnail, ...). `reverse()` walks the URL
patterns every time, several times per photo; a profile of the API's photo list put 9% of its time there. These
resolve each address once, with a placeholder id, and then only put each photo's id in its place: the same
strings `reverse()` gives (a uuid needs no quoting), the script prefix of the current request included.
"""

import uuid
from urllib.parse import quote

from django.urls import reverse
from django.utils.http import RFC3986_SUBDELIMS

_PLACEHOLDER = uuid.UUID(int=0)
_GALLERY_ID_PLACEHOLDER, _GALLERY_SLUG_PLACEHOLDER = "_gallery-id_", "_gallery-slug_"
_PATH_SAFE = RFC3986_SUBDELIMS + "/~:@"  # what reverse() leaves unquoted


class PhotoLinks:
    """`links.url("photo-thumbnail", photo.uuid)`: for one list (one request), since the script prefix is the
    request's."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[str, str]] = {}

    def url(self, name: str, photo_uuid: uuid.UUID | str) -> str:
        parts = self._parts.get(name)
        if parts is None:
            before, after = reverse(name, kwargs={"photo_uuid": _PLACEHOLDER}).split(str(_PLACEHOLDER))
            parts = self._parts[name] = (before, after)
        return f"{parts[0]}{photo_uuid}{parts[1]}"

    def gallery(self, public_id: str, slug: str) -> str:
        """A gallery's page, as models.gallery_url gives it (a slug is quoted as reverse() quotes it)."""
        parts = self._parts.get("gallery-detail")
        if parts is None:
            placeholders = {"public_id": _GALLERY_ID_PLACEHOLDER, "slug": _GALLERY_SLUG_PLACEHOLDER}
            before, rest = reverse("gallery-detail", kwargs=placeholders).split(_GALLERY_ID_PLACEHOLDER)
            middle, after = rest.split(_GALLERY_SLUG_PLACEHOLDER)
            parts = self._parts["gallery-detail"] = (before, middle, after)
        return f"{parts[0]}{quote(public_id, safe=_PATH_SAFE)}{parts[1]}{quote(slug or '-', safe=_PATH_SAFE)}{parts[2]}"
