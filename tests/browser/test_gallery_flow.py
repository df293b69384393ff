"""A person's first visit, in a real browser: sign up, create a gallery, drop in real photos, watch the
worker caption them, switch the captions to French, and keep screenshots of what it looked like."""

import re

import pytest
from playwright.sync_api import expect

from captioning.services.model_versions import model_version_register
from tests.captioning.helpers import serve_fake_translations

pytestmark = pytest.mark.slow
PHOTOS = ["COCO_val2014_000000060623.jpg", "COCO_val2014_000000165547.jpg", "CONCEPTUAL_01.jpg"]


@pytest.fixture
def fake_translations():
    # The translation web service is outside this machine: a fake one on 127.0.0.1 stands in for Google.
    service, server = serve_fake_translations()
    yield service
    server.shutdown()
    server.server_close()


def test_sign_up_upload_caption_and_translate(
    page, live_server, start_worker, save_random_checkpoint, fake_translations, settings, artifacts_dir
):
    from tests.captioning.conftest import PHOTO_FIXTURES

    settings.CAPTION_LANGUAGES = ["fr", "de"]
    settings.TRANSLATION_PROVIDER = "google"
    model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=7), activate=True)
    worker = start_worker(
        TRANSLATION_PROVIDER="google",
        TRANSLATION_SERVICE_URL=f"{fake_translations.base_url}/m",
        CAPTION_LANGUAGES="fr,de",
    )

    page.goto("/")
    page.get_by_role("link", name="Sign up").first.click()
    page.get_by_label("Username").fill("marie")
    page.get_by_label("Password", exact=True).fill("a-Long-passw0rd")
    page.get_by_label("Password again").fill("a-Long-passw0rd")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_text("You have no galleries yet.")).to_be_visible()

    page.get_by_role("link", name="Create your first gallery").click()
    page.get_by_label("Title").fill("Summer 2024")
    page.get_by_label("Description").fill("Photos from the trip")
    page.get_by_role("button", name="Create gallery").click()
    expect(page.get_by_role("heading", name=re.compile("Summer 2024"))).to_be_visible()
    expect(page.get_by_text("No photos in this gallery yet.")).to_be_visible()

    page.locator("[data-file-input]").set_input_files([str(PHOTO_FIXTURES / name) for name in PHOTOS])
    uploads = page.locator(".upload")
    expect(uploads).to_have_count(3)
    expect(page.locator(".upload--done")).to_have_count(3, timeout=30_000)
    expect(page.locator(".tile")).to_have_count(3)

    try:
        expect(page.locator(".tile--captioned")).to_have_count(3, timeout=150_000)
    except AssertionError:
        page.screenshot(path=str(artifacts_dir / "gallery-not-captioned.png"), full_page=True)
        raise AssertionError(f"captions did not appear; worker log:\n{worker.log()[-4000:]}") from None
    expect(page.locator(".upload--captioned .upload__result")).to_have_text(["Captioned"] * 3)
    captions = page.locator(".tile--captioned [data-caption]").all_inner_texts()
    assert all(text and text != "Waiting for a caption…" for text in captions), captions
    page.screenshot(path=str(artifacts_dir / "gallery-captioned.png"), full_page=True)

    page.locator(".tile__image").first.click()  # the viewer, then the photo's own page
    page.get_by_role("link", name="Open the photo page").click()
    english = page.locator("[data-caption]").inner_text()
    assert english
    page.get_by_label("Captions in").select_option("fr")
    page.get_by_role("button", name="Show").click()  # applied with the button, not on change
    expect(page).to_have_url(re.compile(r"lang=fr"))
    expect(page.locator("[data-translated-caption]")).to_have_text(f"[fr] {english}", timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "photo-in-french.png"), full_page=True)

    page.get_by_role("link", name="← Summer 2024").click()  # the breadcrumb (the galleries list names it too)
    expect(page.locator(".tile__caption").filter(has_text="[fr]")).to_have_count(3, timeout=60_000)
    page.screenshot(path=str(artifacts_dir / "gallery-in-french.png"), full_page=True)


def test_a_large_gallery_loads_its_next_photos_as_the_grid_end_scrolls_into_view(page, db, monkeypatch):
    from django.contrib.auth import get_user_model

    from captioning.services.galleries import gallery_create
    from captioning.views import galleries
    from tests.captioning.test_pages import _photos_without_files

    monkeypatch.setattr(galleries, "GALLERY_PAGE_SIZE", 4)
    owner = get_user_model().objects.create_user("marie", password="a-Long-passw0rd")
    gallery = gallery_create(acting_user=owner, title="Big", visibility="public")
    newest_first = [str(photo.uuid) for photo in _photos_without_files(gallery, 10)]

    page.goto(gallery.get_absolute_url())
    tiles = page.locator(".photo-grid .tile")
    # The page sends 4; the grid's end is in view (small tiles), so the next pages follow one after another.
    assert page.content().count('class="tile tile--captioned"') >= 4
    expect(tiles).to_have_count(10)
    assert [tile.get_attribute("data-photo") for tile in tiles.all()] == newest_first
    expect(page.locator("[data-more-photos]")).to_have_count(0)
