"""The library in a real browser: the "All photos" timeline loading month after month as it scrolls, the
full-screen viewer driven by the keyboard, the pages at a phone's width, and the admin's review rows at 1280 px.
Screenshots land in test-artifacts/."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from captioning.models import Caption, Photo
from captioning.services.galleries import gallery_create
from captioning.services.photos import photo_upload
from captioning.views import timeline
from tests.browser.test_review_and_search import PASSWORD, log_in
from tests.captioning.conftest import PHOTO_FIXTURES
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.slow
FIXTURES = ["COCO_val2014_000000060623.jpg", "COCO_val2014_000000165547.jpg", "CONCEPTUAL_01.jpg"]
CAPTIONS = ["a cat sleeping on a bed", "a blue boat in a harbour", "a plate of food on a table"]


def captioned_photo(owner, gallery, number: int) -> Photo:
    """The three real photos, then pictures drawn on the spot (each file goes into a gallery once)."""
    if number < len(FIXTURES):
        name, content = FIXTURES[number], (PHOTO_FIXTURES / FIXTURES[number]).read_bytes()
    else:
        name, content = f"drawn-{number}.jpg", encode(picture(640, 480, seed=number))
    photo = photo_upload(acting_user=owner, gallery=gallery, file=SimpleUploadedFile(name, content)).photo
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.CAPTIONED)
    Caption.objects.create(photo=photo, text=f"{CAPTIONS[number % 3]} ({number})", score=-1.5, is_current=True)
    return photo


@pytest.fixture
def library(db):
    """marie's public gallery of six captioned photos, one month apart (the newest in June 2024)."""
    marie = get_user_model().objects.create_user("marie", password=PASSWORD)
    gallery = gallery_create(acting_user=marie, title="Summer", visibility="public")
    photos = []
    for number in range(6):
        photo = captioned_photo(marie, gallery, number)
        # Saved one after another, but uploaded (by the dates) a month apart, the first the newest.
        Photo.objects.filter(pk=photo.pk).update(
            created_at=datetime(2024, 6, 15, tzinfo=UTC) - timedelta(days=31 * number)
        )
        photos.append(photo)
    return gallery, photos


def test_the_timeline_loads_month_after_month_as_it_scrolls(page, library, monkeypatch, artifacts_dir):
    _gallery, photos = library
    monkeypatch.setattr(timeline, "TIMELINE_PAGE_SIZE", 2)
    page.set_viewport_size({"width": 1280, "height": 500})
    log_in(page, "/login/", "marie")

    page.get_by_role("link", name="All photos").click()
    expect(page.get_by_role("heading", name="All photos", level=1)).to_be_visible()
    page.mouse.wheel(0, 5000)
    tiles = page.locator("[data-timeline] .tile")
    expect(tiles).to_have_count(6)
    expect(page.locator("[data-more-timeline]")).to_have_count(0)

    assert [tile.get_attribute("data-photo") for tile in tiles.all()] == [str(photo.uuid) for photo in photos]
    months = page.locator(".timeline__title").all_inner_texts()
    assert months == ["June 2024", "May 2024", "April 2024", "March 2024", "February 2024", "January 2024"]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(artifacts_dir / "timeline.png"), full_page=True)


def test_the_viewer_goes_through_a_grid_with_the_keyboard(page, library, artifacts_dir):
    gallery, photos = library
    log_in(page, "/login/", "marie")
    page.goto(gallery.get_absolute_url())
    viewer = page.locator("[data-viewer]")

    page.locator(".tile__image").first.click()
    expect(viewer).to_be_visible()
    expect(viewer.locator("[data-viewer-position]")).to_have_text("1 of 6")
    expect(viewer.locator("[data-viewer-caption]")).to_have_text(f"{CAPTIONS[0]} (0)")
    expect(viewer.locator("[data-viewer-status]")).to_have_text("Captioned")
    expect(viewer.locator("[data-viewer-image]")).to_have_attribute("src", f"/p/{photos[0].uuid}/image.webp")
    expect(viewer.locator("[data-viewer-image]")).to_have_js_property("complete", True)
    page.screenshot(path=str(artifacts_dir / "viewer.png"))

    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(viewer.locator("[data-viewer-position]")).to_have_text("3 of 6")
    expect(viewer.locator("[data-viewer-caption]")).to_have_text(f"{CAPTIONS[2]} (2)")
    page.keyboard.press("ArrowLeft")
    expect(viewer.locator("[data-viewer-position]")).to_have_text("2 of 6")
    expect(viewer.locator("[data-viewer-open]")).to_have_attribute("href", f"/p/{photos[1].uuid}/")

    page.keyboard.press("z")
    expect(viewer).to_have_class("viewer viewer--zoomed")
    image_width = viewer.locator("[data-viewer-image]").bounding_box()["width"]
    stage_width = viewer.locator("[data-viewer-stage]").bounding_box()["width"]
    assert image_width > stage_width  # zoomed in past the screen; the stage scrolls
    page.screenshot(path=str(artifacts_dir / "viewer-zoomed.png"))
    page.keyboard.press("z")
    expect(viewer).to_have_class("viewer")

    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    # Back on the tile of the photo last shown. The dialog's close event (which moves the focus there) comes a
    # moment after the dialog hides, so wait for it rather than read the focus at once.
    expect(page.locator(f'.tile[data-photo="{photos[1].uuid}"] [data-viewer-link]')).to_be_focused()
    assert page.url.endswith(gallery.get_absolute_url())


