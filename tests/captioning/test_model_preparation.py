"""prepare_caption_model (what `make run` runs in the background): CAPTION_MODEL made active, the demo model as
the offline fallback, and what the pages say meanwhile."""

import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from captioning.models import ModelVersion
from captioning.services.model_preparation import (
    PreparationState,
    _ProgressWriter,
    model_preparation_get,
    model_preparation_interrupted,
)
from captioning.services.model_versions import model_version_register
from tests.commands.conftest import closed_port_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def offline(monkeypatch) -> str:
    """Every download address on a loopback port nothing listens on, as on a machine without internet."""
    unreachable = closed_port_url()
    monkeypatch.setenv("HF_ENDPOINT", unreachable)
    monkeypatch.setenv("GOOGLE_DRIVE_DOWNLOAD_URL", f"{unreachable}/download")
    monkeypatch.delenv("CLIPCAP_WEIGHTS_BASE_URL", raising=False)
    return unreachable


def prepare(model: str) -> str:
    output = StringIO()
    call_command("prepare_caption_model", "--model", model, stdout=output)
    return output.getvalue()


def test_offline_the_catalogue_model_falls_back_to_the_demo_within_seconds_and_the_home_page_says_why(
    offline, save_random_checkpoint, settings, client
):
    settings.CAPTION_MODEL_PATH = save_random_checkpoint("demo")  # built by an earlier run

    started = time.monotonic()
    printed = prepare("clipcap-coco")
    assert time.monotonic() - started < 10

    assert ModelVersion.objects.get(is_active=True).name == "demo"
    preparation = model_preparation_get()
    assert (preparation.state, preparation.model_name) == (PreparationState.READY, "demo")
    assert preparation.fallback_reason.startswith("clipcap-coco could not be installed")
    assert "connection refused" in preparation.fallback_reason
    assert preparation.fallback_reason in printed
    page = client.get("/").content.decode()
    assert "Captions come from the offline demo model, which knows only coloured shapes" in page
    assert "because clipcap-coco could not be installed" in page
    assert "Preparing the captioning model" not in page


def test_a_registered_model_named_by_caption_model_is_activated_without_a_download(
    offline, save_random_checkpoint, client
):
    model_version_register(name="demo", checkpoint_path=save_random_checkpoint("demo"), activate=True)
    model_version_register(name="mine", checkpoint_path=save_random_checkpoint("mine"))

    prepare("mine")

    assert ModelVersion.objects.get(is_active=True).name == "mine"
    assert model_preparation_get().fallback_reason == ""
    assert "offline demo model" not in client.get("/").content.decode()


def test_a_checkpoint_directory_is_registered_under_its_name_and_activated(save_random_checkpoint):
    path = save_random_checkpoint("trained-here")
    prepare(str(path))
    model = ModelVersion.objects.get(is_active=True)
    assert (model.name, model.checkpoint_path) == ("trained-here", str(path.resolve()))


def test_a_name_that_is_nothing_known_falls_back_to_the_demo_saying_so(save_random_checkpoint, settings):
    settings.CAPTION_MODEL_PATH = save_random_checkpoint("demo")
    prepare("no-such-model")
    assert ModelVersion.objects.get(is_active=True).name == "demo"
    assert "CAPTION_MODEL='no-such-model' is not a model in the catalogue (clipcap-coco" in (
        model_preparation_get().fallback_reason
    )


def test_a_demo_that_cannot_be_built_is_recorded_as_failed(settings, isolated_files):
    blocking_file = isolated_files / "not-a-folder"
    blocking_file.write_text("")
    settings.CAPTION_MODEL_PATH = blocking_file / "demo"

    with pytest.raises(CommandError, match="the demo model could not be built"):
        prepare("demo")

    preparation = model_preparation_get()
    assert preparation.state == PreparationState.FAILED
    assert "could not be built" in preparation.error
    assert not ModelVersion.objects.exists()


def test_every_page_shows_the_preparation_under_way(client, alice, gallery):
    _ProgressWriter("demo")("training the demo CLIP", 0.4)
    shown = "Preparing the captioning model: training the demo CLIP, 40%."
    assert shown in client.get("/").content.decode()
    client.force_login(alice)
    for url in ("/galleries/", gallery.get_absolute_url()):
        assert shown in client.get(url).content.decode()


def test_a_preparation_whose_process_died_stops_showing_as_under_way(client):
    progress = _ProgressWriter("demo")
    progress("training the demo CLIP", 0.4)
    model_preparation_interrupted(reason="the model preparation stopped (exit -9) before it finished")

    preparation = model_preparation_get()
    assert (preparation.state, preparation.stage) == (PreparationState.FAILED, "training the demo CLIP")
    page = client.get("/").content.decode()
    assert "No captioning model could be prepared: the model preparation stopped (exit -9)" in page
    assert "Preparing the captioning model" not in page


def test_progress_within_a_stage_is_written_at_most_twice_a_second():
    progress = _ProgressWriter("demo")
    progress("training the demo CLIP", 0.0)
    progress("training the demo CLIP", 0.5)  # too soon after the last write
    assert model_preparation_get().fraction == 0.0
    progress("training the demo captioner", 0.0)  # a new stage is written at once
    assert model_preparation_get().stage == "training the demo captioner"
