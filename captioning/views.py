"""Pages and their small JSON endpoints. Each view reads through a selector or calls one service.

Anything a visitor may not see answers 404 (not 403), so private galleries and photos do not reveal that
they exist. Photo files are streamed from here after the same check; there is no public media URL.
"""

import functools
import mimetypes
from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET, require_POST

from captioning import jobs, selectors
from captioning.confidence import caption_unsure_notice, photo_alt_text
from captioning.forms import CaptionEditForm, GalleryForm, MemberForm, RecaptionForm, SignupForm
from captioning.images import UploadRefused
from captioning.links import PhotoLinks
from captioning.media import is_object_store, media_file_response, media_signed_url
from captioning.model_facts import model_version_facts
from captioning.models import Gallery, Photo, Translation
from captioning.search import photo_search
from captioning.services.galleries import (
    gallery_cover_set,
    gallery_create,
    gallery_delete,
    gallery_member_remove,
    gallery_member_set,
    gallery_update,
)
from captioning.services.photos import (
    photo_caption_edit,
    photo_delete,
    photo_recaption,
    photo_retry,
    photo_upload,
)
from captioning.services.translations import translation_request, translation_request_many, translation_retry
from captioning.translators import (
    PROVIDERS,
    SOURCE_LANGUAGE,
    available_languages,
    language_name,
    provider_host,
    translatable_languages,
    translation_provider,
)

LANGUAGE_SESSION_KEY = "caption_language"
CONTENT_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "HEIF": "image/heic",
}
SEARCH_PAGE_SIZE = 24
# The gallery grid shows this many photos at first; the page fetches the next ones as its end scrolls into view
# (or a "More photos" link shows them, without JavaScript). Rendering every photo of a large gallery at once was
# the gallery page's cost: 200 photos kept it at 32 requests/s on 2 cores.
GALLERY_PAGE_SIZE = 24
TIMELINE_PAGE_SIZE = 48
# Uploads are one file per request; allow the multipart envelope around it.
MULTIPART_OVERHEAD = 64 * 1024


# Helpers -------------------------------------------------------------------------------------------------


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


def _gallery_or_404(request: HttpRequest, public_id: str) -> Gallery:
    try:
        return selectors.gallery_get_for_viewer(user=request.user, public_id=public_id)
    except Gallery.DoesNotExist:
        raise Http404("No such gallery") from None


def _photo_or_404(request: HttpRequest, photo_uuid) -> Photo:
    try:
        return selectors.photo_get_for_viewer(user=request.user, photo_uuid=photo_uuid)
    except Photo.DoesNotExist:
        raise Http404("No such photo") from None


def _owned_gallery_or_404(request: HttpRequest, public_id: str) -> Gallery:
    gallery = _gallery_or_404(request, public_id)
    if not selectors.gallery_can_edit(request.user, gallery):
        raise PermissionDenied("Only the owner of this gallery can change it.")
    return gallery


def _error_text(error: ValidationError) -> str:
    return " ".join(error.messages)


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def photo_summary(
    photo: Photo, language: str, translations: dict[int, Translation], links: PhotoLinks | None = None
) -> dict:
    """What the gallery grid shows of a photo, as JSON for the live status polling. Give `links` when
    summarising many photos: their addresses are then resolved once."""
    caption = selectors.caption_current(photo)
    translation = translations.get(caption.pk) if caption else None
    links = links or PhotoLinks()
    return {
        "id": str(photo.uuid),
        "url": links.url("photo-detail", photo.uuid),
        "thumbnail": links.url("photo-thumbnail", photo.uuid),
        "image": links.url("photo-image", photo.uuid),
        "name": photo.original_filename,
        "status": photo.status,
        "status_label": photo.get_status_display(),
        "error": photo.error_message,
        "caption": caption.text if caption else None,
        "unsure": caption_unsure_notice(caption),
        "alt": photo_alt_text(photo, caption),
        "language": language,
        "translation": translation.text if translation and translation.status == Translation.Status.DONE else None,
        "translation_status": translation.status if translation else None,
    }


def _grid_pages(parameters: QueryDict) -> tuple[int, int]:
    """(first page, how many pages) of the grid asked for: page= and, for the status poll and the translation
    request, pages= (the pages the browser has loaded so far). Anything that is not a positive number counts as 1."""

    def positive(name: str) -> int:
        value = parameters.get(name, "")
        return max(1, int(value)) if value.isdigit() else 1

    return positive("page"), min(positive("pages"), 1000)


