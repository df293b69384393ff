"""Template filters and tags of the site's pages."""

from django import template
from django.conf import settings

from captioning import selectors, translators

register = template.Library()


@register.filter
def language_name(code: str) -> str:
    """ "fr" -> "Français": pages name languages, they do not show codes."""
    return translators.language_name(code)


@register.filter
def provider_name(provider: str) -> str:
    return translators.provider_name(provider)


@register.filter
def shorten_middle(text: str, length: int = 32) -> str:
    """ "IMG_20240612_183455_holiday_beach_final.jpg" -> "IMG_20240612_1…ach_final.jpg": a long file name keeps its
    start and its extension, which is what tells files apart."""
    text = str(text or "")
    if len(text) <= length:
        return text
    tail = (length - 1) // 2
    head = length - 1 - tail
    return f"{text[:head]}…{text[-tail:]}"


@register.inclusion_tag("captioning/_selection.html", takes_context=True)
def selection_tools(context) -> dict:
    """A grid's "Select" button and the bar of what may be done to the selected photos: download for everyone
    who sees them; for a signed-in visitor also add to one of the galleries they may upload to, caption again and
    delete (the tiles say which photos they may change; the server decides each one again), and on a gallery they
    own or edit, remove from it."""
    request = context["request"]
    return {
        "user": request.user,
        "csrf_token": context.get("csrf_token"),
        "galleries": list(selectors.gallery_list_for_upload(request.user).only("public_id", "title")),
        "zip_limit": settings.ZIP_MAX_PHOTOS,
        "selection_limit": settings.SELECTION_MAX_PHOTOS,
        # On a gallery's page, its owner and editors may take photos out of it.
        "remove_from": context.get("gallery") if context.get("can_upload") else None,
    }
