import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from mlcore.data import EmbeddingSet
from tests.commands.conftest import GOOD_VAL_IDS, VAL_CAPTIONS


@pytest.fixture
def loopback_settings(settings, coco_server):
    settings.COCO_ANNOTATIONS_URL = coco_server.annotations_url
    settings.COCO_IMAGES_BASE_URL = coco_server.base_url
    return settings


def encode(tmp_path, tiny_clip_dir, *flags: str) -> str:
    stdout = io.StringIO()
    call_command(
        "encode_coco",
        "--dataset=val",
        f"--coco-root={tmp_path / 'coco'}",
        f"--clip-model=local-dir:{tiny_clip_dir}",
        "--batch-size=2",
        "--workers=2",
        "--device=cpu",
        "--retries=0",
        *flags,
        stdout=stdout,
        stderr=io.StringIO(),
    )
    return stdout.getvalue()


def test_command_downloads_encodes_and_merges_from_the_configured_urls(
    tmp_path, tiny_clip_dir, coco_server, loopback_settings
):
    output = encode(tmp_path, tiny_clip_dir)

    merged = EmbeddingSet.load(tmp_path / "coco" / "CLIP_Pro_val_merged.safetensors")
    assert merged.image_ids == list(GOOD_VAL_IDS)
    assert len(merged.captions) == sum(len(VAL_CAPTIONS[image_id]) for image_id in GOOD_VAL_IDS)
    assert merged.clip_model == f"local-dir:{tiny_clip_dir}"
    assert coco_server.requests["/annotations/annotations_trainval2017.zip"] == 1
    lines = [" ".join(line.split()) for line in output.splitlines()]
    assert "downloaded 4" in lines
    assert "failed 2 (skipped, no embedding)" in lines
    assert any(line.startswith("HTTP 404 1, e.g. http://127.0.0.1:") for line in lines)
    assert any(line.startswith("corrupt image 1, e.g.") for line in lines)
    assert "embeddings written 4 (one per image)" in lines
    assert "captions written 14" in lines
    assert f"output {tmp_path / 'coco' / 'CLIP_Pro_val_merged.safetensors'}" in lines


def test_merge_flag_rebuilds_the_file_from_shards_without_encoding(
    tmp_path, tiny_clip_dir, coco_server, loopback_settings, unreachable_url
):
    out = tmp_path / "coco" / "val.safetensors"
    encode(tmp_path, tiny_clip_dir, "--max-images=3", f"--out={out}")
    out.unlink()
    loopback_settings.COCO_ANNOTATIONS_URL = loopback_settings.COCO_IMAGES_BASE_URL = unreachable_url

    output = encode(tmp_path, tiny_clip_dir, "--merge", f"--out={out}")

    assert EmbeddingSet.load(out).image_ids == [101, 102, 103]
    assert output.strip() == f"merged {out}.shards: 3 embeddings, 11 captions -> {out}"


def test_merge_flag_without_shards_says_to_encode_first(tmp_path, tiny_clip_dir):
    with pytest.raises(CommandError, match="no shards to merge .*without --merge first"):
        encode(tmp_path, tiny_clip_dir, "--merge")


def test_unreachable_annotations_url_is_a_command_error_naming_the_setting(
    tmp_path, tiny_clip_dir, settings, unreachable_url
):
    settings.COCO_ANNOTATIONS_URL = f"{unreachable_url}/annotations_trainval2017.zip"
    with pytest.raises(CommandError, match=rf"{unreachable_url}/annotations_trainval2017.zip.*COCO_ANNOTATIONS_URL"):
        encode(tmp_path, tiny_clip_dir)


def test_unreachable_images_end_in_a_command_error_after_the_summary(
    tmp_path, tiny_clip_dir, loopback_settings, unreachable_url
):
    loopback_settings.COCO_IMAGES_BASE_URL = unreachable_url
    stdout = io.StringIO()
    with pytest.raises(CommandError, match="no image could be encoded.*COCO_IMAGES_BASE_URL"):
        call_command(
            "encode_coco",
            "--dataset=val",
            f"--coco-root={tmp_path}",
            f"--clip-model=local-dir:{tiny_clip_dir}",
            "--device=cpu",
            "--retries=0",
            stdout=stdout,
            stderr=io.StringIO(),
        )
    assert "connection failed after 1 attempts" in stdout.getvalue()
