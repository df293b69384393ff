"""Gallery pages: lists, the gallery and its grid (with its status poll), editing, members, deletion."""

import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from captioning import jobs, selectors
from captioning.forms import GalleryForm, MemberForm
from captioning.links import GalleryLinks, PhotoLinks
from captioning.models import Gallery, Photo, Translation
from captioning.services.galleries import (
    gallery_create,
    gallery_delete,
    gallery_member_remove,
    gallery_member_set,
    gallery_update,
)
from captioning.services.photos import AlbumResult, photo_gallery_remove
from captioning.services.translations import translation_request_many
from captioning.translators import (
    SOURCE_LANGUAGE,
    language_name,
)
from captioning.views.common import (
    caption_language,
    error_text,
    gallery_or_404,
    grid_pages,
    grid_row_summary,
    owned_gallery_or_404,
    translation_asked,
)

# The gallery grid shows this many photos at first; the page fetches the next ones as its end scrolls into view
# (or a "More photos" link shows them, without JavaScript). Rendering every photo of a large gallery at once was
# the gallery page's cost: 200 photos kept it at 32 requests/s on 2 cores.
GALLERY_PAGE_SIZE = 24


def _gallery_with_role_or_404(request: HttpRequest, public_id: str) -> selectors.GalleryForViewer:
    try:
        return selectors.gallery_get_with_role(acting_user=request.user, public_id=public_id)
    except Gallery.DoesNotExist:
        raise Http404("No such gallery") from None


def _gallery_grid(
    request: HttpRequest, gallery: Gallery, *, first_page: int, pages: int
) -> tuple[list[dict], int | None]:
    """The photos of `pages` pages of the gallery's grid from `first_page` on (rows of
    `selectors.photo_rows_for_gallery_grid`), and the number of the page after them (None at the end)."""
    count = pages * GALLERY_PAGE_SIZE
    # One photo more than asked for says whether another page follows, without counting the gallery's photos.
    rows = selectors.photo_rows_for_gallery_grid(
        gallery_id=gallery.pk,
        acting_user=request.user,
        offset=(first_page - 1) * GALLERY_PAGE_SIZE,
        limit=count + 1,
    )
    return rows[:count], first_page + pages if len(rows) > count else None


def _gallery_photo_summaries(
    request: HttpRequest, gallery: Gallery, language: str, *, first_page: int, pages: int
) -> tuple[list[dict], int | None]:
    """The summaries of `pages` pages of the gallery's grid from `first_page` on, and the number of the page
    after them (None at the end)."""
    rows, next_page = _gallery_grid(request, gallery, first_page=first_page, pages=pages)
    translations: dict[int, Translation] = {}
    if language != SOURCE_LANGUAGE:
        caption_ids = [row["caption_id"] for row in rows if row["caption_id"] is not None]
        translations = selectors.translation_map(caption_ids, language) if caption_ids else {}
    links = PhotoLinks()
    return [grid_row_summary(row, language, translations, links) for row in rows], next_page


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
            form.add_error(None, error_text(error))
        else:
            messages.success(request, f"Gallery “{gallery.title}” created. Drop photos here to caption them.")
            return redirect(gallery)
    return render(request, "captioning/gallery_form.html", {"form": form, "creating": True})


@require_GET
def gallery_detail(request: HttpRequest, public_id: str, slug: str = "") -> HttpResponse:
    found = _gallery_with_role_or_404(request, public_id)
    gallery = found.gallery
    if slug != (gallery.slug or "-"):
        return redirect(gallery)
    language = caption_language(request)
    first_page, _pages = grid_pages(request.GET)
    summaries, next_page = _gallery_photo_summaries(request, gallery, language, first_page=first_page, pages=1)
    return render(
        request,
        "captioning/gallery_detail.html",
        {
            "gallery": gallery,
            "gallery_links": GalleryLinks(gallery.public_id),
            "owner_username": found.owner_username,
            "photos": summaries,
            "role": found.role,
            "can_upload": found.can_upload,
            "can_edit": found.role == selectors.OWNER,
            "page": first_page,
            "next_page": next_page,
            "failed_count": found.failed_count,
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
    gallery = _gallery_with_role_or_404(request, public_id).gallery
    first_page, pages = grid_pages(request.GET)
    summaries, next_page = _gallery_photo_summaries(
        request, gallery, caption_language(request), first_page=first_page, pages=pages
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
    gallery = gallery_or_404(request, public_id)
    first_page, pages = grid_pages(request.POST)
    rows, _next_page = _gallery_grid(request, gallery, first_page=first_page, pages=pages)
    captions = selectors.caption_list([row["caption_id"] for row in rows if row["caption_id"] is not None])
    language = request.POST.get("language", "")
    return translation_asked(
        request,
        gallery,
        language,
        lambda: {"requested": translation_request_many(captions=captions, language=language)},
    )


@login_required
def gallery_edit(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = owned_gallery_or_404(request, public_id)
    initial = {"title": gallery.title, "description": gallery.description, "visibility": gallery.visibility}
    form = GalleryForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            gallery_update(gallery=gallery, acting_user=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error_text(error))
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
    gallery = owned_gallery_or_404(request, public_id)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            membership = gallery_member_set(gallery=gallery, acting_user=request.user, **form.cleaned_data)
        except ValidationError as error:
            messages.error(request, error_text(error))
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
    gallery = owned_gallery_or_404(request, public_id)
    gallery_member_remove(gallery=gallery, acting_user=request.user, user_id=user_id)
    messages.success(request, "Member removed.")
    return redirect("gallery-edit", public_id=gallery.public_id)


@login_required
@require_POST
def gallery_remove(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = owned_gallery_or_404(request, public_id)
    title = gallery.title
    gallery_delete(gallery=gallery, acting_user=request.user)
    messages.success(request, f"Gallery “{title}” and its photos were deleted.")
    return redirect("gallery-list")


@login_required
@require_POST
def gallery_retry_failed(request: HttpRequest, public_id: str) -> HttpResponse:
    gallery = gallery_or_404(request, public_id)
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
def gallery_photo_remove(request: HttpRequest, public_id: str) -> HttpResponse:
    """The "Remove from this gallery" button (its owner and editors), on the gallery's grid and on the photo page:
    the photo stays in its owner's library and its other galleries."""
    gallery = gallery_or_404(request, public_id)
    try:
        photo_uuid = uuid.UUID(request.POST.get("photo", ""))
    except ValueError:
        raise Http404("No such photo") from None
    outcome = photo_gallery_remove(gallery=gallery, photo_uuids=[photo_uuid], acting_user=request.user)[photo_uuid]
    if outcome == AlbumResult.NOT_IN_GALLERY:
        raise Http404("No such photo in this gallery")
    messages.success(request, f"Removed from “{gallery.title}”; the photo stays in its owner's library.")
    if request.POST.get("return_to") == "photo":
        still_visible = selectors.photo_list_visible_to(request.user, include_unlisted=True).filter(uuid=photo_uuid)
        if still_visible.exists():
            return redirect("photo-detail", photo_uuid=photo_uuid)
    return redirect(gallery)
