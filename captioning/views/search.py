"""The search page."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from captioning import selectors
from captioning.confidence import caption_unsure_notices
from captioning.links import PhotoLinks
from captioning.search import photo_search
from captioning.translators import (
    SOURCE_LANGUAGE,
)
from captioning.views.common import caption_language, photo_row_summary

SEARCH_PAGE_SIZE = 24


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
        rows = list(page.object_list)
        captions = [row["caption"] for row in rows if row["caption"] is not None]
        translations = (
            selectors.translation_map([caption["id"] for caption in captions], language)
            if language != SOURCE_LANGUAGE
            else {}
        )
        unsure = caption_unsure_notices(caption["id"] for caption in captions if not caption["confident"])
        links = PhotoLinks()
        context.update(
            results=results,
            page=page,
            photos=[
                {
                    **photo_row_summary(
                        row, language, translations, links, row["caption"] and unsure.get(row["caption"]["id"])
                    ),
                    "hit": row["search_hit"],
                }
                for row in rows
            ],
        )
    return render(request, "captioning/search.html", context)