def _gallery_grid(gallery: Gallery, *, first_page: int, pages: int) -> tuple[list[Photo], int | None]:
    """The photos of `pages` pages of the gallery's grid from `first_page` on, and the number of the page after
    them (None at the end)."""
    start = (first_page - 1) * GALLERY_PAGE_SIZE
    end = start + pages * GALLERY_PAGE_SIZE
    # One photo more than asked for says whether another page follows, without counting the gallery's photos.
    photos = list(selectors.photo_list_for_gallery(gallery)[start : end + 1])
    next_page = first_page + pages if len(photos) > end - start else None
    return photos[: end - start], next_page


def _gallery_photo_summaries(
    gallery: Gallery, language: str, *, first_page: int, pages: int
) -> tuple[list[dict], int | None]:
    """The summaries of `pages` pages of the gallery's grid from `first_page` on, and the number of the page
    after them (None at the end)."""
    photos, next_page = _gallery_grid(gallery, first_page=first_page, pages=pages)
    captions = [caption for photo in photos if (caption := selectors.caption_current(photo)) is not None]
    translations: dict[int, Translation] = {}
    if language != SOURCE_LANGUAGE and captions:
        translations = selectors.translation_map(captions, language)
    links = PhotoLinks()
    return [photo_summary(photo, language, translations, links) for photo in photos], next_page


# Pages ---------------------------------------------------------------------------------------------------


@require_GET
def home(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("gallery-list")
    return render(request, "captioning/home.html", {"public_galleries": selectors.gallery_list_public()[:6]})


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("gallery-list")
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}! Create your first gallery to start uploading.")
        return redirect("gallery-list")
    return render(request, "registration/signup.html", {"form": form})


@login_required
@require_GET
def gallery_list(request: HttpRequest) -> HttpResponse:
    galleries = selectors.gallery_list_for_member(request.user)
    return render(request, "captioning/gallery_list.html", {"galleries": galleries})


@require_GET
def gallery_public_list(request: HttpRequest) -> HttpResponse:
    return render(request, "captioning/gallery_public_list.html", {"galleries": selectors.gallery_list_public()})


@login_required
def gallery_new(request: HttpRequest) -> HttpResponse:
    form = GalleryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            gallery = gallery_create(acting_user=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, _error_text(error))
        else:
            messages.success(request, f"Gallery “{gallery.title}” created. Drop photos here to caption them.")
            return redirect(gallery)
    return render(request, "captioning/gallery_form.html", {"form": form, "creating": True})


@require_GET
def gallery_detail(request: HttpRequest, public_id: str, slug: str = "") -> HttpResponse:
    gallery = _gallery_or_404(request, public_id)
    if slug != (gallery.slug or "-"):
        return redirect(gallery)
    language = caption_language(request)
    role = selectors.gallery_role(request.user, gallery)
    first_page, _pages = _grid_pages(request.GET)
    summaries, next_page = _gallery_photo_summaries(gallery, language, first_page=first_page, pages=1)
    return render(
        request,
        "captioning/gallery_detail.html",
        {
            "gallery": gallery,
            "photos": summaries,
            "role": role,
            "can_upload": selectors.gallery_can_upload(request.user, gallery),
            "can_edit": role == selectors.OWNER,
            "page": first_page,
            "next_page": next_page,
            "failed_count": selectors.photo_count_failed(gallery),
            "language": language,
            "language_name": language_name(language),
            # The button (and the script) that asks for them: this page only reads.
            "translations_missing": language != SOURCE_LANGUAGE
            and any(photo["caption"] and not photo["translation_status"] for photo in summaries),
            "upload_limit_mb": settings.UPLOAD_MAX_BYTES // (1024 * 1024),
        },
    )


@require_GET
def gallery_status(request: HttpRequest, public_id: str) -> JsonResponse:
    """The grid's photos as JSON: ?page=N (default 1), and ?pages=K for K pages from there (the status poll
    asks for the pages the browser shows). `next_page` is the page after them, or null."""
    gallery = _gallery_or_404(request, public_id)
    first_page, pages = _grid_pages(request.GET)
    summaries, next_page = _gallery_photo_summaries(
        gallery, caption_language(request), first_page=first_page, pages=pages
    )
    busy = sum(
        1
        for photo in summaries
        if photo["status"] in (Photo.Status.QUEUED, Photo.Status.PROCESSING)
        or photo["translation_status"] == Translation.Status.PENDING
    )
    return JsonResponse({"photos": summaries, "busy": busy, "next_page": next_page})


