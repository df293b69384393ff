"""The staff dashboard in the admin: the caption review queue (worst CLIPScore first, thumbnails, approve /
reject / edit one or many, who and when kept), the CLIPScore the worker stores, photos' re-queue actions,
model versions' metrics and activation, and the queue and throughput page."""

import re

import numpy as np
import pytest
import torch
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from captioning import engine
from captioning.models import Caption, ModelVersion, Photo
from captioning.services.photos import photo_upload
from captioning.services.reviews import caption_approve, caption_review_edit
from captioning.services.worker import photo_caption_batch
from mlcore.clipscore import caption_clip_scores
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db

QUEUE = "admin:captioning_captionreview_changelist"


@pytest.fixture
def reviewer(db):
    user = get_user_model().objects.create_user("rita", password="a-Long-passw0rd", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__app_label="captioning"))
    return user


@pytest.fixture
def add_captioned(alice, gallery):
    seeds = iter(range(700, 800))

    def add(text: str, clip_score: float | None, score: float | None = -1.0) -> Caption:
        content = encode(picture(seed=next(seeds)), "JPEG")
        photo = photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("p.jpg", content)).photo
        Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.CAPTIONED)
        return Caption.objects.create(photo=photo, text=text, score=score, clip_score=clip_score, is_current=True)

    return add


def queue_texts(client, query: str = "") -> list[str]:
    response = client.get(reverse(QUEUE) + query)
    assert response.status_code == 200
    return [caption.text for caption in response.context["cl"].result_list]


# The CLIPScore the worker stores ---------------------------------------------------------------------------


def test_the_worker_stores_each_new_captions_clipscore(alice, gallery, active_model):
    photos = [
        photo_upload(
            acting_user=alice, gallery=gallery, file=SimpleUploadedFile(f"{seed}.jpg", encode(picture(seed=seed)))
        ).photo
        for seed in (801, 802)
    ]
    assert photo_caption_batch(limit=5).captioned == 2

    captioner = engine.captioner_for(active_model)
    for photo in photos:
        photo.refresh_from_db()
        caption = photo.captions.get(is_current=True)
        image = torch.from_numpy(photo.embedding_vector().copy())[None]
        expected = caption_clip_scores(captioner, image, [caption.text]).per_item[0]
        assert caption.clip_score == pytest.approx(expected, abs=1e-5)
        assert 0.0 <= caption.clip_score <= 2.5
        assert caption.review_state == Caption.ReviewState.PENDING


def test_a_caption_is_still_written_when_its_clipscore_cannot_be_computed(alice, gallery, active_model, monkeypatch):
    import mlcore.clipscore

    def broken(*args, **kwargs):
        raise RuntimeError("text tower exploded")

    monkeypatch.setattr(mlcore.clipscore, "caption_clip_scores", broken)
    photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("x.jpg", encode(picture(seed=803))))
    assert photo_caption_batch(limit=5).captioned == 1
    caption = Caption.objects.get()
    assert caption.text is not None and caption.clip_score is None


# The review queue ----------------------------------------------------------------------------------------


def test_the_queue_lists_pending_current_captions_worst_first_with_thumbnails(client, reviewer, add_captioned):
    good = add_captioned("good", clip_score=0.9)
    add_captioned("worst", clip_score=0.1)
    add_captioned("unscored", clip_score=None, score=None)
    add_captioned("bad", clip_score=0.3, score=-3.0)
    add_captioned("bad but likelier", clip_score=0.3, score=-0.5)
    caption_approve(caption=good, acting_user=reviewer)
    client.force_login(reviewer)

    assert queue_texts(client) == ["worst", "bad", "bad but likelier", "unscored"]
    assert queue_texts(client, "?state=approved") == ["good"]
    response = client.get(reverse(QUEUE))
    page = response.content.decode()
    rows = response.context["cl"].result_list
    shown = re.findall(r'<img src="([^"]+)"[^>]*class="review-thumbnail"', page)
    assert shown == [reverse("admin:captioning_photo_thumbnail", args=[caption.photo_id]) for caption in rows]
    thumbnail = client.get(shown[0])
    assert thumbnail.status_code == 200
    assert b"".join(thumbnail.streaming_content)[8:12] == b"WEBP"
    assert 'data-review="approve"' in page and 'data-review="reject"' in page


