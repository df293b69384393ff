"""Addresses of many photos at once.

A list of photos needs the same few addresses for each (its page, its thumbnail, ...). `reverse()` walks the URL
patterns every time, several times per photo; a profile of the API's photo list put 9% of its time there. These
resolve each address once, with a placeholder id, and then only put each photo's id in its place: the same
strings `reverse()` gives (a uuid needs no quoting), the script prefix of the current request included.
"""

import uuid

from django.urls import reverse

_PLACEHOLDER = uuid.UUID(int=0)


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
