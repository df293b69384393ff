"""register_model, prepare_caption_model (what `make run` calls) and the periodic sweep task."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.utils import timezone

from captioning import jobs, tasks
from captioning.models import ModelVersion, Photo
from captioning.services.photos import photo_upload
from mlcore.demo import DEMO_REPORT_FILE
from tests.captioning.helpers import encode, picture

pytestmark = pytest.mark.django_db


def test_register_model_reads_the_config_and_activates(save_random_checkpoint):
    path = save_random_checkpoint("first")
    call_command("register_model", str(path), "--activate", stdout=StringIO())

    model = ModelVersion.objects.get()
    assert (model.name, model.is_active, model.checkpoint_path) == ("first", True, str(path.resolve()))
    assert model.config["clip_embedding_size"] == 24


def test_only_one_model_is_active(save_random_checkpoint):
    call_command("register_model", str(save_random_checkpoint("one")), "--activate", stdout=StringIO())
    call_command("register_model", str(save_random_checkpoint("two")), "--activate", stdout=StringIO())
    assert list(ModelVersion.objects.filter(is_active=True).values_list("name", flat=True)) == ["two"]


def test_register_model_if_none_active_keeps_the_active_one(save_random_checkpoint):
    call_command("register_model", str(save_random_checkpoint("kept")), "--activate", stdout=StringIO())
    call_command("register_model", str(save_random_checkpoint("other")), "--if-none-active", stdout=StringIO())
    assert list(ModelVersion.objects.values_list("name", flat=True)) == ["kept"]


def test_register_model_stores_the_demo_models_evaluation(save_random_checkpoint):
    checkpoint = save_random_checkpoint("demo")
    report = {"object_accuracy": 0.87, "metrics": {"CIDEr": 4.5, "CLIPScore": 1.6}, "skipped_metrics": {}}
    (checkpoint / DEMO_REPORT_FILE).write_text(json.dumps(report))
    call_command("register_model", str(checkpoint), stdout=StringIO())
    assert ModelVersion.objects.get().metrics == {"object_accuracy": 0.87, "CIDEr": 4.5, "CLIPScore": 1.6}


def test_register_model_refuses_a_folder_that_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CommandError, match="not a CLIP-Pro checkpoint|does not exist"):
        call_command("register_model", str(tmp_path), stdout=StringIO())


def test_prepare_caption_model_activates_the_model_already_built(save_random_checkpoint, settings):
    settings.CAPTION_MODEL_PATH = save_random_checkpoint("demo")
    settings.CAPTION_MODEL = "demo"
    output = StringIO()
    call_command("prepare_caption_model", stdout=output)

    model = ModelVersion.objects.get()
    assert (model.name, model.is_active) == ("demo", True)
    call_command("prepare_caption_model", stdout=output)  # a second run changes nothing
    assert ModelVersion.objects.count() == 1
    assert "is active" in output.getvalue()


def test_sweep_restarts_captioning_of_abandoned_photos(alice, gallery, settings, monkeypatch):
    queued = []
    monkeypatch.setattr(jobs, "request_worker_run", lambda: queued.append(True))
    photo_upload(acting_user=alice, gallery=gallery, file=SimpleUploadedFile("a.jpg", encode(picture(seed=51))))
    Photo.objects.update(status=Photo.Status.PROCESSING, claimed_at=timezone.now())

    assert tasks.sweep()["captioning_queued"] is False  # a live claim: leave it to its worker
    Photo.objects.update(claimed_at=timezone.now() - timedelta(seconds=settings.CAPTION_LEASE_SECONDS + 1))
    assert tasks.sweep()["captioning_queued"] is True
    assert queued == [True]


def test_the_sweep_schedule_exists():
    from django_q.models import Schedule

    assert Schedule.objects.filter(func="captioning.tasks.sweep", schedule_type=Schedule.MINUTES, minutes=1).exists()
