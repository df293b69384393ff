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


class TranslationFailed(Exception):
    """The provider could not translate; the message is stored on the Translation and shown."""


@dataclass(frozen=True)
class TranslatedText:
    text: str
    provider: str


def language_name(code: str) -> str:
    return LANGUAGE_NAMES.get(code, code)


def available_languages() -> list[tuple[str, str]]:
    """(code, name) pairs for the language picker, the captions' own language first."""
    codes = [SOURCE_LANGUAGE, *(code for code in settings.CAPTION_LANGUAGES if code != SOURCE_LANGUAGE)]
    return [(code, language_name(code)) for code in codes]


def translate(text: str, target: str) -> TranslatedText:
    """`text` (English) in `target`, from the configured provider, or TranslationFailed."""
    provider = settings.TRANSLATION_PROVIDER
    timeout = settings.TRANSLATION_TIMEOUT_SECONDS
    try:
        with _deadline(timeout):
            translator = _make_translator(provider, target)
            translated = translator.translate(text)
    except requests.Timeout:
        raise TranslationFailed(f"{provider} did not answer within {timeout} s; try again later") from None
    except requests.RequestException as error:
        raise TranslationFailed(f"could not reach {provider}: {error.__class__.__name__}") from None
    except Exception as error:
        # deep-translator's own errors (TooManyRequests, RequestError, TranslationNotFound, API key and
        # language errors) share no base class worth catching separately; each says what happened.
        raise TranslationFailed(f"{provider}: {error.__class__.__name__}: {error}".strip(": ")) from None
    if not translated or not str(translated).strip():
        raise TranslationFailed(f"{provider} returned an empty translation")
    return TranslatedText(str(translated).strip(), provider)


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
