"""The search page."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from captioning import selectors
from captioning.links import PhotoLinks
from captioning.search import photo_search
from captioning.translators import (
    SOURCE_LANGUAGE,
)
from captioning.views.common import caption_language, photo_summary

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
        photos = list(page.object_list)
        captions = [caption for photo in photos if (caption := selectors.caption_current(photo)) is not None]
        translations = selectors.translation_map(captions, language) if language != SOURCE_LANGUAGE else {}
        links = PhotoLinks()
        context.update(
            results=results,
            page=page,
            photos=[
                {
                    **photo_summary(photo, language, translations, links, acting_user=request.user),
                    "hit": photo.search_hit,
                }
                for photo in photos
            ],
        )
    return render(request, "captioning/search.html", context)