@login_required
@require_POST
def gallery_translate(request: HttpRequest, public_id: str) -> HttpResponse:
    """Asks for the missing translations of the captions on the grid pages shown (page=, pages=) into
    language=; the status poll then shows them as they arrive."""
    gallery = _gallery_or_404(request, public_id)
    first_page, pages = _grid_pages(request.POST)
    photos, _next_page = _gallery_grid(gallery, first_page=first_page, pages=pages)
    captions = [caption for photo in photos if (caption := selectors.caption_current(photo)) is not None]
    language = request.POST.get("language", "")
    return _translation_asked(
        request,
        gallery,
        language,
        lambda: {"requested": translation_request_many(captions=captions, language=language)},
    )


def _translation_asked(
    request: HttpRequest, page: Gallery | Photo, language: str, ask: Callable[[], dict]
) -> HttpResponse:
    """Calls `ask` (translation services; it returns what the JSON answer adds), then answers JSON or sends the
    browser back to `page` in `language`, which is remembered."""
    try:
        answer = ask()
    except ValidationError as error:
        if _wants_json(request):
            return JsonResponse({"ok": False, "error": _error_text(error)}, status=400)
        messages.error(request, _error_text(error))
        return redirect(page)
    request.session[LANGUAGE_SESSION_KEY] = language
    if _wants_json(request):
        return JsonResponse({"ok": True, **answer})
    return redirect(f"{page.get_absolute_url()}?lang={language}")


@login_required
def gallery_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = _owned_gallery_or_404(request, public_id)
    initial = {"title": gallery.title, "description": gallery.description, "visibility": gallery.visibility}
    form = GalleryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            gallery_update(gallery=gallery, acting_user=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, _error_text(error))
        else:
            messages.success(request, "Gallery saved.")
            return redirect(gallery)
    return render(
        request,
        "captioning/gallery_form.html",
        {
            "form": form,
            "gallery": gallery,
            "member_form": MemberForm(),
            "members": selectors.gallery_members(gallery),
            "creating": False,
        },
    )


