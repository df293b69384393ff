"""Addresses of many photos (or galleries) at once, and of a gallery's pages.

A list of photos needs the same few addresses for each (its page, its thumbnail, ...). `reverse()` walks the URL
patterns every time, several times per photo; a profile of the API's photo list put 9% of its time there. These
resolve each address once per process (and script prefix), with a placeholder id, and then only put each id in its
place: the same strings `reverse()` gives (a uuid and a gallery's public id need no quoting), the script prefix of
the current request included.
"""

import uuid
from urllib.parse import quote

from django.urls import get_script_prefix, reverse
from django.utils.http import RFC3986_SUBDELIMS

_GALLERY_ID_PLACEHOLDER, _GALLERY_SLUG_PLACEHOLDER = "_gallery-id_", "_gallery-slug_"
_PATH_SAFE = RFC3986_SUBDELIMS + "/~:@"  # what reverse() leaves unquoted

# What stands for each kind of id while a pattern is resolved: text no address holds otherwise.
_PLACEHOLDERS: dict[str, object] = {"photo_uuid": uuid.UUID(int=0), "public_id": "placeholder0public0id"}
# (script prefix, URL name) -> the address before and after the id. URL patterns do not change in a process.
_resolved: dict[tuple[str, str], tuple[str, str]] = {}


def _parts(name: str, argument: str) -> tuple[str, str]:
    key = (get_script_prefix(), name)
    parts = _resolved.get(key)
    if parts is None:
        placeholder = _PLACEHOLDERS[argument]
        before, after = reverse(name, kwargs={argument: placeholder}).split(str(placeholder))
        parts = _resolved[key] = (before, after)
    return parts


class PhotoLinks:
    """`links.url("photo-thumbnail", photo.uuid)`: for one list (one request), since the script prefix is the
    request's."""

    def __init__(self) -> None:
        self._parts: dict[str, tuple[str, str]] = {}
        self._many: dict[tuple, list[tuple[str, str, str]]] = {}

    def url(self, name: str, photo_uuid: uuid.UUID | str) -> str:
        parts = self._parts.get(name)
        if parts is None:
            parts = self._parts[name] = _parts(name, "photo_uuid")
        return f"{parts[0]}{photo_uuid}{parts[1]}"

    def urls(self, photo_uuid: uuid.UUID | str, names: tuple[tuple[str, str], ...]) -> dict[str, str]:
        """{key: `url(name, photo_uuid)`} for each (key, URL name) of `names`: a list's several addresses of each
        photo in one call."""
        parts = self._many.get(names)
        if parts is None:
            parts = self._many[names] = [(key, *_parts(name, "photo_uuid")) for key, name in names]
        return {key: f"{before}{photo_uuid}{after}" for key, before, after in parts}

    def gallery(self, public_id: str, slug: str) -> str:
        """A gallery's page, as models.gallery_url gives it (a slug is quoted as reverse() quotes it)."""
        parts = self._parts.get("gallery-detail")
        if parts is None:
            placeholders = {"public_id": _GALLERY_ID_PLACEHOLDER, "slug": _GALLERY_SLUG_PLACEHOLDER}
            before, rest = reverse("gallery-detail", kwargs=placeholders).split(_GALLERY_ID_PLACEHOLDER)
            middle, after = rest.split(_GALLERY_SLUG_PLACEHOLDER)
            parts = self._parts["gallery-detail"] = (before, middle, after)
        return f"{parts[0]}{quote(public_id, safe=_PATH_SAFE)}{parts[1]}{quote(slug or '-', safe=_PATH_SAFE)}{parts[2]}"


class GalleryLinks:
    """`links.url("gallery-status")`: the addresses of one gallery's pages (patterns with its `public_id`), for
    one request."""

    def __init__(self, public_id: str) -> None:
        self.public_id = public_id

    def url(self, name: str) -> str:
        before, after = _parts(name, "public_id")
        return f"{before}{self.public_id}{after}"
