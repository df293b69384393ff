"""The Jinja2 environment the site's pages render with (settings.TEMPLATES; the admin keeps Django's templates).

Django's template language cost a page 40-70% of its CPU time (its node walk, variable lookups, an escape per
value); Jinja2 compiles each template to Python once. The globals and filters here are the few the pages use,
with the meaning Django's template language gives them.
"""

import functools

from django.conf import settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template import defaultfilters
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.html import format_html
from django.utils.timesince import TIME_STRINGS
from django.utils.timesince import timesince as django_timesince
from django.utils.timezone import template_localtime
from django.utils.translation import get_language
from jinja2 import ChainableUndefined, Environment

from captioning import templating, translators
from captioning.links import PhotoLinks


def url(name: str, *args: object) -> str:
    """`{{ url("photo-detail", photo.uuid) }}`: Django's {% url %}. An address without arguments (the header's and
    footer's eight on every page, 10 us each) is resolved once per process and URL configuration."""
    if args:
        return reverse(name, args=args)
    return _address(name, get_script_prefix(), get_urlconf() or settings.ROOT_URLCONF, get_language())


@functools.lru_cache(maxsize=256)
def _address(name: str, script_prefix: str, urlconf: str, language: str | None) -> str:
    """The key holds all that reverse() reads besides the name (the language for i18n_patterns)."""
    return reverse(name, urlconf=urlconf)


def date(value: object, format_name: str | None = None) -> str:
    """Django's `date` filter in the visitor's time zone (Django's templates convert before they format)."""
    return defaultfilters.date(template_localtime(value), format_name)


def time(value: object, format_name: str | None = None) -> str:
    return defaultfilters.time(template_localtime(value), format_name)


def timesince(value: object, now: object = None) -> str:
    """Django's `timesince` filter ("3 days, 2 hours"), each unit's words translated once per language and number:
    resolving Django's lazy translations was most of the 40 us it took, 13 times on Explore."""
    if not value:
        return ""
    try:
        return django_timesince(value, now, time_strings=_TIME_WORDS)
    except (ValueError, TypeError):
        return ""


class _TimeWords:
    """`words % {"num": n}` as Django's TIME_STRINGS[unit] gives it, in the active language."""

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def __mod__(self, values: dict) -> str:
        return _time_words(self.unit, values["num"], get_language())


@functools.lru_cache(maxsize=4096)
def _time_words(unit: str, number: int, language: str | None) -> str:
    return TIME_STRINGS[unit] % {"num": number}


_TIME_WORDS = {unit: _TimeWords(unit) for unit in TIME_STRINGS}


def csrf(request: HttpRequest) -> dict:
    """One CSRF token per page, as Django's templates have it: the Jinja2 backend's own `csrf_input` masks a new
    one (32 random characters) at each form, seven times on a photo's page."""
    token = SimpleLazyObject(lambda: get_token(request))
    return {
        "csrf_token": token,
        "csrf_input": SimpleLazyObject(
            lambda: format_html('<input type="hidden" name="csrfmiddlewaretoken" value="{}">', token)
        ),
    }


def environment(**options: object) -> Environment:
    # A missing variable or attribute is empty, as in Django's templates: pages leave out what a view does not
    # give (no gallery on the search page's tiles, no results before a search).
    options["undefined"] = ChainableUndefined
    # Django's templates keep the newline a template (an included tile) ends with.
    options["keep_trailing_newline"] = True
    env = Environment(**options)
    env.globals.update(
        url=url,
        static=staticfiles_storage.url,
        photo_links=PhotoLinks,
        selection_tools=templating.selection_tools,
    )
    env.filters.update(
        capfirst=defaultfilters.capfirst,
        date=date,
        filesizeformat=defaultfilters.filesizeformat,
        floatformat=defaultfilters.floatformat,
        linebreaksbr=defaultfilters.linebreaksbr,
        pluralize=defaultfilters.pluralize,
        time=time,
        timesince=timesince,
        truncatechars=defaultfilters.truncatechars,
        language_name=translators.language_name,
        provider_name=translators.provider_name,
        shorten_middle=templating.shorten_middle,
    )
    return env
