"""Photo pages and actions: upload, the photo page and its status poll, caption edits, caption again, retry,
delete, cover, translate."""

import functools

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_POST

from captioning import selectors
from captioning.confidence import caption_unsure_notice, photo_alt_text
from captioning.forms import CaptionEditForm, RecaptionForm
from captioning.images import UploadRefused
from captioning.models import Gallery, GalleryMembership, Photo, Translation
from captioning.services.galleries import (
    gallery_cover_set,
)
from captioning.services.photos import (
    AlbumResult,
    UploadResult,
    photo_caption_edit,
    photo_delete,
    photo_gallery_add,
    photo_recaption,
    photo_retry,
    photo_upload,
)
from captioning.services.translations import translation_request, translation_retry
from captioning.translators import (
    SOURCE_LANGUAGE,
    language_name,
)
from captioning.views.common import (
    caption_language,
    error_text,
    gallery_or_404,
    photo_or_404,
    photo_summary,
    translation_asked,
)

UPLOAD_MESSAGES = {
    UploadResult.UPLOADED: "Uploaded — captioning queued.",
    UploadResult.ADDED: "Already in your library: added to this gallery.",
    UploadResult.DUPLICATE: "Already uploaded to this gallery.",
}

# Uploads are one file per request; allow the multipart envelope around it.
MULTIPART_OVERHEAD = 64 * 1024


@login_required
@require_POST
def photo_upload_view(request: HttpRequest, public_id: str) -> JsonResponse:
    """One file per request (the page sends each file separately, with its own progress bar)."""
    gallery = gallery_or_404(request, public_id)
    if not selectors.gallery_can_upload(request.user, gallery):
        return JsonResponse({"ok": False, "error": "You cannot upload photos to this gallery."}, status=403)
    declared = int(request.META.get("CONTENT_LENGTH") or 0)
    if declared > settings.UPLOAD_MAX_BYTES + MULTIPART_OVERHEAD:
        # Refused before the body is read, so nothing of it is written to a temporary file either.
        limit = settings.UPLOAD_MAX_BYTES / (1024 * 1024)
        return JsonResponse({"ok": False, "error": f"The file is larger than the limit of {limit:.1f} MB."}, status=413)
    files = request.FILES.getlist("file")
    if len(files) != 1:
        return JsonResponse({"ok": False, "error": "Send exactly one file, in the field “file”."}, status=400)
    upload = files[0]
    try:
        outcome = photo_upload(acting_user=request.user, gallery=gallery, file=upload, filename=upload.name)
    except UploadRefused as refusal:
        return JsonResponse({"ok": False, "error": str(refusal)}, status=400)
    finally:
        upload.close()
    body = {
        "ok": True,
        "outcome": str(outcome.result),
        # A known photo is one the uploader may see now (photo_upload): the message names no other gallery.
        "message": UPLOAD_MESSAGES[outcome.result],
        "photo": photo_summary(outcome.photo, SOURCE_LANGUAGE, {}, acting_user=request.user),
    }
    return JsonResponse(body, status=200 if outcome.result == UploadResult.DUPLICATE else 201)


@functools.lru_cache(maxsize=8)
def _recaption_fields(model_versions: tuple[tuple[int, str], ...]) -> dict[str, str]:
    """The "Caption again" form's fields as HTML, by name. They are the same for every photo and everyone who may
    re-caption, given the models on offer (`model_versions`: each one's id and name, in the form's order), so they
    are rendered once per process: rendering their widgets took a fifth of the photo page."""
    form = RecaptionForm()
    return {name: str(form[name]) for name in form.fields}


# Where the caption goes in the edit form's field rendered once (`_caption_field`): no caption holds it.
_CAPTION_PLACE = "\x00caption\x00"


@functools.cache
def _caption_field_parts() -> tuple[str, str, str]:
    """The caption edit form's field as HTML before and after its text, and the field's id."""
    field = CaptionEditForm(initial={"text": _CAPTION_PLACE})["text"]
    before, after = str(field).split(_CAPTION_PLACE)
    return before, after, field.id_for_label


def _caption_field(text: str) -> dict[str, str]:
    """The caption edit form's field holding `text` (its `html`) and its `id`. Only the text changes from one photo
    to the next, so the widget is rendered once per process, as its template would escape the text."""
    before, after, field_id = _caption_field_parts()
    return {"html": mark_safe(before + conditional_escape(text) + after), "id": field_id}