def test_the_queue_filters_by_model_and_date(client, reviewer, add_captioned):
    model = ModelVersion.objects.create(name="m1", checkpoint_path="/x", config={})
    tagged = add_captioned("by m1", clip_score=0.5)
    Caption.objects.filter(pk=tagged.pk).update(model_version=model)
    add_captioned("by nobody", clip_score=0.4)
    client.force_login(reviewer)
    assert queue_texts(client, f"?model_version__id__exact={model.pk}") == ["by m1"]
    assert set(queue_texts(client, "?created_at__gte=2000-01-01+00:00:00%2B00:00")) == {"by m1", "by nobody"}
    assert queue_texts(client, "?created_at__lt=2000-01-01+00:00:00%2B00:00") == []


def test_approve_and_reject_one_row_keep_who_and_when(client, reviewer, add_captioned):
    first = add_captioned("first", clip_score=0.1)
    second = add_captioned("second", clip_score=0.2)
    client.force_login(reviewer)

    response = client.post(reverse("admin:captioning_captionreview_approve", args=[first.pk]))
    assert response.status_code == 302
    client.post(reverse("admin:captioning_captionreview_reject", args=[second.pk]))

    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.review_state, first.reviewed_by, first.reviewed_at is not None) == ("approved", reviewer, True)
    assert (second.review_state, second.reviewed_by) == ("rejected", reviewer)
    assert second.is_current  # a rejected caption stays until it is rewritten or the photo captioned again
    assert queue_texts(client) == []
    assert client.get(reverse("admin:captioning_captionreview_approve", args=[first.pk])).status_code == 405


def test_bulk_actions_approve_or_reject_the_selected_captions(client, reviewer, add_captioned):
    captions = [add_captioned(f"c{n}", clip_score=n / 10) for n in range(4)]
    client.force_login(reviewer)
    for action, chosen in (("approve_selected", captions[:2]), ("reject_selected", captions[2:3])):
        response = client.post(
            reverse(QUEUE), {"action": action, "_selected_action": [caption.pk for caption in chosen]}
        )
        assert response.status_code == 302
    states = dict(Caption.objects.values_list("text", "review_state"))
    assert states == {"c0": "approved", "c1": "approved", "c2": "rejected", "c3": "pending"}
    assert set(Caption.objects.filter(text__in=["c0", "c2"]).values_list("reviewed_by", flat=True)) == {reviewer.pk}


def test_editing_a_row_makes_a_new_current_caption_edited_in_review(client, reviewer, add_captioned):
    wrong = add_captioned("a cat on a bed", clip_score=0.1)
    other = add_captioned("a boat", clip_score=0.2)
    client.force_login(reviewer)
    form = {
        "form-TOTAL_FORMS": "2",
        "form-INITIAL_FORMS": "2",
        "form-0-id": str(wrong.pk),
        "form-0-text": "a dog on a bed",
        "form-1-id": str(other.pk),
        "form-1-text": "a boat",
        "_save": "Save",
    }
    response = client.post(reverse(QUEUE), form)
    assert response.status_code == 302, response.content.decode()[:2000]

    current = Caption.objects.get(photo=wrong.photo, is_current=True)
    assert (current.text, current.source, current.review_state) == ("a dog on a bed", "edited", "edited")
    assert (current.created_by, current.reviewed_by) == (reviewer, reviewer)
    wrong.refresh_from_db()
    assert wrong.text == "a cat on a bed" and not wrong.is_current  # kept in the history
    assert Caption.objects.filter(photo=other.photo).count() == 1  # unchanged rows are left alone


