"""Translating caption text through deep-translator, with a deadline on every HTTP call.

deep-translator calls `requests.get`/`requests.post` without a timeout (Google's call, DeepL's, and the
language list Microsoft's constructor fetches), so a stalled server would hang a worker for ever. Every
request those calls make goes through `requests.Session.request`; inside `_deadline()` a timeout is added
there for the calling thread only, and other threads' requests are left untouched.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

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


def _provider_language_codes(provider: str) -> frozenset[str]:
    from deep_translator.constants import DEEPL_LANGUAGE_TO_CODE, GOOGLE_LANGUAGES_TO_CODES

    if provider == "google":
        return frozenset(GOOGLE_LANGUAGES_TO_CODES.values())
    if provider == "deepl":
        return frozenset(DEEPL_LANGUAGE_TO_CODE.values())
    # Microsoft publishes its list only on its server (deep-translator fetches it when a translator is made):
    # these are the codes of LANGUAGE_NAMES it accepts as they are written ("no" and "zh-CN" are "nb", "zh-Hans").
    return frozenset(LANGUAGE_NAMES) - {"no", "zh-CN", "zh-TW"}


class TranslationFailed(Exception):
    """The provider could not translate; the message is stored on the Translation and shown."""


@dataclass(frozen=True)
class TranslatedText:
    text: str
    provider: str


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
        from captioning.selectors import translation_languages_stored

        codes = [code for code in translation_languages_stored() if code != SOURCE_LANGUAGE]
    return [(code, language_name(code)) for code in [SOURCE_LANGUAGE, *codes]]


def translate(text: str, target: str) -> TranslatedText:
    """`text` (English) in `target`, from the configured provider, or TranslationFailed with a sentence to show."""
    provider = translation_provider()
    if not provider:
        raise TranslationFailed("No translation service is configured on this server, so captions are not translated.")
    timeout = settings.TRANSLATION_TIMEOUT_SECONDS
    service = provider_name(provider)
    try:
        with _deadline(timeout):
            translator = _make_translator(provider, target)
            translated = translator.translate(text)
    except requests.Timeout:
        raise TranslationFailed(f"{service} did not answer within {timeout} seconds; try again later.") from None
    except requests.RequestException:
        raise TranslationFailed(f"{service} could not be reached; try again later.") from None
    except Exception as error:
        # deep-translator's own errors share no base class worth catching separately; their class says what it was.
        raise TranslationFailed(_failure_sentence(service, target, error)) from error
    if not translated or not str(translated).strip():
        raise TranslationFailed(f"{service} returned an empty translation; try again later.")
    return TranslatedText(str(translated).strip(), provider)


def _failure_sentence(service: str, target: str, error: Exception) -> str:
    from deep_translator import exceptions

    if isinstance(error, exceptions.TooManyRequests):
        return f"{service} is receiving too many requests from this server; try again in a few minutes."
    if isinstance(error, (exceptions.LanguageNotSupportedException, exceptions.InvalidSourceOrTargetLanguage)):
        return f"{service} does not translate into {language_name(target)}."
    if isinstance(error, (exceptions.AuthorizationException, exceptions.ApiKeyException, exceptions.MicrosoftAPIerror)):
        return f"{service} refused this server's request; an administrator should check its key."
    if isinstance(error, exceptions.RequestError):
        return f"{service} could not be reached; try again later."
    return f"{service} could not translate this caption; try again later."


def _make_translator(provider: str, target: str):
    from deep_translator import DeeplTranslator, GoogleTranslator, MicrosoftTranslator

    if provider == "deepl":
        translator = DeeplTranslator(
            source=SOURCE_LANGUAGE,
            target=target,
            api_key=settings.DEEPL_API_KEY,
            use_free_api=settings.DEEPL_USE_FREE_API,
        )
    elif provider == "microsoft":
        translator = MicrosoftTranslator(
            source=SOURCE_LANGUAGE,
            target=target,
            api_key=settings.MICROSOFT_TRANSLATOR_KEY,
            region=settings.MICROSOFT_TRANSLATOR_REGION or None,
        )
    else:
        translator = GoogleTranslator(source=SOURCE_LANGUAGE, target=target)
    if settings.TRANSLATION_SERVICE_URL:
        # deep-translator takes its address from a constant; a proxy or a mirror replaces it here.
        translator._base_url = settings.TRANSLATION_SERVICE_URL
    return translator


_thread_state = threading.local()
_original_session_request = requests.Session.request
_install_lock = threading.Lock()


def _session_request_with_deadline(self, method, url, *args, **kwargs):
    timeout = getattr(_thread_state, "timeout", None)
    if timeout is not None and kwargs.get("timeout") is None:
        kwargs["timeout"] = timeout
    return _original_session_request(self, method, url, *args, **kwargs)


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    with _install_lock:
        if requests.Session.request is not _session_request_with_deadline:
            requests.Session.request = _session_request_with_deadline
    previous = getattr(_thread_state, "timeout", None)
    _thread_state.timeout = seconds
    try:
        yield
    finally:
        _thread_state.timeout = previous
