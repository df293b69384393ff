"""Selecting many photos in a real browser: by the keyboard, then Esc; deleting after a confirmation; captioning
again; downloading a zip; what a viewer is offered; a phone's width. Screenshots land in test-artifacts/."""

import io
import zipfile

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import expect

from captioning.models import GalleryMembership, Photo
from captioning.services.galleries import gallery_create, gallery_member_set
from tests.browser.test_library import captioned_photo
from tests.browser.test_review_and_search import PASSWORD, log_in

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_gallery(db):
    """marie's private gallery of four captioned photos, which vera may view; marie also has an empty "Autumn"."""
    users = get_user_model().objects
    marie = users.create_user("marie", password=PASSWORD)
    users.create_user("vera", password=PASSWORD)
    gallery = gallery_create(acting_user=marie, title="Summer", visibility="private")
    gallery_member_set(gallery=gallery, acting_user=marie, username="vera", role=GalleryMembership.Role.VIEWER)
    gallery_create(acting_user=marie, title="Autumn", visibility="private")
    photos = [captioned_photo(marie, gallery, number) for number in range(4)]
    return gallery, photos


def tile_link(page, photo: Photo):
    return page.locator(f'.tile[data-photo="{photo.uuid}"] [data-viewer-link]')


def start_selecting(page) -> None:
    page.get_by_role("button", name="Select").click()
    expect(page.get_by_role("button", name="Select")).to_have_attribute("aria-pressed", "true")


def choose(page, username: str, path: str, photos: list[Photo]) -> None:
    """Signs `username` in, opens the grid at `path`, turns "Select" on and clicks `photos`."""
    log_in(page, "/login/", username)
    page.goto(path)
    start_selecting(page)
    for photo in photos:
        tile_link(page, photo).click()


def test_photos_are_selected_with_the_keyboard_and_esc_clears(page, shared_gallery, artifacts_dir):
    gallery, _photos = shared_gallery
    log_in(page, "/login/", "marie")
    page.goto(gallery.get_absolute_url())
    bar = page.locator("[data-selection-bar]")
    expect(bar).to_be_hidden()

    page.get_by_role("button", name="Select").focus()
    page.keyboard.press("Enter")
    expect(bar).to_be_visible()
    expect(bar.locator("[data-selection-count]")).to_have_text("0 selected")
    links = page.locator(".tile [data-viewer-link]")
    # From "Select" the Tab key goes through the bar's enabled buttons (only Clear while none is chosen), then
    # the tiles: the actions are a Shift+Tab away from the grid.
    page.keyboard.press("Tab")
    expect(bar.get_by_role("button", name="Clear")).to_be_focused()
    page.keyboard.press("Tab")
    expect(links.nth(0)).to_be_focused()
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(bar.locator("[data-selection-count]")).to_have_text("2 selected")
    expect(page.get_by_role("checkbox", checked=True)).to_have_count(2)
    expect(links.nth(0)).to_have_attribute("aria-checked", "true")
    expect(links.nth(1)).to_have_attribute("aria-checked", "true")
    expect(page.locator("[data-viewer]")).to_have_count(0)  # choosing a photo does not open the viewer
    expect(page).to_have_url(f"{page.url.split('/g/')[0]}{gallery.get_absolute_url()}")
    page.screenshot(path=str(artifacts_dir / "selection-keyboard.png"))

    page.keyboard.press("Space")  # the second again: no longer selected
    expect(bar.locator("[data-selection-count]")).to_have_text("1 selected")
    page.keyboard.press("Escape")
    expect(bar).to_be_hidden()
    expect(page.locator(".tile[data-selected]")).to_have_count(0)
    expect(page.get_by_role("checkbox")).to_have_count(0)

    # Selection over, a click opens the viewer again.
    links.nth(1).click()
    expect(page.locator("[data-viewer]")).to_be_visible()
    expect(page.locator("[data-viewer-position]")).to_have_text("2 of 4")


def test_delete_asks_first_and_removes_only_the_chosen_photos(page, shared_gallery, artifacts_dir):
    gallery, photos = shared_gallery
    choose(page, "marie", gallery.get_absolute_url(), photos[1:3])
    page.get_by_role("button", name="Delete").click()

    dialog = page.locator("[data-selection-confirm-delete]")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Delete 2 photos?")
    page.screenshot(path=str(artifacts_dir / "selection-delete-confirmation.png"))
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    # The dialog's close event (which sends the request, or not) comes after it hides; on Cancel it puts the
    # focus back on the bar's Delete button, and nothing was asked of the server.
    expect(page.locator("[data-selection-delete]")).to_be_focused()
    expect(page.locator("[data-selection-result]")).to_have_text("")
    assert Photo.objects.count() == 4

    page.get_by_role("button", name="Delete").click()
    dialog.get_by_role("button", name="Delete").click()
    expect(page.locator("[data-selection-result]")).to_have_text("2 deleted.")
    expect(page.locator(".tile")).to_have_count(2)
    expect(page.locator("[data-selection-count]")).to_have_text("0 selected")
    assert set(Photo.objects.values_list("uuid", flat=True)) == {photos[0].uuid, photos[3].uuid}


