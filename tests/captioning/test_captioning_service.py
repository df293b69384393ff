"""The worker's service, run in-process with a tiny real checkpoint: batches, stored embeddings, failures and
bounded retries, abandoned claims picked up again, and never two current captions."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from captioning import engine, jobs
from captioning.models import Caption, ModelVersion, Photo
from captioning.services.model_versions import model_version_register
from captioning.services.photos import photo_caption_edit, photo_recaption, photo_retry, photo_upload
from captioning.services.worker import caption_pending_photos, photo_caption_batch
from mlcore.captioner import Captioner
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


@pytest.fixture
def add_photo(alice, gallery):
    def add(seed: int) -> Photo:
        content = encode(picture(seed=seed + 100), "JPEG")
        return photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile(f"{seed}.jpg", content)).photo

    return add


@pytest.fixture
def engine_calls(monkeypatch):
    """Counts the engine's calls (and the images / embeddings each got), passing them through."""
    calls = {"load": 0, "embed": [], "caption": []}
    real_load, real_embed, real_caption = Captioner.load.__func__, Captioner.embed, Captioner.caption_embeddings

    def load(cls, *args, **kwargs):
        calls["load"] += 1
        return real_load(cls, *args, **kwargs)

    def embed(self, images, *args, **kwargs):
        calls["embed"].append(len(images))
        return real_embed(self, images, *args, **kwargs)

    def caption(self, embeddings, *args, **kwargs):
        calls["caption"].append(embeddings.shape[0])
        return real_caption(self, embeddings, *args, **kwargs)

    monkeypatch.setattr(Captioner, "load", classmethod(load))
    monkeypatch.setattr(Captioner, "embed", embed)
    monkeypatch.setattr(Captioner, "caption_embeddings", caption)
    return calls


def current_captions(photo: Photo) -> list[Caption]:
    return list(Caption.objects.filter(photo=photo, is_current=True))


def test_a_batch_is_embedded_and_captioned_in_one_engine_call(active_model, add_photo, engine_calls):
    photos = [add_photo(seed) for seed in range(3)]

    outcome = photo_caption_batch(limit=10)

    assert (outcome.claimed, outcome.captioned, outcome.failed) == (3, 3, 0)
    assert engine_calls == {"load": 1, "embed": [3], "caption": [3]}
    for photo in photos:
        photo.refresh_from_db()
        assert photo.status == Photo.Status.CAPTIONED
        assert photo.attempts == 1
        assert photo.claim_token is None
        (caption,) = current_captions(photo)
        assert caption.model_version == active_model
        assert caption.decoding["strategy"] == "beam"
        assert isinstance(caption.score, float)
        vector = photo.embedding_vector()
        assert vector.dtype == np.float32 and vector.shape == (active_model.config["clip_embedding_size"],)
        assert photo.embedding_model == active_model


def test_a_batch_takes_at_most_its_size_and_the_task_drains_the_queue(active_model, add_photo, engine_calls, settings):
    for seed in range(3):
        add_photo(seed)

    assert photo_caption_batch(limit=2).captioned == 2
    assert Photo.objects.filter(status=Photo.Status.QUEUED).count() == 1

    add_photo(10)
    add_photo(11)
    settings.CAPTION_BATCH_SIZE = 2
    total = caption_pending_photos()
    assert total.captioned == 3
    assert engine_calls["caption"] == [2, 2, 1]
    assert engine_calls["load"] == 1  # loaded once, kept for the next batches


@pytest.mark.parametrize("int8", [False, True])
def test_caption_int8_setting_picks_int8_matmuls_on_a_cpu(active_model, add_photo, settings, int8):
    settings.CAPTION_DEVICE, settings.CAPTION_INT8 = "cpu", int8
    photo = add_photo(1)

    assert photo_caption_batch().captioned == 1

    assert engine.captioner_for(active_model).int8 is int8
    photo.refresh_from_db()
    assert photo.status == Photo.Status.CAPTIONED


def test_a_model_that_reranks_by_clip_gets_its_reranked_captions_in_a_batch(add_photo, save_random_checkpoint):
    checkpoint = save_random_checkpoint("reranks", mapper_type="transformer", train_gpt2=True, clip_rerank=True)
    model_version_register(name="reranks", checkpoint_path=checkpoint, activate=True)
    photos = [add_photo(seed) for seed in range(5)]

    assert photo_caption_batch(limit=10).captioned == 5

    captioner = Captioner.load(checkpoint, device="cpu")
    embeddings = []
    for photo in photos:
        photo.refresh_from_db()
        embeddings.append(torch.from_numpy(photo.embedding_vector().copy()))
    reranked = captioner.caption_embeddings(torch.stack(embeddings), clip_rerank=True)
    likeliest = captioner.caption_embeddings(torch.stack(embeddings), clip_rerank=False)
    assert [current_captions(photo)[0].text for photo in photos] == [result.text for result in reranked]
    assert [result.text for result in reranked] != [result.text for result in likeliest]