@require_GET
def photo_detail(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    language = caption_language(request)
    # The history holds the current caption: one query for both; its translations hold the one in `language`.
    history = selectors.caption_history_list(photo)
    caption = next((item for item in history if item.is_current), None)
    translations = selectors.translation_list(caption) if caption else []
    translation = None
    if caption and language != SOURCE_LANGUAGE:
        translation = next((item for item in translations if item.language == language), None)
    places = selectors.photo_places(photo, request.user)
    sees_original = selectors.photo_sees_original(request.user, photo)
    return render(
        request,
        "captioning/photo_detail.html",
        {
            "photo": photo,
            "gallery": places.listed[0] if places.listed else None,
            "holding": [
                {
                    "gallery": gallery,
                    "is_cover": gallery.cover_photo_id == photo.pk,
                    "can_choose_cover": gallery.role == selectors.OWNER,
                    "can_remove": gallery.role in (selectors.OWNER, GalleryMembership.Role.EDITOR),
                }
                for gallery in places.listed
            ],
            "add_to": places.addable,
            "caption": caption,
            "unsure": caption_unsure_notice(caption),
            "alt": photo_alt_text(photo, caption),
            "history": history,
            "translation": translation,
            "translations": translations,
            "language": language,
            "language_name": language_name(language),
            "can_manage": places.managed,
            "sees_original": sees_original,
            "can_delete": selectors.photo_can_delete(request.user, photo),
            "caption_field": _caption_field(caption.text) if places.managed and caption else None,
            "recaption_fields": _recaption_fields(selectors.model_version_choices()) if places.managed else None,
        },
    )


@require_GET
def photo_status(request: HttpRequest, photo_uuid) -> JsonResponse:
    photo = photo_or_404(request, photo_uuid)
    language = caption_language(request)
    caption = selectors.caption_current(photo)
    translation = selectors.translation_get(caption=caption, language=language) if caption else None
    summary = photo_summary(photo, language, {caption.pk: translation} if caption and translation else {})
    summary["translation_error"] = translation.error_message if translation else ""
    summary["caption_id"] = caption.pk if caption else None
    return JsonResponse(summary)


@login_required
@require_POST
def photo_caption_update(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    form = CaptionEditForm(request.POST)
    if form.is_valid():
        try:
            photo_caption_edit(photo=photo, acting_user=request.user, text=form.cleaned_data["text"])
        except ValidationError as error:
            messages.error(request, error_text(error))
        else:
            messages.success(request, "Caption saved; the previous one is in the history.")
    else:
        messages.error(request, "A caption is 1 to 1000 characters.")
    return redirect(photo)


@login_required
@require_POST
def photo_recaption_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    form = RecaptionForm(request.POST)
    if not form.is_valid():
        messages.error(
            request,
            "Check the captioning settings: " + "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()),
        )
        return redirect(photo)
    try:
        photo_recaption(
            photo=photo,
            acting_user=request.user,
            model_version=form.cleaned_data["model_version"],
            decoding=form.decoding(),
        )
    except ValidationError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, "Queued for a new caption; the current one stays in the history.")
    return redirect(photo)


@login_required
@require_POST
def photo_retry_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    try:
        photo_retry(photo=photo, acting_user=request.user)
    except ValidationError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, "Queued again.")
    return redirect(photo)


@login_required
@require_POST
def photo_delete_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    galleries = selectors.gallery_list_holding(photo, request.user)
    photo_delete(photo=photo, acting_user=request.user)
    messages.success(request, "Photo deleted from every gallery.")
    return redirect(galleries[0] if galleries else "timeline")


def _photo_and_posted_gallery_or_404(request: HttpRequest, photo_uuid) -> tuple[Photo, Gallery]:
    """The photo of the address and the gallery the form names (its `gallery`), each if the user may see it."""
    return photo_or_404(request, photo_uuid), gallery_or_404(request, request.POST.get("gallery", ""))


@login_required
@require_POST
def photo_make_cover(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo, gallery = _photo_and_posted_gallery_or_404(request, photo_uuid)
    try:
        gallery_cover_set(gallery=gallery, photo=photo, acting_user=request.user)
    except ValidationError as error:
        messages.error(request, error_text(error))
    else:
        messages.success(request, f"This photo is now the cover of “{gallery.title}”.")
    return redirect(photo)


@login_required
@require_POST
def photo_gallery_add_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    """The photo page's "Add to gallery" (its owner's)."""
    photo, gallery = _photo_and_posted_gallery_or_404(request, photo_uuid)
    outcome = photo_gallery_add(gallery=gallery, photo_uuids=[photo.uuid], acting_user=request.user)[photo.uuid]
    if outcome == AlbumResult.NOT_FOUND:
        raise Http404("No such photo of yours")
    if outcome == AlbumResult.ADDED:
        messages.success(request, f"Added to “{gallery.title}”.")
    else:
        messages.info(request, f"Already in “{gallery.title}”.")
    return redirect(photo)


@login_required
@require_POST
def photo_translate(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = photo_or_404(request, photo_uuid)
    caption = selectors.caption_current(photo)
    language = request.POST.get("language", "")
    if caption is None:
        raise Http404("This photo has no caption yet")

    def ask() -> dict:
        translation = translation_request(caption=caption, language=language)
        if translation is not None and translation.status == Translation.Status.FAILED and request.POST.get("retry"):
            translation = translation_retry(translation=translation)
        return {"status": translation.status if translation else "done"}

    return translation_asked(request, photo, language, ask)
