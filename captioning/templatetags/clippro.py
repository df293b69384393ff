"""Template filters of the site's pages."""

from django import template

from captioning import translators

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