# What `manage.py qcluster` has imported when it forks its workers, and the tasks those run. Checked in a fresh
# interpreter: in this one, other tests have imported torch and the engine already.
BEFORE_THE_FORK = """
import json, os, sys
import django
django.setup()
import django_q.cluster, django_q.management.commands.qcluster, captioning.tasks
from captioning import engine
heavy = sorted(name for name in sys.modules if name.split(".")[0] in ("torch", "open_clip", "transformers", "mlcore"))
print(json.dumps({"heavy": heavy[:10], "loaded": engine.loaded_count()}))
"""


def test_a_worker_has_no_torch_and_no_model_loaded_before_it_forks(tmp_path):
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "clippro_site.settings", "CLIPPRO_DATA_DIR": str(tmp_path)}
    finished = subprocess.run(
        [sys.executable, "-c", BEFORE_THE_FORK],
        cwd=Path(__file__).resolve().parents[2],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout.splitlines()[-1]) == {"heavy": [], "loaded": 0}


def test_without_a_model_photos_fail_with_a_message_naming_the_command(add_photo, save_random_checkpoint):
    photo = add_photo(1)

    outcome = photo_caption_batch()

    photo.refresh_from_db()
    assert outcome.failed == 1
    assert photo.status == Photo.Status.FAILED
    assert "manage.py prepare_caption_model" in photo.error_message

    # Activating a model queues again the photos that failed for want of one.
    model_version_register(name="late", checkpoint_path=save_random_checkpoint("late"), activate=True)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.QUEUED
    assert photo_caption_batch().captioned == 1


def test_a_missing_checkpoint_fails_the_photo_and_can_be_retried(alice, add_photo, tmp_path, save_random_checkpoint):
    ModelVersion.objects.create(name="gone", checkpoint_path=str(tmp_path / "nowhere"), is_active=True)
    photo = add_photo(2)

    photo_caption_batch()

    photo.refresh_from_db()
    assert photo.status == Photo.Status.FAILED
    assert "missing" in photo.error_message and "register_model" in photo.error_message

    ModelVersion.objects.filter(name="gone").update(checkpoint_path=str(save_random_checkpoint("back")))
    photo_retry(photo=photo, acting_user=alice)
    photo.refresh_from_db()
    assert (photo.status, photo.attempts, photo.error_message) == (Photo.Status.QUEUED, 0, "")
    assert photo_caption_batch().captioned == 1


def test_an_engine_failure_is_retried_a_bounded_number_of_times(active_model, add_photo, monkeypatch, settings):
    settings.CAPTION_MAX_ATTEMPTS = 3
    settings.CAPTION_RETRY_DELAY_SECONDS = 0

    def out_of_memory(self, *args, **kwargs):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(Captioner, "caption_embeddings", out_of_memory)
    photo = add_photo(3)

    for attempt in (1, 2):
        assert photo_caption_batch().retrying == 1
        photo.refresh_from_db()
        assert photo.status == Photo.Status.QUEUED
        assert f"Attempt {attempt} of 3 failed" in photo.error_message
        assert "CUDA out of memory" in photo.error_message
    assert photo_caption_batch().failed == 1
    photo.refresh_from_db()
    assert photo.status == Photo.Status.FAILED
    assert photo.attempts == 3
    assert photo_caption_batch().claimed == 0


def test_a_retry_waits_for_its_delay(active_model, add_photo, monkeypatch, settings):
    settings.CAPTION_RETRY_DELAY_SECONDS = 60
    monkeypatch.setattr(
        Captioner, "caption_embeddings", lambda self, *a, **k: (_ for _ in ()).throw(RuntimeError("flaky"))
    )
    add_photo(4)

    assert photo_caption_batch().retrying == 1
    assert photo_caption_batch().claimed == 0  # not due yet
    Photo.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert photo_caption_batch().claimed == 1


def test_photos_of_a_killed_worker_are_picked_up_again(active_model, add_photo, settings):
    photos = [add_photo(seed) for seed in (5, 6)]
    dead_claim = jobs.claim_batch(limit=10)  # a worker claims both, then is killed before writing anything
    assert len(dead_claim.photos) == 2

    assert photo_caption_batch().claimed == 0  # its lease still holds

    Photo.objects.update(claimed_at=timezone.now() - timedelta(seconds=settings.CAPTION_LEASE_SECONDS + 1))
    outcome = photo_caption_batch()

    assert outcome.captioned == 2
    for photo in photos:
        photo.refresh_from_db()
        assert photo.status == Photo.Status.CAPTIONED
        assert photo.attempts == 2
        assert len(current_captions(photo)) == 1


