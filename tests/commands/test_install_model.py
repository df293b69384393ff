"""`manage.py install_model` end to end: a loopback HTTP server stands for the Hugging Face hub, Google Drive
and a mirror, serving ClipCap reference-layout weights (random, tiny GPT-2) and a tiny GPT-2's files; CLIP
is a local folder. The installed model is registered, active, and captions a photo."""

import hashlib
import io
import json
import shutil
import time

import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from PIL import Image

from captioning.models import ModelVersion
from mlcore.captioner import Captioner
from mlcore.checkpoint import read_config
from mlcore.pretrained import CATALOGUE_PATH, catalogue_entry
from tests.commands.conftest import closed_port_url
from tests.file_server import serve_files
from tests.mlcore.test_checkpoint import clipcap_gpt2_state, clipcap_mlp_state, clipcap_transformer_state

pytestmark = pytest.mark.django_db
GPT2_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
TRANSFORMER_DRIVE_ID = catalogue_entry("clipcap-coco-transformer").weights_sources[0].google_drive_id


@pytest.fixture(scope="module")
def site(tmp_path_factory, tiny_gpt2_dir):
    """The files, laid out under the paths the catalogue's URLs have on each host."""
    root = tmp_path_factory.mktemp("clipcap-site")
    torch.manual_seed(0)
    mlp = clipcap_gpt2_state(tiny_gpt2_dir, seed=1) | clipcap_mlp_state(24, 32, prefix_length=10)
    transformer = clipcap_gpt2_state(tiny_gpt2_dir, seed=2) | clipcap_transformer_state(
        40, 32, prefix_length=40, clip_length=40, layers=2
    )
    (root / "mirror").mkdir()
    torch.save(mlp, root / "mirror" / "coco_weights.pt")
    torch.save(transformer, root / "mirror" / "transformer_weights.pt")
    hub_copy = root / "akhaliq/CLIP-prefix-captioning-COCO-weights/resolve/main"
    hub_copy.mkdir(parents=True)
    shutil.copy(root / "mirror" / "coco_weights.pt", hub_copy)
    gpt2 = root / "openai-community/gpt2/resolve/main"
    gpt2.mkdir(parents=True)
    for name in GPT2_FILES:
        shutil.copy(tiny_gpt2_dir / name, gpt2)
    with serve_files(root) as server:
        yield server


@pytest.fixture
def server(site, monkeypatch):
    site.reset()
    monkeypatch.setenv("HF_ENDPOINT", site.base_url)
    monkeypatch.setenv("GOOGLE_DRIVE_DOWNLOAD_URL", site.drive_url)
    monkeypatch.delenv("CLIPCAP_WEIGHTS_BASE_URL", raising=False)
    return site


def install(tmp_path, name, *flags) -> str:
    stdout = io.StringIO()
    call_command(
        "install_model",
        name,
        "--out",
        str(tmp_path / name),
        "--downloads",
        str(tmp_path / "downloads"),
        "--no-progress",
        *flags,
        stdout=stdout,
        stderr=io.StringIO(),
    )
    return stdout.getvalue()


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_install_downloads_converts_registers_and_activates_a_model_that_captions(server, tmp_path, tiny_clip_dir):
    install(tmp_path, "clipcap-coco", "--activate", "--clip-source", f"local-dir:{tiny_clip_dir}")

    model_version = ModelVersion.objects.get(name="clipcap-coco")
    assert model_version.is_active
    served = server.root / "mirror" / "coco_weights.pt"
    files = {record["name"]: record for record in model_version.metrics["files"]}
    assert files["coco_weights.pt"] == {
        "name": "coco_weights.pt",
        "url": server.url("akhaliq/CLIP-prefix-captioning-COCO-weights/resolve/main/coco_weights.pt"),
        "size": served.stat().st_size,
        "sha256": sha256(served),
    }
    gpt2_served = server.root / "openai-community/gpt2/resolve/main"
    assert {name: files[name]["sha256"] for name in GPT2_FILES} == {
        name: sha256(gpt2_served / name) for name in GPT2_FILES
    }
    config = read_config(model_version.checkpoint_path)
    assert (config.mapper.mapper_type, config.prefix_length, config.gpt2_config["n_head"]) == ("mlp", 10, 2)

    captioner = Captioner.load(model_version.checkpoint_path, device="cpu")
    [result] = captioner.caption([Image.new("RGB", (48, 48), "red")], beam_size=2, max_length=6)
    assert result.token_ids


def test_the_transformer_release_comes_through_google_drives_confirmation_page(server, tmp_path, tiny_resnet_clip_dir):
    server.drive_files[TRANSFORMER_DRIVE_ID] = "mirror/transformer_weights.pt"

    install(tmp_path, "clipcap-coco-transformer", "--clip-source", f"local-dir:{tiny_resnet_clip_dir}")

    drive_requests = [path for path in server.paths_requested() if path == "/drive/download"]
    assert len(drive_requests) == 2  # the confirmation page, then the file through its form
    assert sha256(tmp_path / "downloads" / "transformer_weights.pt") == sha256(
        server.root / "mirror" / "transformer_weights.pt"
    )
    model_version = ModelVersion.objects.get(name="clipcap-coco-transformer")
    assert not model_version.is_active
    config = read_config(model_version.checkpoint_path)
    assert (config.mapper.mapper_type, config.mapper.prefix_length, config.normalize_prefix) == (
        "transformer",
        40,
        True,
    )
    captioner = Captioner.load(model_version.checkpoint_path, device="cpu")
    assert captioner.caption([Image.new("RGB", (64, 64), "blue")], beam_size=2, max_length=5)[0].token_ids