def test_at_a_phones_width_the_grid_has_three_columns_and_the_header_two_rows(
    browser, live_server, library, settings, artifacts_dir
):
    gallery, _photos = library
    settings.TRANSLATION_PROVIDER = "google"  # the language picker shows too: the fullest header
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    try:
        page.goto("/login/")  # the header leaves the username out at this width
        page.get_by_label("Username").fill("marie")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        for name, path in (("phone-gallery", gallery.get_absolute_url()), ("phone-timeline", "/photos/")):
            page.goto(path)
            tiles = page.locator(".tile")
            expect(tiles.first).to_be_visible()
            page.screenshot(path=str(artifacts_dir / f"{name}.png"), full_page=True)
            columns = page.locator(".photo-grid").first.evaluate("grid => getComputedStyle(grid).gridTemplateColumns")
            assert len(columns.split()) >= 3, f"{name}: columns {columns}"
            header_rows = page.evaluate(
                """() => new Set(Array.from(document.querySelector('.site-header__inner').children)
                      .filter(child => child.offsetParent !== null)
                      .map(child => Math.round(child.getBoundingClientRect().top / 8))).size"""
            )
            assert header_rows <= 2, f"{name}: the header takes {header_rows} rows"
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, f"{name} scrolls sideways"
        page.goto(gallery.get_absolute_url())
        page.locator(".tile__image").first.click()
        expect(page.locator("[data-viewer-position]")).to_have_text("1 of 6")
        page.screenshot(path=str(artifacts_dir / "phone-viewer.png"))
    finally:
        context.close()


def test_keyboard_focus_is_visible_on_tiles(page, library):
    gallery, _photos = library
    page.goto(gallery.get_absolute_url())
    page.locator(".tile__image").first.focus()
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


def test_the_review_rows_fit_1280_pixels(page, library, artifacts_dir):
    reviewer = get_user_model().objects.create_user("rita", password=PASSWORD, is_staff=True)
    reviewer.user_permissions.set(Permission.objects.filter(content_type__app_label="captioning"))
    log_in(page, "/admin/login/", "rita")
    page.goto("/admin/captioning/captionreview/")
    expect(page.locator("#result_list tbody tr")).to_have_count(6)
    page.screenshot(path=str(artifacts_dir / "review-queue-1280.png"))

    results = page.locator("#changelist-form .results")  # it scrolls sideways when the rows are too wide
    visible_right = results.bounding_box()["x"] + results.bounding_box()["width"]
    for button in page.get_by_role("button", name="Reject").all():
        box = button.bounding_box()
        assert box["x"] + box["width"] <= visible_right
    assert results.evaluate("results => results.scrollWidth <= results.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_a_photo_goes_into_a_second_album_and_out_of_the_first(page, library, artifacts_dir):
    gallery, photos = library
    marie = gallery.owner
    album = gallery_create(acting_user=marie, title="Best of", visibility="private")
    log_in(page, "/login/", "marie")

    page.goto(photos[0].get_absolute_url())
    page.get_by_label("Add to gallery").select_option(label="Best of")
    page.get_by_role("button", name="Add to gallery").click()
    expect(page.get_by_text("Added to “Best of”.")).to_be_visible()
    expect(page.locator("[data-holding-gallery]")).to_have_count(2)
    page.screenshot(path=str(artifacts_dir / "photo-in-two-albums.png"), full_page=True)

    page.goto(gallery.get_absolute_url())
    tile = page.locator(f'[data-photo="{photos[0].uuid}"]')
    tile.get_by_role("button", name="Remove from this gallery").click()
    expect(page.get_by_text("Removed from “Summer”")).to_be_visible()
    expect(page.locator(f'[data-photo="{photos[0].uuid}"]')).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "gallery-after-remove.png"))
    assert list(photos[0].galleries.all()) == [album]