def test_people_who_are_not_reviewers_cannot_review(client, alice, add_captioned):
    caption = add_captioned("x", clip_score=0.1)
    with pytest.raises(PermissionDenied):
        caption_approve(caption=caption, acting_user=alice)
    with pytest.raises(PermissionDenied):
        caption_review_edit(caption=caption, acting_user=alice, text="y")
    alice.is_staff = True
    alice.save()
    client.force_login(alice)  # staff, but without the right to change captions
    assert client.get(reverse(QUEUE)).status_code == 403
    assert client.post(reverse("admin:captioning_captionreview_approve", args=[caption.pk])).status_code == 403
    caption.refresh_from_db()
    assert caption.review_state == "pending"


# Photos, model versions, the activity page ---------------------------------------------------------------


def test_photo_actions_requeue_failed_and_recaption(client, reviewer, add_captioned):
    failed = add_captioned("f", clip_score=0.1).photo
    captioned = add_captioned("c", clip_score=0.2).photo
    Photo.objects.filter(pk=failed.pk).update(status=Photo.Status.FAILED, error_message="The model crashed.")
    client.force_login(reviewer)
    page = client.get(reverse("admin:captioning_photo_changelist")).content.decode()
    assert "The model crashed." in page

    url = reverse("admin:captioning_photo_changelist")
    client.post(url, {"action": "requeue_failed", "_selected_action": [failed.pk, captioned.pk]})
    assert dict(Photo.objects.values_list("pk", "status")) == {failed.pk: "queued", captioned.pk: "captioned"}
    client.post(url, {"action": "requeue", "_selected_action": [captioned.pk]})
    assert Photo.objects.get(pk=captioned.pk).status == "queued"


def test_model_versions_show_metrics_and_are_activated_by_an_action(client, reviewer, add_captioned):
    old = ModelVersion.objects.create(name="old", checkpoint_path="/a", config={}, is_active=True)
    new = ModelVersion.objects.create(
        name="new", checkpoint_path="/b", config={}, metrics={"metrics": {"CIDEr": 1.234, "BLEU-4": 0.321}}
    )
    Caption.objects.filter(pk=add_captioned("x", clip_score=0.5).pk).update(model_version=new)
    client.force_login(reviewer)
    url = reverse("admin:captioning_modelversion_changelist")
    page = client.get(url).content.decode()
    assert "CIDEr 1.234" in page and "BLEU-4 0.321" in page and "0.500" in page

    client.post(url, {"action": "activate", "_selected_action": [new.pk]})
    assert list(ModelVersion.objects.filter(is_active=True)) == [new]
    client.post(url, {"action": "activate", "_selected_action": [new.pk, old.pk]})
    assert list(ModelVersion.objects.filter(is_active=True)) == [new]  # two at once: refused


def test_the_activity_page_shows_the_queue_failures_and_throughput(client, reviewer, add_captioned):
    from django.utils import timezone
    from django_q.models import Failure

    add_captioned("x", clip_score=0.5)
    Failure.objects.create(
        id="f" * 32, name="task-one", func="captioning.tasks.caption_pending_photos", started=timezone.now(),
        stopped=timezone.now(), result="RuntimeError: out of memory", success=False,
    )  # fmt: skip
    client.force_login(reviewer)
    page = client.get(reverse("admin:captioning_captioningactivity_changelist")).content.decode()
    assert "RuntimeError: out of memory" in page
    assert "data-captions-hour>1<" in page
    assert "data-reviews-pending>1<" in page
    assert 'data-status="captioned">1<' in page


def test_the_admin_thumbnail_is_for_staff_only(client, alice, bob, reviewer, add_captioned):
    photo = add_captioned("x", clip_score=0.5).photo
    url = reverse("admin:captioning_photo_thumbnail", args=[photo.pk])
    client.force_login(bob)
    assert client.get(url).status_code == 302  # to the admin's login
    client.force_login(reviewer)
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/webp"
    assert np.frombuffer(b"".join(response.streaming_content)[:4], dtype=np.uint8).tobytes() == b"RIFF"
