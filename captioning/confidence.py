"""How the site treats a caption its model is unsure of (Caption.confident is False: the photo is unlike anything
the model was trained on, mlcore.familiarity).

Such a caption is shown as a guess under an "Unsure" notice, never becomes the image's alt text (the file name
and date do), comes first in the review queue (selectors.caption_review_queue) and ranks below confident matches
in search (`photo_ids_with_unsure_caption`).
"""

from collections.abc import Iterable
from datetime import datetime

from django.utils.dateformat import format as format_date
from django.utils.timezone import localtime

from captioning.models import Caption, Photo


def caption_is_guess(caption: Caption | None) -> bool:
    return caption is not None and not caption.confident


def caption_unsure_notice(caption: Caption | None) -> str | None:
    """What the pages say instead of stating an unsure caption as fact; None for a confident one."""
    if not caption_is_guess(caption):
        return None
    model_version = caption.model_version
    if model_version is None:
        return guess_notice(None)
    return guess_notice(
        model_version.name, model_is_active=model_version.is_active, trained_on=model_version.trained_on
    )


def guess_notice(model_name: str | None, *, model_is_active: bool = False, trained_on: str = "") -> str:
    """`caption_unsure_notice` of a guess by the model named `model_name` (None: its model is gone), for a
    caption read as a row."""
    if model_name is None:
        return "Unsure: the model that wrote this caption has not seen photos like this."
    which = "the active model" if model_is_active else "the model"
    trained_on = f": {trained_on}" if trained_on else ""
    return f"Unsure: {which} ({model_name}{trained_on}) has not seen photos like this."


def photo_alt_text(photo: Photo, caption: Caption | None) -> str:
    """The caption when the model is confident of it; otherwise the file name and the date it was taken (or
    uploaded), which at least do not state something false."""
    return alt_text(
        caption_text=caption.text if caption is not None and caption.confident else None,
        file_name=photo.original_filename,
        shown_at=photo.taken_at or photo.created_at,
    )


def alt_text(*, caption_text: str | None, file_name: str, shown_at: datetime | None) -> str:
    """`photo_alt_text` of a photo read as a row: `caption_text` only when its model is confident of it."""
    if caption_text:
        return caption_text
    name = file_name or "Photo"
    return f"{name}, {format_date(localtime(shown_at), 'j M Y')}" if shown_at else name


def caption_unsure_notices(caption_ids: Iterable[int]) -> dict[int, str]:
    """`caption_unsure_notice` of each of these captions that is a guess, by caption id (one query, when any)."""
    caption_ids = list(caption_ids)
    if not caption_ids:
        return {}
    guesses = Caption.objects.filter(pk__in=caption_ids, confident=False).select_related("model_version")
    return {caption.pk: caption_unsure_notice(caption) for caption in guesses}


def photo_ids_with_unsure_caption(photo_ids: Iterable[int]) -> set[int]:
    """Which of these photos' current captions are guesses (search puts them below the confident matches)."""
    return set(
        Caption.objects.filter(photo_id__in=list(photo_ids), is_current=True, confident=False)
        .values_list("photo_id", flat=True)
        .order_by()
    )