def test_a_partial_download_left_by_an_interrupted_run_is_resumed_from_a_mirror(
    server, tmp_path, monkeypatch, tiny_clip_dir
):
    monkeypatch.setenv("CLIPCAP_WEIGHTS_BASE_URL", server.url("mirror"))
    served = server.root / "mirror" / "coco_weights.pt"
    part = tmp_path / "downloads" / "coco_weights.pt.part"
    part.parent.mkdir()
    part.write_bytes(served.read_bytes()[:5000])
    part.with_name("coco_weights.pt.part.source").write_text(server.url("mirror/coco_weights.pt"))

    install(tmp_path, "clipcap-coco", "--clip-source", f"local-dir:{tiny_clip_dir}")

    assert ("/mirror/coco_weights.pt", "bytes=5000-") in server.requests
    assert sorted(path.name for path in part.parent.iterdir()) == ["coco_weights.pt", "openai-community--gpt2"]
    record = ModelVersion.objects.get(name="clipcap-coco").metrics["files"][0]
    assert (record["url"], record["sha256"]) == (server.url("mirror/coco_weights.pt"), sha256(served))


def test_offline_install_fails_within_seconds_saying_what_to_set_or_download(monkeypatch, tmp_path, tiny_clip_dir):
    unreachable = closed_port_url()
    monkeypatch.setenv("HF_ENDPOINT", unreachable)
    monkeypatch.setenv("GOOGLE_DRIVE_DOWNLOAD_URL", f"{unreachable}/download")
    monkeypatch.delenv("CLIPCAP_WEIGHTS_BASE_URL", raising=False)

    started = time.monotonic()
    with pytest.raises(CommandError) as raised:
        install(tmp_path, "clipcap-coco", "--clip-source", f"local-dir:{tiny_clip_dir}")
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert f"{unreachable}/akhaliq/CLIP-prefix-captioning-COCO-weights/resolve/main/coco_weights.pt" in message
    assert f"{unreachable}/download?id=1IdaBtMSvtyzF0ByVaBHtvM0JYSXRExRX" in message
    assert "connection refused" in message
    assert "CLIPCAP_WEIGHTS_BASE_URL" in message
    assert str(tmp_path / "downloads" / "coco_weights.pt") in message
    assert not ModelVersion.objects.exists()


def test_weights_put_there_by_hand_are_used_and_an_unreachable_hub_names_gpt2s_files(
    monkeypatch, tmp_path, site, tiny_clip_dir
):
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    shutil.copy(site.root / "mirror" / "coco_weights.pt", downloads)

    started = time.monotonic()
    with pytest.raises(CommandError, match="GPT-2's config.json could not be downloaded") as raised:
        install(tmp_path, "clipcap-coco", "--clip-source", f"local-dir:{tiny_clip_dir}")
    assert time.monotonic() - started < 10
    assert "HF_ENDPOINT" in str(raised.value)
    assert str(downloads / "openai-community--gpt2") in str(raised.value)


def test_a_local_gpt2_folder_replaces_the_download(server, tmp_path, monkeypatch, tiny_clip_dir, tiny_gpt2_dir):
    monkeypatch.setenv("CLIPCAP_WEIGHTS_BASE_URL", server.url("mirror"))

    install(
        tmp_path, "clipcap-coco", "--clip-source", f"local-dir:{tiny_clip_dir}", "--gpt2-source", str(tiny_gpt2_dir)
    )

    assert server.paths_requested() == ["/mirror/coco_weights.pt"]
    assert [record["name"] for record in ModelVersion.objects.get().metrics["files"]] == ["coco_weights.pt"]


def test_an_unknown_name_lists_the_catalogue(tmp_path):
    with pytest.raises(CommandError, match="no pretrained model 'clipcap' in the catalogue; known: clipcap-coco, "):
        install(tmp_path, "clipcap")


def test_list_shows_every_catalogue_entry():
    stdout = io.StringIO()
    call_command("install_model", "--list", stdout=stdout)
    names = [line.split()[0] for line in stdout.getvalue().splitlines()]
    assert names == list(json.loads(CATALOGUE_PATH.read_text()))


def test_a_partial_download_from_another_source_is_not_continued(server, tmp_path, monkeypatch, tiny_clip_dir):
    monkeypatch.setenv("CLIPCAP_WEIGHTS_BASE_URL", server.url("mirror"))
    part = tmp_path / "downloads" / "coco_weights.pt.part"
    part.parent.mkdir()
    part.write_bytes(b"the first bytes of a file from elsewhere")
    part.with_name("coco_weights.pt.part.source").write_text("https://elsewhere.example/coco_weights.pt")

    install(tmp_path, "clipcap-coco", "--clip-source", f"local-dir:{tiny_clip_dir}")

    assert ("/mirror/coco_weights.pt", None) in server.requests
    assert sha256(tmp_path / "downloads" / "coco_weights.pt") == sha256(server.root / "mirror" / "coco_weights.pt")
