import os
import re
import subprocess
import sys

import pytest
import torch
from PIL import Image

from mlcore.encoder import ClipEncoder, load_image, resolve_clip_name
from mlcore.errors import ImageDecodeError, ModelUnavailableError


@pytest.mark.parametrize(
    ("name", "model", "pretrained"),
    [
        ("ViT-B/32", "ViT-B-32-quickgelu", "openai"),
        ("RN50x4", "RN50x4-quickgelu", "openai"),
        ("ViT-L/14@336px", "ViT-L-14-336-quickgelu", "openai"),
        ("ViT-B-32:laion2b_s34b_b79k", "ViT-B-32", "laion2b_s34b_b79k"),
        ("hf-hub:timm/vit_base_patch32_clip_224.openai", "hf-hub:timm/vit_base_patch32_clip_224.openai", None),
    ],
)
def test_clip_names_resolve_to_open_clip_models(name, model, pretrained):
    source = resolve_clip_name(name)
    assert (source.open_clip_model, source.pretrained) == (model, pretrained)


def test_unknown_clip_name_lists_what_is_accepted():
    with pytest.raises(ModelUnavailableError, match="unknown CLIP model 'ViT-Z/99'.*ViT-B/32"):
        resolve_clip_name("ViT-Z/99")


def test_local_directory_without_config_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="has no open_clip_config.json"):
        resolve_clip_name(f"local-dir:{tmp_path}")


def test_uncached_weights_without_network_name_the_model_and_the_fix(tmp_path):
    # A fresh process with an empty cache and no network (HF_HUB_OFFLINE is read at import time).
    script = (
        "from mlcore.encoder import ClipEncoder\n"
        "from mlcore.errors import ModelUnavailableError\n"
        "try:\n    ClipEncoder.load('RN50', device='cpu')\n"
        "except ModelUnavailableError as error:\n    print('ERROR:', error)\n"
    )
    environment = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "CLIPPRO_CLIP_CACHE": str(tmp_path / "clip")}
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=environment, timeout=300
    )
    assert re.search(r"ERROR: CLIP model 'RN50' .*not cached.*CLIPPRO_CLIP_CACHE", completed.stdout), completed


def test_embedding_size_is_read_from_the_model(tiny_clip_dir, tiny_resnet_clip_dir):
    vit = ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu")
    resnet = ClipEncoder.load(str(tiny_resnet_clip_dir), device="cpu")
    assert vit.embedding_size == 24
    assert resnet.embedding_size == 40
    images = [Image.new("RGB", (50, 30), "red"), Image.new("L", (20, 20), 128)]
    assert vit.encode_images(images).shape == (2, 24)
    assert resnet.encode_images(images).shape == (2, 40)
    assert vit.encode_texts(["a red square", "a cat"]).shape == (2, 24)


def test_batched_encoding_equals_one_by_one(tiny_clip_dir):
    encoder = ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu")
    images = [Image.new("RGB", (40, 40), colour) for colour in ("red", "green", "blue", "white", "black")]
    together = encoder.encode_images(images, batch_size=2)
    alone = torch.cat([encoder.encode_images([image]) for image in images])
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_exif_orientation_is_applied_before_encoding(tmp_path, tiny_clip_dir):
    # A 60x20 picture stored sideways: EXIF orientation 6 means "rotate 90° clockwise to view".
    upright = Image.new("RGB", (60, 20), "white")
    upright.paste(Image.new("RGB", (20, 20), "red"), (0, 0))
    stored = upright.rotate(90, expand=True)  # what a camera writes: 20x60 with the red block at the bottom
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "sideways.jpg"
    stored.save(path, exif=exif, quality=95)

    loaded = load_image(path)
    assert loaded.size == (60, 20)
    assert loaded.getpixel((5, 10))[0] > 200 and loaded.getpixel((5, 10))[1] < 60
    encoder = ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu")
    torch.testing.assert_close(
        encoder.encode_images([Image.open(path)]), encoder.encode_images([upright]), atol=0.05, rtol=0.05
    )


def test_undecodable_file_raises_a_clear_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        load_image(path)