def test_a_worker_whose_claim_was_taken_over_writes_nothing(active_model, add_photo, monkeypatch, settings):
    """Worker A stalls past its lease inside the engine call; worker B takes the photo over and captions
    it; when A wakes up, its result is dropped: one current caption, B's."""
    photo = add_photo(7)
    real_caption = Captioner.caption_embeddings
    state = {"stalled": False}

    def stall_then_continue(self, embeddings, *args, **kwargs):
        if not state["stalled"]:
            state["stalled"] = True
            Photo.objects.update(claimed_at=timezone.now() - timedelta(seconds=settings.CAPTION_LEASE_SECONDS + 1))
            assert photo_caption_batch().captioned == 1  # worker B, meanwhile
        return real_caption(self, embeddings, *args, **kwargs)

    monkeypatch.setattr(Captioner, "caption_embeddings", stall_then_continue)

    outcome_a = photo_caption_batch()

    assert (outcome_a.captioned, outcome_a.lost) == (0, 1)
    assert len(current_captions(photo)) == 1
    assert Caption.objects.filter(photo=photo).count() == 1


def test_a_photo_abandoned_too_often_fails(active_model, add_photo, settings):
    settings.CAPTION_MAX_ATTEMPTS = 2
    photo = add_photo(8)
    Photo.objects.update(
        status=Photo.Status.PROCESSING,
        attempts=2,
        claimed_at=timezone.now() - timedelta(seconds=settings.CAPTION_LEASE_SECONDS + 1),
    )

    assert photo_caption_batch().claimed == 0
    photo.refresh_from_db()
    assert photo.status == Photo.Status.FAILED
    assert "worker stopped 2 times" in photo.error_message


def test_the_database_refuses_a_second_current_caption(add_photo):
    photo = add_photo(9)
    Caption.objects.create(photo=photo, text="one", is_current=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Caption.objects.create(photo=photo, text="two", is_current=True)
    Caption.objects.create(photo=photo, text="old", is_current=False)


def test_recaption_keeps_the_history_and_reuses_the_embedding(alice, active_model, add_photo, engine_calls):
    photo = add_photo(10)
    photo_caption_batch()
    first = current_captions(photo)[0]

    photo_recaption(photo=photo, acting_user=alice, decoding={"strategy": "greedy", "max_length": 12})
    photo.refresh_from_db()
    assert photo.status == Photo.Status.QUEUED
    assert current_captions(photo) == [first]  # the old caption stays current until the new one is written
    photo_caption_batch()

    captions = list(Caption.objects.filter(photo=photo).order_by("created_at", "id"))
    assert [caption.is_current for caption in captions] == [False, True]
    assert captions[1].decoding["strategy"] == "greedy" and captions[1].decoding["max_length"] == 12
    assert engine_calls["embed"] == [1]  # the second caption started from the stored embedding


def test_recaption_with_another_model(alice, active_model, add_photo, save_random_checkpoint):
    other = model_version_register(name="other", checkpoint_path=save_random_checkpoint("other", seed=9))
    photo = add_photo(11)
    photo_caption_batch()

    photo_recaption(photo=photo, acting_user=alice, model_version=other)
    photo_caption_batch()

    assert current_captions(photo)[0].model_version == other
    photo.refresh_from_db()
    assert photo.embedding_model == other and photo.requested_model is None


def test_recaption_refuses_bad_settings_and_strangers(alice, bob, add_photo):
    from django.core.exceptions import ValidationError

    photo = add_photo(12)
    with pytest.raises(ValidationError):
        photo_recaption(photo=photo, acting_user=alice, decoding={"beam_size": 500})
    with pytest.raises(PermissionDenied):
        photo_recaption(photo=photo, acting_user=bob)


def test_owner_edit_becomes_current_and_keeps_the_model_caption(alice, bob, active_model, add_photo):
    photo = add_photo(13)
    photo_caption_batch()
    model_caption = current_captions(photo)[0]

    edited = photo_caption_edit(photo=photo, acting_user=alice, text="  A red   square on green. ")

    assert edited.text == "A red square on green."
    assert edited.source == Caption.Source.EDITED and edited.created_by == alice
    assert current_captions(photo) == [edited]
    model_caption.refresh_from_db()
    assert not model_caption.is_current
    with pytest.raises(PermissionDenied):
        photo_caption_edit(photo=photo, acting_user=bob, text="mine now")


def test_the_task_reports_what_it_did(active_model, add_photo):
    from captioning import tasks

    add_photo(14)
    assert tasks.caption_pending_photos() == {"claimed": 1, "captioned": 1, "retrying": 0, "failed": 0, "taken_over": 0}
