"""What every page family shares: the caption language, the look-ups that answer 404 for what a visitor may not
see, the grid's photo summary and the answer to a translation request."""

import uuid
from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect

from captioning import selectors
from captioning.confidence import alt_text, caption_unsure_notice, guess_notice, photo_alt_text
from captioning.links import PhotoLinks
from captioning.models import Gallery, Photo, Translation
from captioning.translators import (
    SOURCE_LANGUAGE,
    available_languages,
)

LANGUAGE_SESSION_KEY = "caption_language"
# Photo.get_status_display() rebuilds the choices' dict for each photo of a grid.
_STATUS_LABELS = {value: str(label) for value, label in Photo.Status.choices}


def caption_language(request: HttpRequest) -> str:
    """The language captions are shown in: ?lang= (remembered), else the visitor's last choice, else English."""
    offered = {code for code, _name in offered_languages(request)}
    requested = request.GET.get("lang")
    if requested in offered:
        if request.session.get(LANGUAGE_SESSION_KEY) != requested:
            request.session[LANGUAGE_SESSION_KEY] = requested
        return requested
    stored = request.session.get(LANGUAGE_SESSION_KEY)
    return stored if stored in offered else SOURCE_LANGUAGE


def offered_languages(request: HttpRequest) -> list[tuple[str, str]]:
    """The language picker's (code, name) pairs, found once per request (without a translation service they
    are read from the stored translations)."""
    if not hasattr(request, "_offered_languages"):
        request._offered_languages = available_languages()
    return request._offered_languages


def gallery_or_404(request: HttpRequest, public_id: str) -> Gallery:
    try:
        return selectors.gallery_get_for_viewer(user=request.user, public_id=public_id)
    except Gallery.DoesNotExist:
        raise Http404("No such gallery") from None


def photo_or_404(request: HttpRequest, photo_uuid) -> Photo:
    try:
        return selectors.photo_get_for_viewer(user=request.user, photo_uuid=photo_uuid)
    except Photo.DoesNotExist:
        raise Http404("No such photo") from None


def owned_gallery_or_404(request: HttpRequest, public_id: str) -> Gallery:
    gallery = gallery_or_404(request, public_id)
    if not selectors.gallery_can_edit(request.user, gallery):
        raise PermissionDenied("Only the owner of this gallery can change it.")
    return gallery


def error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def photo_summary(
    photo: Photo,
    language: str,
    translations: dict[int, Translation],
    links: PhotoLinks | None = None,
    *,
    acting_user: selectors.UserOrAnonymous | None = None,
) -> dict:
    """What the gallery grid shows of a photo, as JSON for the live status polling. Give `links` when
    summarising many photos: their addresses are then resolved once. `can_manage`: whether `acting_user` may
    caption it again and delete it (what a selection offers)."""
    caption = selectors.caption_current(photo)
    return _summary(
        photo_uuid=photo.uuid,
        file_name=photo.original_filename,
        status=photo.status,
        error=photo.error_message,
        caption_text=caption.text if caption else None,
        unsure=caption_unsure_notice(caption),
        alt=photo_alt_text(photo, caption),
        language=language,
        translation=translations.get(caption.pk) if caption else None,
        can_manage=selectors.photo_can_manage(acting_user, photo),
        links=links or PhotoLinks(),
    )


def grid_row_summary(row: dict, language: str, translations: dict[int, Translation], links: PhotoLinks) -> dict:
    """`photo_summary` of a row of `selectors.photo_rows_for_gallery_grid`."""
    guess = row["caption_id"] is not None and not row["caption_confident"]
    return _summary(
        photo_uuid=row["uuid"],
        file_name=row["original_filename"],
        status=row["status"],
        error=row["error_message"],
        caption_text=row["caption_text"],
        unsure=guess_notice(
            row["model_name"], model_is_active=row["model_is_active"], trained_on=str(row["model_trained_on"] or "")
        )
        if guess
        else None,
        alt=alt_text(
            caption_text=row["caption_text"] if row["caption_confident"] else None,
            file_name=row["original_filename"],
            shown_at=row["taken_at"] or row["created_at"],
        ),
        language=language,
        translation=translations.get(row["caption_id"]),
        can_manage=row["can_manage"],
        links=links,
    )


def photo_row_summary(
    row: dict, language: str, translations: dict[int, Translation], links: PhotoLinks | None, unsure: str | None
) -> dict:
    """`photo_summary` of a row of selectors.photo_rows_with_details; `unsure`: its caption's
    `caption_unsure_notice` (confidence.caption_unsure_notices reads a page's at once)."""
    caption = row["caption"]
    return _summary(
        photo_uuid=row["uuid"],
        file_name=row["original_filename"],
        status=row["status"],
        error=row["error_message"],
        caption_text=caption["text"] if caption else None,
        unsure=unsure,
        alt=alt_text(
            caption_text=caption["text"] if caption and caption["confident"] else None,
            file_name=row["original_filename"],
            shown_at=row["taken_at"] or row["created_at"],
        ),
        language=language,
        translation=translations.get(caption["id"]) if caption else None,
        can_manage=row["can_manage"],
        links=links or PhotoLinks(),
    )


def _summary(
    *,
    photo_uuid: uuid.UUID,
    file_name: str,
    status: str,
    error: str,
    caption_text: str | None,
    unsure: str | None,
    alt: str,
    language: str,
    translation: Translation | None,
    can_manage: bool,
    links: PhotoLinks,
) -> dict:
    return {
        "id": str(photo_uuid),
        "url": links.url("photo-detail", photo_uuid),
        "thumbnail": links.url("photo-thumbnail", photo_uuid),
        "image": links.url("photo-image", photo_uuid),
        "name": file_name,
        "status": status,
        "status_label": _STATUS_LABELS.get(status, status),
        "error": error,
        "caption": caption_text,
        "unsure": unsure,
        "alt": alt,
        "language": language,
        "translation": translation.text if translation and translation.status == Translation.Status.DONE else None,
        "translation_status": translation.status if translation else None,
        "can_manage": can_manage,
    }


def grid_pages(parameters: QueryDict) -> tuple[int, int]:
    """(first page, how many pages) of the grid asked for: page= and, for the status poll and the translation
    request, pages= (the pages the browser has loaded so far). Anything that is not a positive number counts as 1."""

    def positive(name: str) -> int:
        value = parameters.get(name, "")
        return max(1, int(value)) if value.isdigit() else 1

    return positive("page"), min(positive("pages"), 1000)


def translation_asked(
    request: HttpRequest, page: Gallery | Photo, language: str, ask: Callable[[], dict]
) -> HttpResponse:
    """Calls `ask` (translation services; it returns what the JSON answer adds), then answers JSON or sends the
    browser back to `page` in `language`, which is remembered."""
    try:
        answer = ask()
    except ValidationError as error:
        if wants_json(request):
            return JsonResponse({"ok": False, "error": error_text(error)}, status=400)
        messages.error(request, error_text(error))
        return redirect(page)
    request.session[LANGUAGE_SESSION_KEY] = language
    if wants_json(request):
        return JsonResponse({"ok": True, **answer})
    return redirect(f"{page.get_absolute_url()}?lang={language}")