@login_required
@require_POST
def gallery_member_add(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = _owned_gallery_or_404(request, public_id)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            membership = gallery_member_set(gallery=gallery, acting_user=request.user, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(
                request, f"{membership.user.username} is now {membership.get_role_display().split(' —')[0].lower()}."
            )
    else:
        messages.error(request, "Give a username and a role.")
    return redirect("gallery-edit", public_id=gallery.public_id)


@login_required
@require_POST
def gallery_member_delete(request: HttpRequest, public_id: str, user_id: int) -> HttpResponse:
    gallery = _owned_gallery_or_404(request, public_id)
    gallery_member_remove(gallery=gallery, acting_user=request.user, user_id=user_id)
    messages.success(request, "Member removed.")
    return redirect("gallery-edit", public_id=gallery.public_id)


@login_required
@require_POST
def gallery_remove(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = _owned_gallery_or_404(request, public_id)
    title = gallery.title
    gallery_delete(gallery=gallery, acting_user=request.user)
    messages.success(request, f"Gallery “{title}” and its photos were deleted.")
    return redirect("gallery-list")


@login_required
@require_POST
def gallery_retry_failed(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = _gallery_or_404(request, public_id)
    manageable = [
        photo.pk
        for photo in gallery.photos.filter(status=Photo.Status.FAILED)
        if selectors.photo_can_manage(request.user, photo)
    ]
    count = jobs.retry_failed(photos=Photo.objects.filter(pk__in=manageable))
    messages.success(request, f"{count} photo{'s' if count != 1 else ''} queued again.")
    return redirect(gallery)


@login_required
@require_POST
def photo_upload_view(request: HttpRequest, public_id: str) -> JsonResponse:
    """One file per request (the page sends each file separately, with its own progress bar)."""
    gallery = _gallery_or_404(request, public_id)
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
    photo = outcome.photo
    body = {
        "ok": True,
        "duplicate": outcome.duplicate,
        # A duplicate is always found in this gallery (photo_upload): the message names no other.
        "message": "Already uploaded to this gallery." if outcome.duplicate else "Uploaded — captioning queued.",
        "photo": photo_summary(photo, SOURCE_LANGUAGE, {}),
    }
    return JsonResponse(body, status=200 if outcome.duplicate else 201)


@functools.lru_cache(maxsize=8)
def _recaption_fields(model_versions: tuple[tuple[int, str], ...]) -> dict[str, str]:
    """The "Caption again" form's fields as HTML, by name. They are the same for every photo and everyone who may
    re-caption, given the models on offer (`model_versions`: each one's id and name, in the form's order), so they
    are rendered once per process: rendering their widgets took a fifth of the photo page."""
    form = RecaptionForm()
    return {name: str(form[name]) for name in form.fields}


@require_GET
def photo_detail(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
    language = caption_language(request)
    # The history holds the current caption: one query for both.
    history = list(selectors.caption_history(photo))
    caption = next((item for item in history if item.is_current), None)
    translation = None
    if caption and language != SOURCE_LANGUAGE:
        translation = selectors.translation_get(caption=caption, language=language)
    can_manage = selectors.photo_can_manage(request.user, photo)
    return render(
        request,
        "captioning/photo_detail.html",
        {
            "photo": photo,
            "gallery": photo.gallery,
            "caption": caption,
            "unsure": caption_unsure_notice(caption),
            "alt": photo_alt_text(photo, caption),
            "history": history,
            "translation": translation,
            "translations": caption.translations.all() if caption else [],
            "language": language,
            "language_name": language_name(language),
            "can_manage": can_manage,
            "sees_original": selectors.photo_sees_original(request.user, photo),
            "caption_form": CaptionEditForm(initial={"text": caption.text if caption else ""}),
            "recaption_fields": (
                _recaption_fields(tuple(selectors.model_version_list().values_list("pk", "name")))
                if can_manage
                else None
            ),
            "can_choose_cover": selectors.gallery_can_edit(request.user, photo.gallery),
            "is_cover": photo.gallery.cover_photo_id == photo.pk,
        },
    )


@require_GET
def model_list(request: HttpRequest) -> HttpResponse:
    return render(request, "captioning/model_list.html", {"model_versions": selectors.model_version_list()})


@require_GET
def model_detail(request: HttpRequest, model_version_id: int) -> HttpResponse:
    """What captions the photos: public, like the captions that link here."""
    model_version = selectors.model_version_list().filter(pk=model_version_id).first()
    if model_version is None:
        raise Http404("No such model")
    return render(request, "captioning/model_detail.html", {"facts": model_version_facts(model_version)})


@require_GET
def photo_status(request: HttpRequest, photo_uuid) -> JsonResponse:
    photo = _photo_or_404(request, photo_uuid)
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
    photo = _photo_or_404(request, photo_uuid)
    form = CaptionEditForm(request.POST)
    if form.is_valid():
        try:
            photo_caption_edit(photo=photo, acting_user=request.user, text=form.cleaned_data["text"])
        except ValidationError as error:
            messages.error(request, _error_text(error))
        else:
            messages.success(request, "Caption saved; the previous one is in the history.")
    else:
        messages.error(request, "A caption is 1 to 1000 characters.")
    return redirect(photo)


@login_required
@require_POST
def photo_recaption_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
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
        messages.error(request, _error_text(error))
    else:
        messages.success(request, "Queued for a new caption; the current one stays in the history.")
    return redirect(photo)


@login_required
@require_POST
def photo_retry_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
    try:
        photo_retry(photo=photo, acting_user=request.user)
    except ValidationError as error:
        messages.error(request, _error_text(error))
    else:
        messages.success(request, "Queued again.")
    return redirect(photo)


@login_required
@require_POST
def photo_delete_view(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
    gallery = photo.gallery
    photo_delete(photo=photo, acting_user=request.user)
    messages.success(request, "Photo deleted.")
    return redirect(gallery)


@login_required
@require_POST
def photo_make_cover(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
    gallery_cover_set(gallery=photo.gallery, photo=photo, acting_user=request.user)
    messages.success(request, f"This photo is now the cover of “{photo.gallery.title}”.")
    return redirect(photo)


@login_required
@require_POST
def photo_translate(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
    caption = selectors.caption_current(photo)
    language = request.POST.get("language", "")
    if caption is None:
        raise Http404("This photo has no caption yet")

    def ask() -> dict:
        translation = translation_request(caption=caption, language=language)
        if translation is not None and translation.status == Translation.Status.FAILED and request.POST.get("retry"):
            translation = translation_retry(translation=translation)
        return {"status": translation.status if translation else "done"}

    return _translation_asked(request, photo, language, ask)


def _timeline_page(request: HttpRequest, *, page: int, include_shared: bool) -> tuple[list[dict], int | None]:
    """One page of the timeline's summaries, each with the month it falls in, and the next page's number."""
    start = (page - 1) * TIMELINE_PAGE_SIZE
    photos = list(
        selectors.photo_list_timeline(acting_user=request.user, include_shared=include_shared)[
            start : start + TIMELINE_PAGE_SIZE + 1
        ]
    )
    next_page = page + 1 if len(photos) > TIMELINE_PAGE_SIZE else None
    photos = photos[:TIMELINE_PAGE_SIZE]
    language = caption_language(request)
    captions = [caption for photo in photos if (caption := selectors.caption_current(photo)) is not None]
    translations = selectors.translation_map(captions, language) if language != SOURCE_LANGUAGE and captions else {}
    links = PhotoLinks()
    summaries = []
    for photo in photos:
        # EXIF times are stored as the camera's wall clock (in UTC); upload times are shown in the site's zone.
        shown_at = photo.taken_at or timezone.localtime(photo.created_at)
        summaries.append(
            {
                **photo_summary(photo, language, translations, links),
                "month": shown_at.strftime("%Y-%m"),
                "month_label": date_format(shown_at, "F Y"),
            }
        )
    return summaries, next_page


def _months(summaries: list[dict]) -> list[dict]:
    """Consecutive summaries grouped by month, in order: [{"month", "label", "photos"}]."""
    months: list[dict] = []
    for summary in summaries:
        if not months or months[-1]["month"] != summary["month"]:
            months.append({"month": summary["month"], "label": summary["month_label"], "photos": []})
        months[-1]["photos"].append(summary)
    return months


@login_required
@require_GET
def timeline(request: HttpRequest) -> HttpResponse:
    """All photos of your library (and, with ?shared=1, of the galleries shared with you) by date taken, a month
    at a time; the next photos load as the end scrolls into view (or with the "More photos" link)."""
    include_shared = request.GET.get("shared") == "1"
    page, _pages = _grid_pages(request.GET)
    summaries, next_page = _timeline_page(request, page=page, include_shared=include_shared)
    return render(
        request,
        "captioning/timeline.html",
        {"months": _months(summaries), "next_page": next_page, "include_shared": include_shared, "page": page},
    )


@login_required
@require_GET
def timeline_page(request: HttpRequest) -> JsonResponse:
    """?page=N of the timeline as JSON (?shared=1 as on the page): `photos` with their `month`, and `next_page`."""
    page, _pages = _grid_pages(request.GET)
    summaries, next_page = _timeline_page(request, page=page, include_shared=request.GET.get("shared") == "1")
    return JsonResponse({"photos": summaries, "next_page": next_page})


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """The header's search box: photos the visitor may see, by what is in them (CLIP) and by their captions in
    every stored language, ranked together."""
    query = " ".join(request.GET.get("q", "").split())
    language = caption_language(request)
    context = {"query": query, "page": None, "photos": [], "results": None}
    if query:
        results = photo_search(user=request.user, query=query)
        page = Paginator(results, SEARCH_PAGE_SIZE).get_page(request.GET.get("page"))
        photos = list(page.object_list)
        captions = [caption for photo in photos if (caption := selectors.caption_current(photo)) is not None]
        translations = selectors.translation_map(captions, language) if language != SOURCE_LANGUAGE else {}
        links = PhotoLinks()
        context.update(
            results=results,
            page=page,
            photos=[
                {**photo_summary(photo, language, translations, links), "hit": photo.search_hit} for photo in photos
            ],
        )
    return render(request, "captioning/search.html", context)


@require_GET
def translation_help(request: HttpRequest) -> HttpResponse:
    """What is translated, by whom, and how an administrator turns a translation service on."""
    provider = translation_provider()
    return render(
        request,
        "captioning/translation_help.html",
        {
            "provider": provider,
            "provider_host": provider_host(provider) if provider else "",
            "providers": [(code, name, host) for code, (name, host) in PROVIDERS.items()],
            "languages": [(code, language_name(code)) for code in translatable_languages()],
            "stored_languages": [name for code, name in offered_languages(request) if code != SOURCE_LANGUAGE],
        },
    )


# Files ---------------------------------------------------------------------------------------------------


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
    photo = _photo_or_404(request, photo_uuid)
    return file_response(photo.thumbnail, "image/webp")


@require_GET
def photo_image(request: HttpRequest, photo_uuid) -> HttpResponse:
    photo = _photo_or_404(request, photo_uuid)
    return file_response(photo.display_image, "image/webp")


@require_GET
def photo_original(request: HttpRequest, photo_uuid) -> HttpResponse:
    """The uploaded file for its owner; for everyone else the copy without metadata (no GPS)."""
    photo = _photo_or_404(request, photo_uuid)
    stem = (photo.original_filename.rsplit(".", 1)[0] if photo.original_filename else str(photo.uuid)) or "photo"
    if selectors.photo_sees_original(request.user, photo):
        extension = photo.original.name.rsplit(".", 1)[-1]
        content_type = (
            CONTENT_TYPES.get(photo.format)
            or mimetypes.guess_type(photo.original.name)[0]
            or "application/octet-stream"
        )
        return file_response(photo.original, content_type, download_name=f"{stem}.{extension}")
    return file_response(photo.display_image, "image/webp", download_name=f"{stem}.webp")
