"""Translating caption text through a web translation service (Google's mobile page by default, DeepL or
Microsoft with their keys), with a deadline on every HTTP call.

Each translation makes its requests through a session of its own whose every request carries the deadline
(TRANSLATION_TIMEOUT_SECONDS), so a stalled server fails the translation instead of hanging a worker for ever,
and no other code's requests are touched.
"""

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


def available_languages() -> list[tuple[str, str]]:
    """(code, name) pairs for the language picker, the captions' own language first."""
    codes = [SOURCE_LANGUAGE, *(code for code in settings.CAPTION_LANGUAGES if code != SOURCE_LANGUAGE)]
    return [(code, language_name(code)) for code in codes]


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
    """`text` (English) in `target`, from the configured provider, or TranslationFailed."""
    provider = settings.TRANSLATION_PROVIDER
    timeout = settings.TRANSLATION_TIMEOUT_SECONDS
    translate_with = {"deepl": _deepl, "microsoft": _microsoft}.get(provider, _google)
    try:
        with SessionWithDeadline(timeout) as session:
            translated = translate_with(session, text, target)
    except requests.Timeout:
        raise TranslationFailed(f"{provider} did not answer within {timeout} s; try again later") from None
    except requests.HTTPError as error:
        raise TranslationFailed(f"{provider} answered HTTP {error.response.status_code}; try again later") from None
    except requests.RequestException as error:
        raise TranslationFailed(f"could not reach {provider}: {error.__class__.__name__}") from None
    except (ValueError, LookupError, TypeError) as error:
        raise TranslationFailed(f"{provider} answered something unexpected: {error}") from None
    if not translated or not translated.strip():
        raise TranslationFailed(f"{provider} returned an empty translation")
    return TranslatedText(translated.strip(), provider)


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
    response = session.get(
        base_url + "translate",
        params={
            "auth_key": settings.DEEPL_API_KEY,
            "source_lang": SOURCE_LANGUAGE,
            "target_lang": target,
            "text": text,
        },
    )
    response.raise_for_status()
    return response.json()["translations"][0]["text"]


def _microsoft(session: requests.Session, text: str, target: str) -> str:
    headers = {"Ocp-Apim-Subscription-Key": settings.MICROSOFT_TRANSLATOR_KEY}
    if settings.MICROSOFT_TRANSLATOR_REGION:
        headers["Ocp-Apim-Subscription-Region"] = settings.MICROSOFT_TRANSLATOR_REGION
    response = session.post(
        settings.TRANSLATION_SERVICE_URL or MICROSOFT_URL,
        params={"from": SOURCE_LANGUAGE, "to": target},
        headers=headers,
        json=[{"text": text}],
    )
    response.raise_for_status()
    return "\n".join(item["text"] for item in response.json()[0]["translations"])
