"""What a visitor does to the photos selected in a grid: caption them again or delete them, photo by photo
through the single-photo services, each with its own outcome. Photos they may not see are only counted, never
named or described."""

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError

from captioning import selectors
from captioning.models import ModelVersion, Photo
from captioning.services.photos import decoding_checked, photo_delete, photo_recaption

QUEUED, DELETED, FORBIDDEN = "queued", "deleted", "forbidden"


@dataclass(frozen=True)
class PhotoOutcome:
    id: str  # the photo's uuid
    outcome: str
    message: str = ""


@dataclass(frozen=True)
class SelectionOutcome:
    results: list[PhotoOutcome] = field(default_factory=list)
    not_found: int = 0  # ids of photos that do not exist or that the visitor may not see


def photo_selection_check_size(photo_uuids: Sequence[uuid.UUID], limit: int, *, at_most: str) -> None:
    """ValidationError when more than `limit` different photos were selected: "…; at most {limit} {at_most}"."""
    count = len(set(photo_uuids))
    if count > limit:
        raise ValidationError(f"{count} photos were selected; at most {limit} {at_most}.")


def photo_selection_recaption(
    *,
    acting_user: AbstractBaseUser,
    photo_uuids: Sequence[uuid.UUID],
    model_version: ModelVersion | None = None,
    decoding: dict | None = None,
) -> SelectionOutcome:
    """Queues each selected photo `acting_user` may change to be captioned again (photo_recaption)."""
    photo_selection_check_size(photo_uuids, settings.SELECTION_MAX_PHOTOS, at_most="can be captioned again at once")
    decoding = decoding_checked(decoding)

    def recaption(photo: Photo) -> PhotoOutcome:
        photo_recaption(photo=photo, acting_user=acting_user, model_version=model_version, decoding=decoding)
        return PhotoOutcome(str(photo.uuid), QUEUED)

    return _each_photo(acting_user, photo_uuids, recaption)


def photo_selection_delete(*, acting_user: AbstractBaseUser, photo_uuids: Sequence[uuid.UUID]) -> SelectionOutcome:
    """Deletes each selected photo `acting_user` may delete (photo_delete); the others stay, refused."""
    photo_selection_check_size(photo_uuids, settings.SELECTION_MAX_PHOTOS, at_most="can be deleted at once")

    def delete(photo: Photo) -> PhotoOutcome:
        photo_id = str(photo.uuid)
        photo_delete(photo=photo, acting_user=acting_user)
        return PhotoOutcome(photo_id, DELETED)

    return _each_photo(acting_user, photo_uuids, delete)


def _each_photo(
    acting_user: AbstractBaseUser, photo_uuids: Sequence[uuid.UUID], act: Callable[[Photo], PhotoOutcome]
) -> SelectionOutcome:
    photos = selectors.photo_list_selected(acting_user=acting_user, photo_uuids=photo_uuids)
    results = []
    for photo in photos:
        try:
            results.append(act(photo))
        except PermissionDenied as refusal:
            results.append(PhotoOutcome(str(photo.uuid), FORBIDDEN, str(refusal)))
    return SelectionOutcome(results, not_found=len(set(photo_uuids)) - len(photos))
