"""mlcore.pretrained: the catalogue and CLIP's weights in open_clip's cache (the rest of the install is tested
end to end in tests/commands/test_install_model.py)."""

import hashlib
import time

import pytest

from mlcore.errors import ModelUnavailableError
from mlcore.pretrained import INSTALL_POLICY, ensure_clip_weights, read_catalogue, weights_urls
from tests.commands.conftest import closed_port_url

VIT_B_32_REPO = "timm/vit_base_patch32_clip_224.openai"


def test_every_catalogue_entry_names_weights_sources_a_clip_and_gpt2s_files(monkeypatch):
    monkeypatch.delenv("CLIPCAP_WEIGHTS_BASE_URL", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.delenv("GOOGLE_DRIVE_DOWNLOAD_URL", raising=False)
    catalogue = read_catalogue()
    assert set(catalogue) == {"clipcap-coco", "clipcap-conceptual", "clipcap-coco-transformer"}
    assert weights_urls(catalogue["clipcap-coco"]) == [
        "https://huggingface.co/akhaliq/CLIP-prefix-captioning-COCO-weights/resolve/main/coco_weights.pt",
        "https://drive.usercontent.google.com/download?id=1IdaBtMSvtyzF0ByVaBHtvM0JYSXRExRX&export=download&confirm=t",
    ]
    assert catalogue["clipcap-coco-transformer"].clip_model == "RN50x4"
    monkeypatch.setenv("CLIPCAP_WEIGHTS_BASE_URL", "http://mirror.lan/clipcap/")
    assert weights_urls(catalogue["clipcap-conceptual"]) == ["http://mirror.lan/clipcap/conceptual_weights.pt"]


def test_clip_weights_already_in_the_cache_are_recorded_without_a_download(monkeypatch, tmp_path):
    snapshot = tmp_path / f"models--{VIT_B_32_REPO.replace('/', '--')}" / "snapshots" / "0123abc"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"cached weights")
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0123abc")
    monkeypatch.setenv("CLIPPRO_CLIP_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())

    record = ensure_clip_weights("ViT-B/32", INSTALL_POLICY)

    assert (record.name, record.size, record.sha256) == (
        "open_clip_model.safetensors",
        len(b"cached weights"),
        hashlib.sha256(b"cached weights").hexdigest(),
    )


def test_clip_weights_that_cannot_be_reached_fail_within_seconds_saying_what_to_do(monkeypatch, tmp_path):
    unreachable = closed_port_url()
    monkeypatch.setenv("CLIPPRO_CLIP_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", unreachable)

    started = time.monotonic()
    with pytest.raises(ModelUnavailableError) as raised:
        ensure_clip_weights("RN50x4", INSTALL_POLICY)
    assert time.monotonic() - started < 10
    message = str(raised.value)
    assert f"{unreachable}/timm/resnet50x4_clip.openai/resolve/main/open_clip_model.safetensors" in message
    assert "HF_ENDPOINT" in message and "CLIPPRO_CLIP_CACHE" in message and "--clip-source" in message


def test_local_clip_folders_need_no_download(tiny_clip_dir):
    assert ensure_clip_weights(f"local-dir:{tiny_clip_dir}", INSTALL_POLICY) is None