def test_caption_again_queues_the_chosen_photos(page, shared_gallery):
    _gallery, photos = shared_gallery
    choose(page, "marie", "/photos/", [photos[0], photos[3]])  # the timeline is a grid too
    page.get_by_role("button", name="Caption again").click()
    expect(page.locator("[data-selection-result]")).to_have_text("2 queued to be captioned again.")
    expect(page.locator(f'.tile[data-photo="{photos[0].uuid}"] [data-status]')).to_have_text("Queued")
    statuses = dict(Photo.objects.values_list("uuid", "status"))
    assert [statuses[photo.uuid] for photo in photos] == ["queued", "captioned", "captioned", "queued"]


def test_the_selection_downloads_as_a_zip_of_the_originals(page, shared_gallery):
    gallery, photos = shared_gallery
    choose(page, "marie", gallery.get_absolute_url(), [photos[0], photos[2]])
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download zip").click()
    download = download_info.value
    assert download.suggested_filename.startswith("clip-pro-photos-")
    archive = zipfile.ZipFile(io.BytesIO(download.path().read_bytes()))
    # In the grid's order: the newest first.
    assert archive.namelist() == [photos[2].original_filename, photos[0].original_filename]
    with photos[0].original.open("rb") as original:
        assert archive.read(photos[0].original_filename) == original.read()
    expect(page).to_have_url(f"{page.url.split('/g/')[0]}{gallery.get_absolute_url()}")  # the page stays


def test_a_viewer_is_offered_the_download_only(page, shared_gallery, artifacts_dir):
    gallery, photos = shared_gallery
    choose(page, "vera", gallery.get_absolute_url(), photos[:1])
    bar = page.locator("[data-selection-bar]")
    expect(bar.locator("[data-selection-count]")).to_have_text("1 selected")
    expect(bar.get_by_role("button", name="Download zip")).to_be_visible()
    for name in ("Caption again", "Delete", "Add to gallery"):
        expect(bar.get_by_role("button", name=name)).to_have_count(0)
    page.screenshot(path=str(artifacts_dir / "selection-viewer.png"))


def test_at_a_phones_width_the_bar_fits_and_tiles_are_chosen_by_touch(
    browser, live_server, shared_gallery, artifacts_dir
):
    gallery, photos = shared_gallery
    context = browser.new_context(base_url=live_server.url, viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    try:
        page.goto("/login/")
        page.get_by_label("Username").fill("marie")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.goto(gallery.get_absolute_url())
        start_selecting(page)
        for photo in photos[:3]:
            tile_link(page, photo).tap()
        bar = page.locator("[data-selection-bar]")
        expect(bar.locator("[data-selection-count]")).to_have_text("3 selected")
        page.screenshot(path=str(artifacts_dir / "phone-selection.png"))
        box = bar.bounding_box()
        assert box["y"] + box["height"] <= 844 + 1 and box["width"] <= 390
        for button in bar.get_by_role("button").all():
            button_box = button.bounding_box()
            assert button_box["x"] >= 0 and button_box["x"] + button_box["width"] <= 390, button.inner_text()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        # The last row of tiles scrolls clear of the bar.
        page.mouse.wheel(0, 5000)
        last = page.locator(".tile").last.bounding_box()
        assert last["y"] + last["height"] <= box["y"] + 1
    finally:
        context.close()


def test_the_selection_is_added_to_a_gallery_the_user_may_upload_to(page, shared_gallery, artifacts_dir):
    gallery, photos = shared_gallery
    autumn = gallery.owner.galleries.get(title="Autumn")
    choose(page, "marie", gallery.get_absolute_url(), photos[:2])
    page.get_by_role("button", name="Add to gallery").click()
    dialog = page.locator("[data-selection-galleries]")
    expect(dialog.get_by_role("radio")).to_have_count(2)  # Autumn and Summer: the galleries marie may upload to
    dialog.get_by_label("Autumn").check()
    page.screenshot(path=str(artifacts_dir / "selection-add-to-gallery.png"))
    dialog.get_by_role("button", name="Add").click()
    expect(page.locator("[data-selection-result]")).to_have_text("2 added to Autumn.")
    page.goto(autumn.get_absolute_url())
    expect(page.locator(".tile")).to_have_count(2)


def test_the_selection_is_taken_out_of_the_gallery_and_stays_in_the_library(page, shared_gallery, artifacts_dir):
    gallery, photos = shared_gallery
    choose(page, "marie", gallery.get_absolute_url(), photos[:2])
    expect(page.locator(".tile__remove").first).to_be_hidden()  # while selecting, the bar acts on the selection
    page.get_by_role("button", name="Remove from this gallery").click()
    expect(page.locator("[data-selection-result]")).to_have_text("2 removed from this gallery.")
    expect(page.locator(".tile")).to_have_count(2)
    page.screenshot(path=str(artifacts_dir / "selection-removed-from-gallery.png"))
    assert set(gallery.photos.values_list("uuid", flat=True)) == {photo.uuid for photo in photos[2:]}
    assert Photo.objects.filter(uuid__in=[photo.uuid for photo in photos[:2]]).count() == 2


def test_a_viewer_is_not_offered_to_remove_photos_from_the_gallery(page, shared_gallery):
    gallery, photos = shared_gallery
    choose(page, "vera", gallery.get_absolute_url(), photos[:1])
    expect(page.get_by_role("button", name="Remove from this gallery")).to_have_count(0)
