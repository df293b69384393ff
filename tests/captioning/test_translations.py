"""Caption translations. The translation web services (Google, DeepL) are outside this machine, so a fake
one runs on 127.0.0.1 and answers the way they do; our provider calls and requests run for real against it,
pointed there by TRANSLATION_SERVICE_URL."""

import re
import socket
import threading
from collections.abc import Iterator

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from captioning import translators
from captioning.models import Caption, Gallery, Photo, Translation
from captioning.services.photos import photo_upload
from captioning.services.translations import translation_perform, translation_request, translation_retry
from tests.captioning.helpers import FakeTranslationService, encode, picture, serve_fake_translations

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def fake_translation_server() -> Iterator[FakeTranslationService]:
    service, server = serve_fake_translations()
    yield service
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_google(fake_translation_server, settings) -> FakeTranslationService:
    fake_translation_server.requests.clear()
    fake_translation_server.status = 200
    fake_translation_server.hold = None
    fake_translation_server.answered = 0
    settings.TRANSLATION_PROVIDER = "google"
    settings.TRANSLATION_SERVICE_URL = f"{fake_translation_server.base_url}/m"
    settings.CAPTION_LANGUAGES = ["fr", "de"]
    return fake_translation_server


@pytest.fixture
def caption(alice, gallery) -> Caption:
    photo = photo_upload(
        acting_user=alice, gallery=gallery, file=SimpleUploadedFile("c.jpg", encode(picture(seed=31)))
    ).photo
    photo.status = Photo.Status.CAPTIONED
    photo.save()
    return Caption.objects.create(photo=photo, text="a dog running on the beach", is_current=True)


def test_a_caption_is_translated_once_and_stored(fake_google, caption):
    translation = translation_request(caption=caption, language="fr")
    assert translation.status == Translation.Status.PENDING

    translation = translation_perform(translation_id=translation.pk)

    assert (translation.status, translation.text, translation.provider) == (
        Translation.Status.DONE,
        "[fr] a dog running on the beach",
        "google",
    )
    assert fake_google.requests == [{"path": "/m", "tl": "fr", "sl": "en", "q": "a dog running on the beach"}]

    again = translation_request(caption=caption, language="fr")
    translation_perform(translation_id=again.pk)
    assert again.pk == translation.pk
    assert Translation.objects.count() == 1
    assert len(fake_google.requests) == 1


def test_english_needs_no_translation_and_unknown_languages_are_refused(fake_google, caption):
    assert translation_request(caption=caption, language="en") is None
    with pytest.raises(ValidationError):
        translation_request(caption=caption, language="xx")
    assert Translation.objects.count() == 0


def test_a_stalled_service_times_out_and_the_failure_is_stored(fake_google, caption, settings):
    settings.TRANSLATION_TIMEOUT_SECONDS = 1
    fake_google.hold = threading.Event()  # the service stays silent until the test lets it answer
    translation = translation_request(caption=caption, language="de")

    try:
        translation = translation_perform(translation_id=translation.pk)
        answered_before_the_failure = fake_google.answered
    finally:
        fake_google.hold.set()

    assert answered_before_the_failure == 0, "the translation waited for the service's answer"
    assert translation.status == Translation.Status.FAILED
    assert translation.error_message == "Google Translate did not answer within 1 seconds; try again later."


def test_a_failed_translation_can_be_retried(fake_google, caption):
    fake_google.status = 500
    translation = translation_perform(translation_id=translation_request(caption=caption, language="fr").pk)
    assert translation.status == Translation.Status.FAILED
    assert translation.error_message

    # A failed one is not asked for again by itself...
    assert translation_request(caption=caption, language="fr").status == Translation.Status.FAILED
    # ...but on request.
    fake_google.status = 200
    translation = translation_retry(translation=translation)
    assert translation.status == Translation.Status.PENDING
    translation = translation_perform(translation_id=translation.pk)
    assert (translation.status, translation.text, translation.attempts) == (
        Translation.Status.DONE,
        "[fr] a dog running on the beach",
        2,
    )


