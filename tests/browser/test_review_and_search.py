"""A reviewer works through the admin's caption review queue in a real browser (approve one, rewrite one), and
a user searches from the header's search box: caption words and CLIP image search in one list, nothing of
what they may not see."""

import re

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from playwright.sync_api import expect

from captioning import engine
from captioning.models import Caption, Photo
from captioning.services.galleries import gallery_create
from captioning.services.model_versions import model_version_register
from captioning.services.photos import photo_upload
from tests.captioning.conftest import PHOTO_FIXTURES

pytestmark = pytest.mark.slow
PASSWORD = "a-Long-passw0rd"


def add_photo(
    owner, gallery, fixture_name: str, text: str, clip_score: float | None = None, embedding=None, model=None
):
    content = (PHOTO_FIXTURES / fixture_name).read_bytes()
    photo = photo_upload(acting_user=owner, gallery=gallery, file=SimpleUploadedFile(fixture_name, content)).photo
    updates = {"status": Photo.Status.CAPTIONED}
    if embedding is not None:
        updates.update(embedding=np.asarray(embedding, dtype="<f4").tobytes(), embedding_model=model)
    Photo.objects.filter(pk=photo.pk).update(**updates)
    Caption.objects.create(
        photo=photo, text=text, score=-1.5, clip_score=clip_score, is_current=True, model_version=model
    )
    return photo


def log_in(page, path: str, username: str) -> None:
    page.goto(path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(username)).to_be_visible()


def test_reviewer_approves_one_caption_and_rewrites_another(page, live_server, artifacts_dir, settings):
    users = get_user_model().objects
    owner = users.create_user("marie", password=PASSWORD)
    reviewer = users.create_user("rita", password=PASSWORD, is_staff=True)
    reviewer.user_permissions.set(Permission.objects.filter(content_type__app_label="captioning"))
    gallery = gallery_create(acting_user=owner, title="Summer", visibility="private")
    add_photo(owner, gallery, "COCO_val2014_000000060623.jpg", "a cat sleeping on a bed", clip_score=0.12)
    add_photo(owner, gallery, "COCO_val2014_000000165547.jpg", "a blue boat in a harbour", clip_score=0.35)
    add_photo(owner, gallery, "CONCEPTUAL_01.jpg", "a plate of food on a table", clip_score=0.81)

    log_in(page, "/admin/login/", "rita")
    page.goto("/admin/captioning/captionreview/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)
    texts = [rows.nth(n).locator("textarea").input_value() for n in range(3)]
    assert texts == ["a cat sleeping on a bed", "a blue boat in a harbour", "a plate of food on a table"]
    expect(rows.first.locator("img.review-thumbnail")).to_have_js_property("complete", True)
    assert rows.first.locator("img.review-thumbnail").evaluate("image => image.naturalWidth") > 0
    page.screenshot(path=str(artifacts_dir / "review-queue.png"), full_page=True)

    boat = rows.filter(has=page.locator("textarea", has_text="a blue boat"))
    boat.get_by_role("button", name="Approve").click()
    expect(page.locator(".messagelist")).to_contain_text("approved")
    expect(rows).to_have_count(2)

    worst = rows.filter(has=page.locator("textarea", has_text="a cat sleeping"))
    worst.locator("textarea").fill("a dog sleeping on a bed")
    page.locator("input[name=_save]").click()
    expect(page.locator(".messagelist")).to_contain_text("changed successfully")
    expect(rows).to_have_count(1)
    page.screenshot(path=str(artifacts_dir / "review-queue-after.png"), full_page=True)

    page.get_by_role("link", name="Edited in review").click()
    expect(page.locator("#result_list tbody tr textarea")).to_have_value("a dog sleeping on a bed")
    expect(page.locator("#result_list")).to_contain_text("by rita")

    approved = Caption.objects.get(text="a blue boat in a harbour")
    assert (approved.review_state, approved.reviewed_by) == ("approved", reviewer)
    rewritten = Caption.objects.get(is_current=True, text="a dog sleeping on a bed")
    assert (rewritten.review_state, rewritten.created_by, rewritten.reviewed_by) == ("edited", reviewer, reviewer)
    assert Caption.objects.filter(text="a cat sleeping on a bed", is_current=False).exists()


def test_search_box_finds_by_caption_words_and_by_image(page, live_server, save_random_checkpoint, artifacts_dir):
    model = model_version_register(name="tiny", checkpoint_path=save_random_checkpoint("tiny", seed=5), activate=True)
    query = "a red kite"
    query_vector = engine.captioner_for(model).embed_text([query])[0].numpy()
    users = get_user_model().objects
    marie = users.create_user("marie", password=PASSWORD)
    other = users.create_user("otto", password=PASSWORD)
    mine = gallery_create(acting_user=marie, title="Mine", visibility="private")
    by_words = add_photo(
        marie, mine, "COCO_val2014_000000060623.jpg", "a red kite over a field", embedding=-query_vector, model=model
    )
    by_image = add_photo(
        marie, mine, "COCO_val2014_000000165547.jpg", "something untitled", embedding=query_vector, model=model
    )
    add_photo(marie, mine, "CONCEPTUAL_01.jpg", "a bowl of soup", embedding=-query_vector, model=model)  # no match
    hidden = gallery_create(acting_user=other, title="Otto's", visibility="private")
    add_photo(other, hidden, "CONCEPTUAL_02.jpg", "a red kite on a beach", embedding=query_vector, model=model)

    log_in(page, "/login/", "marie")
    box = page.get_by_role("searchbox", name="Search photos")
    box.fill(query)
    box.press("Enter")

    expect(page).to_have_url(re.compile(r"/search/\?q=a\+red\+kite"))
    expect(page.get_by_role("heading", name="Photos for “a red kite”")).to_be_visible()
    expect(page.locator("[data-search-summary]")).to_have_text(
        "2 best matches, by what is in them and by their captions."
    )
    tiles = page.locator("[data-search-results] .tile")
    expect(tiles).to_have_count(2)  # marie's two matches; never the soup, nor otto's private kite
    ranked = [tiles.nth(n).get_attribute("data-photo") for n in range(2)]
    assert set(ranked) == {str(by_words.uuid), str(by_image.uuid)}
    expect(page.locator("[data-search-results]")).not_to_contain_text("a red kite on a beach")
    expect(page.locator("[data-search-results]")).not_to_contain_text("a bowl of soup")
    page.screenshot(path=str(artifacts_dir / "search-results.png"), full_page=True)

    tiles.filter(has_text="a red kite over a field").locator(".tile__image").click()  # the viewer, then its page
    expect(page.locator("[data-viewer-caption]")).to_have_text("a red kite over a field")
    page.get_by_role("link", name="Open the photo page").click()
    expect(page.locator("[data-caption]")).to_have_text("a red kite over a field")
