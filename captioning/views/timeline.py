""" "All photos": the signed-in user's library by date taken, a month at a time."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.formats import date_format
from django.views.decorators.http import require_GET

from captioning import selectors
from captioning.links import PhotoLinks
from captioning.translators import (
    SOURCE_LANGUAGE,
)
from captioning.views.common import caption_language, grid_pages, photo_summary

TIMELINE_PAGE_SIZE = 48


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
                **photo_summary(photo, language, translations, links, acting_user=request.user),
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
    page, _pages = grid_pages(request.GET)
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
    page, _pages = grid_pages(request.GET)
    summaries, next_page = _timeline_page(request, page=page, include_shared=request.GET.get("shared") == "1")
    return JsonResponse({"photos": summaries, "next_page": next_page})
