"""Translating caption text through a web translation service (Google's mobile page by default, DeepL or
Microsoft with their keys), with a deadline on every HTTP call.

Each translation makes its requests through a session of its own whose every request carries the deadline
(TRANSLATION_TIMEOUT_SECONDS), so a stalled server fails the translation instead of hanging a worker for ever,
and no other code's requests are touched.
"""

import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser

import requests
from django.conf import settings

SOURCE_LANGUAGE = "en"
LANGUAGE_NAMES = {
    "en": "English",
    "fr": "Français",
    "de": "Deutsch",
    "es": "Español",
    "it": "Italiano",
    "pt": "Português",
    "nl": "Nederlands",
    "pl": "Polski",
    "sv": "Svenska",
    "da": "Dansk",
    "fi": "Suomi",
    "no": "Norsk",
    "cs": "Čeština",
    "tr": "Türkçe",
    "ru": "Русский",
    "uk": "Українська",
    "el": "Ελληνικά",
    "ar": "العربية",
    "hi": "हिन्दी",
    "ja": "日本語",
    "ko": "한국어",
    "zh-CN": "中文 (简体)",
    "zh-TW": "中文 (繁體)",
}


# What each provider is called on the pages, and where caption text goes when it is chosen.
PROVIDERS = {
    "google": ("Google Translate", "translate.google.com"),
    "deepl": ("DeepL", "api.deepl.com (api-free.deepl.com with a free key)"),
    "microsoft": ("Microsoft Translator", "api.cognitive.microsofttranslator.com"),
}


# The code each service takes for our languages (LANGUAGE_NAMES); a language a service lacks is absent. Google
# takes our codes as written; DeepL's and Microsoft's are from their API references (DeepL has no Hindi).
DEEPL_TARGETS = {
    "en": "EN-GB", "fr": "FR", "de": "DE", "es": "ES", "it": "IT", "pt": "PT-PT", "nl": "NL", "pl": "PL",
    "sv": "SV", "da": "DA", "fi": "FI", "no": "NB", "cs": "CS", "tr": "TR", "ru": "RU", "uk": "UK", "el": "EL",
    "ar": "AR", "ja": "JA", "ko": "KO", "zh-CN": "ZH-HANS", "zh-TW": "ZH-HANT",
}  # fmt: skip
MICROSOFT_TARGETS = {code: code for code in LANGUAGE_NAMES} | {"no": "nb", "zh-CN": "zh-Hans", "zh-TW": "zh-Hant"}


def _provider_language_codes(provider: str) -> frozenset[str]:
    if provider == "deepl":
        return frozenset(DEEPL_TARGETS)
    if provider == "microsoft":
        return frozenset(MICROSOFT_TARGETS)
    return frozenset(LANGUAGE_NAMES)


class TranslationFailed(Exception):
    """The provider could not translate; the message is stored on the Translation and shown."""


@dataclass(frozen=True)
class TranslatedText:
    text: str
    provider: str


# Where each provider answers; TRANSLATION_SERVICE_URL replaces it (a proxy, a mirror, the tests' fake).
GOOGLE_URL = "https://translate.google.com/m"
DEEPL_URL = "https://api.deepl.com/v2/"
DEEPL_FREE_URL = "https://api-free.deepl.com/v2/"
MICROSOFT_URL = "https://api.cognitive.microsofttranslator.com/translate?api-version=3.0"


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def translation_provider() -> str:
    """The configured outside service, or "" when caption text may not leave this server (the default)."""
    return settings.TRANSLATION_PROVIDER


def provider_name(provider: str) -> str:
    return PROVIDERS[provider][0] if provider in PROVIDERS else provider


def provider_host(provider: str) -> str:
    """Where caption text is sent to `provider`: TRANSLATION_SERVICE_URL when set, else the provider's own host."""
    return settings.TRANSLATION_SERVICE_URL or PROVIDERS[provider][1]


def translatable_languages() -> list[str]:
    """The CAPTION_LANGUAGES the configured provider translates into; none without a provider."""
    provider = translation_provider()
    if not provider:
        return []
    supported = _provider_language_codes(provider)
    return [code for code in settings.CAPTION_LANGUAGES if code != SOURCE_LANGUAGE and code in supported]


def available_languages() -> list[tuple[str, str]]:
    """(code, name) pairs for the language picker, the captions' own language first: with a provider, the
    languages it can translate into; without one, only those some caption already has a stored translation in."""
    if translation_provider():
        codes = translatable_languages()
    else:
        codes = [code for code in _stored_languages() if code != SOURCE_LANGUAGE]
    return [(code, language_name(code)) for code in [SOURCE_LANGUAGE, *codes]]


# The languages of the stored translations, read at most every STORED_LANGUAGES_SECONDS per process: every page
# shows the picker, and the query behind it reads every finished translation (9 ms of PostgreSQL per page at 2,000
# translations, growing with them). Without a provider no new language can appear, and this process's own writes
# forget the copy at once (forget_stored_languages, connected to Translation's saves and deletes).
STORED_LANGUAGES_SECONDS = 30.0
_stored_languages_copy: tuple[float, list[str]] | None = None
_stored_languages_lock = threading.Lock()