def test_deepl_is_used_when_its_key_is_set(fake_google, caption, settings):
    settings.TRANSLATION_PROVIDER = "deepl"
    settings.DEEPL_API_KEY = "test-key"
    settings.TRANSLATION_SERVICE_URL = f"{fake_google.base_url}/v2/"

    translation = translation_perform(translation_id=translation_request(caption=caption, language="de").pk)

    assert (translation.status, translation.provider, translation.text) == (
        "done",
        "deepl",
        "[de] a dog running on the beach",
    )
    assert fake_google.requests[-1]["path"] == "/v2/translate"
    assert fake_google.requests[-1]["authorization"] == "DeepL-Auth-Key test-key"  # never in the address
    assert fake_google.requests[-1]["target_lang"] == "DE"


def test_only_the_translations_own_requests_carry_the_deadline(fake_google, caption, monkeypatch):
    """The deadline is set on the translation's own session, not on every request of the process."""
    import requests

    from captioning import translators

    seen = []
    real_request = requests.Session.request

    def record(self, method, url, *args, **kwargs):
        seen.append(kwargs.get("timeout"))
        return real_request(self, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", record)
    translators.translate("hello", "fr")
    requests.get(fake_google.base_url + "/m", params={"q": "x", "tl": "fr"})
    assert seen == [10, None]


def test_the_photo_page_switches_language(client, alice, fake_google, caption):
    client.force_login(alice)
    url = reverse("photo-detail", args=[caption.photo.uuid])

    page = client.get(url, {"lang": "fr"}).content.decode()
    assert "Translate into Français" in page  # a GET asks for nothing: the page's button (or script) does
    assert '<option value="fr" selected>' in page
    response = client.post(reverse("photo-translate", args=[caption.photo.uuid]), {"language": "fr"})
    assert response.url == f"{url}?lang=fr"
    assert "Translating…" in client.get(response.url).content.decode()

    translation_perform(translation_id=Translation.objects.get(language="fr").pk)
    page = client.get(url).content.decode()  # the choice is remembered
    assert "[fr] a dog running on the beach" in page

    status = client.get(reverse("photo-status", args=[caption.photo.uuid])).json()
    assert status["translation"] == "[fr] a dog running on the beach"

    page = client.get(url, {"lang": "en"}).content.decode()
    assert "[fr]" not in page.split("Translations")[0]


def test_the_gallery_page_asks_for_missing_translations(client, alice, fake_google, caption):
    client.force_login(alice)
    gallery: Gallery = caption.photo.galleries.get()

    page = client.get(gallery.get_absolute_url(), {"lang": "de"}).content.decode()
    assert "Translate captions into Deutsch" in page
    client.post(reverse("gallery-translate", args=[gallery.public_id]), {"language": "de", "page": 1})
    translation = Translation.objects.get(caption=caption, language="de")
    translation_perform(translation_id=translation.pk)

    data = client.get(reverse("gallery-status", args=[gallery.public_id])).json()
    assert data["photos"][0]["translation"] == "[de] a dog running on the beach"
    assert data["busy"] == 0


# Outside services are opt-in --------------------------------------------------------------------------------


@pytest.fixture
def no_service(fake_translation_server, settings) -> FakeTranslationService:
    """No translation service configured (the default), with the fake one listening in case anything calls it."""
    fake_translation_server.requests.clear()
    settings.TRANSLATION_PROVIDER = ""
    settings.TRANSLATION_SERVICE_URL = f"{fake_translation_server.base_url}/m"
    settings.CAPTION_LANGUAGES = ["fr", "de"]
    return fake_translation_server


def test_the_default_is_no_translation_service():
    from clippro_site import settings as site_settings

    assert site_settings.TRANSLATION_PROVIDER == ""


def test_without_a_configured_service_no_caption_text_leaves_the_server(client, alice, no_service, caption):
    client.force_login(alice)

    photo_page = client.get(reverse("photo-detail", args=[caption.photo.uuid]), {"lang": "fr"}).content.decode()
    client.get(caption.photo.galleries.get().get_absolute_url(), {"lang": "fr"})
    with pytest.raises(ValidationError, match="No translation service is configured"):
        translation_request(caption=caption, language="fr")
    with pytest.raises(translators.TranslationFailed, match="No translation service is configured"):
        translators.translate("a dog", "fr")

    assert Translation.objects.count() == 0
    assert no_service.requests == []
    assert 'name="lang"' not in photo_page  # nothing to pick: captions are in English only
    assert "Your photos and their captions stay on this server." in photo_page


def test_without_a_service_the_picker_offers_only_stored_translations_by_name(client, alice, no_service, caption):
    Translation.objects.create(caption=caption, language="de", text="ein Hund", status=Translation.Status.DONE)
    Translation.objects.create(caption=caption, language="fr", status=Translation.Status.FAILED, error_message="x")
    client.force_login(alice)

    page = client.get(reverse("photo-detail", args=[caption.photo.uuid]), {"lang": "de"}).content.decode()

    picker = page[page.index("data-language-picker") :].split("</form>")[0]
    assert re.findall(r'<option value="([^"]+)"[^>]*>([^<]+)</option>', picker) == [
        ("en", "English"),
        ("de", "Deutsch"),
    ]
    assert "ein Hund" in page
    assert ">Deutsch</a>" in page and ">de</a>" not in page  # the translations list names languages too
    assert no_service.requests == []


def test_without_a_service_the_stored_languages_are_read_once_a_while_not_on_every_page(
    client, alice, no_service, caption, monkeypatch
):
    Translation.objects.create(caption=caption, language="de", text="ein Hund", status=Translation.Status.DONE)
    client.force_login(alice)
    page_url = reverse("photo-detail", args=[caption.photo.uuid])
    client.get(page_url)

    with CaptureQueriesContext(connection) as queries:
        page = client.get(page_url).content.decode()
    assert "Deutsch" in page
    assert not [query for query in queries if "DISTINCT" in query["sql"] and "captioning_translation" in query["sql"]]

    # Another process (the worker) finishes a French translation: no signal reaches this one, which sees it
    # once its copy is older than STORED_LANGUAGES_SECONDS.
    def picker() -> str:
        page = client.get(page_url).content.decode()
        return page[page.index("data-language-picker") :].split("</form>")[0]

    french = Translation.objects.create(caption=caption, language="fr", status=Translation.Status.PENDING)
    client.get(page_url)
    Translation.objects.filter(pk=french.pk).update(status=Translation.Status.DONE, text="un chien")
    assert "Deutsch" in picker() and "Français" not in picker()
    monkeypatch.setattr(translators, "STORED_LANGUAGES_SECONDS", 0.0)
    assert "Français" in picker()


def test_with_a_service_the_picker_offers_the_languages_it_translates_into(client, fake_google, settings):
    settings.CAPTION_LANGUAGES = ["fr", "zh-CN", "hi"]

    google = client.get(reverse("home")).content.decode()
    settings.TRANSLATION_PROVIDER = "deepl"
    deepl = client.get(reverse("home")).content.decode()

    options = r'<option value="([^"]+)"'
    assert re.findall(options, google) == ["en", "fr", "zh-CN", "hi"]
    assert re.findall(options, deepl) == ["en", "fr", "zh-CN"]  # DeepL has no Hindi
    assert "caption text is sent to Google Translate to translate it" in google
    assert "caption text is sent to DeepL to translate it" in deepl


def test_a_service_that_cannot_be_reached_fails_with_a_sentence(fake_google, caption, settings):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.TRANSLATION_SERVICE_URL = f"http://127.0.0.1:{closed_port}/m"

    translation = translation_perform(translation_id=translation_request(caption=caption, language="fr").pk)

    assert translation.status == Translation.Status.FAILED
    assert translation.error_message == "Google Translate could not be reached; try again later."


def test_the_help_page_says_what_is_sent_where(client, no_service, settings):
    off = client.get(reverse("translation-help")).content.decode()
    settings.TRANSLATION_PROVIDER = "deepl"
    settings.TRANSLATION_SERVICE_URL = ""
    on = client.get(reverse("translation-help")).content.decode()

    assert "No translation service is configured, so no caption text leaves this server." in off
    assert "TRANSLATION_PROVIDER=google" in off and "DEEPL_API_KEY" in off and "MICROSOFT_TRANSLATOR_KEY" in off
    assert "<strong>DeepL</strong>" in on and "api.deepl.com" in on
    assert "Français" in on and "Deutsch" in on