def _stored_languages() -> list[str]:
    global _stored_languages_copy
    with _stored_languages_lock:
        copy = _stored_languages_copy
        if copy is None or time.monotonic() - copy[0] > STORED_LANGUAGES_SECONDS:
            from captioning.selectors import translation_languages_stored

            copy = _stored_languages_copy = (time.monotonic(), translation_languages_stored())
        return copy[1]


def forget_stored_languages(**_signal_arguments: object) -> None:
    global _stored_languages_copy
    with _stored_languages_lock:
        _stored_languages_copy = None


class SessionWithDeadline(requests.Session):
    """A requests session whose every request gives up after `timeout` seconds unless told otherwise."""

    def __init__(self, timeout: float):
        super().__init__()
        self.timeout = timeout

    def request(self, method: str, url: str, *args: object, **kwargs: object) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().request(method, url, *args, **kwargs)


def translate(text: str, target: str) -> TranslatedText:
    """`text` (English) in `target`, from the configured provider, or TranslationFailed with a sentence to show."""
    provider = translation_provider()
    if not provider:
        raise TranslationFailed("No translation service is configured on this server, so captions are not translated.")
    timeout = settings.TRANSLATION_TIMEOUT_SECONDS
    translate_with = {"deepl": _deepl, "microsoft": _microsoft}.get(provider, _google)
    service = provider_name(provider)
    try:
        with SessionWithDeadline(timeout) as session:
            translated = translate_with(session, text, target)
    except requests.Timeout:
        raise TranslationFailed(f"{service} did not answer within {timeout} seconds; try again later.") from None
    except requests.HTTPError as error:
        raise TranslationFailed(_refusal_sentence(service, target, error.response.status_code)) from None
    except requests.RequestException:
        raise TranslationFailed(f"{service} could not be reached; try again later.") from None
    except (ValueError, LookupError, TypeError):
        raise TranslationFailed(f"{service} answered something this server could not read; try again later.") from None
    if not translated or not translated.strip():
        raise TranslationFailed(f"{service} returned an empty translation; try again later.")
    return TranslatedText(translated.strip(), provider)


def _refusal_sentence(service: str, target: str, status: int) -> str:
    if status == 429:
        return f"{service} is receiving too many requests from this server; try again in a few minutes."
    if status in (401, 403):
        return f"{service} refused this server's request; an administrator should check its key."
    if status == 400:
        return f"{service} does not translate into {language_name(target)}."
    return f"{service} could not translate this caption (it answered HTTP {status}); try again later."


def _google(session: requests.Session, text: str, target: str) -> str:
    """Google's mobile page holds the translation in <div class="t0"> (or "result-container")."""
    response = session.get(
        settings.TRANSLATION_SERVICE_URL or GOOGLE_URL, params={"tl": target, "sl": SOURCE_LANGUAGE, "q": text}
    )
    response.raise_for_status()
    page = _TranslationInPage()
    page.feed(response.text)
    if page.found is None:
        raise ValueError("no translation in Google's page")
    return page.found


class _TranslationInPage(HTMLParser):
    CLASSES = {"t0", "result-container"}

    def __init__(self):
        super().__init__()
        self.found: str | None = None
        self._depth = 0  # >0 inside the translation's <div>

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "div":
            return
        if self._depth:
            self._depth += 1
        elif self.found is None and set((dict(attrs).get("class") or "").split()) & self.CLASSES:
            self._depth, self.found = 1, ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._depth:
            self._depth -= 1

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.found += data


def _deepl(session: requests.Session, text: str, target: str) -> str:
    base_url = settings.TRANSLATION_SERVICE_URL or (DEEPL_FREE_URL if settings.DEEPL_USE_FREE_API else DEEPL_URL)
    response = session.post(
        base_url + "translate",
        headers={"Authorization": f"DeepL-Auth-Key {settings.DEEPL_API_KEY}"},
        json={"text": [text], "source_lang": SOURCE_LANGUAGE.upper(), "target_lang": DEEPL_TARGETS[target]},
    )
    response.raise_for_status()
    return response.json()["translations"][0]["text"]


def _microsoft(session: requests.Session, text: str, target: str) -> str:
    headers = {"Ocp-Apim-Subscription-Key": settings.MICROSOFT_TRANSLATOR_KEY}
    if settings.MICROSOFT_TRANSLATOR_REGION:
        headers["Ocp-Apim-Subscription-Region"] = settings.MICROSOFT_TRANSLATOR_REGION
    response = session.post(
        settings.TRANSLATION_SERVICE_URL or MICROSOFT_URL,
        params={"from": SOURCE_LANGUAGE, "to": MICROSOFT_TARGETS[target]},
        headers=headers,
        json=[{"text": text}],
    )
    response.raise_for_status()
    return "\n".join(item["text"] for item in response.json()[0]["translations"])
