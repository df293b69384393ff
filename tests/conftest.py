"""Shared fixtures: tiny CLIP / GPT-2 / tokenizer models, saved to disk and loaded through the real
loading code (the same path `ViT-B/32` and `gpt2` take).
"""

import os

# No network here: without this, every hub lookup retries with backoff for ~25 s before failing.
# huggingface_hub reads it at import time, so it is set before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import pytest
import torch

from mlcore.checkpoint import save_checkpoint
from mlcore.mapping import MapperConfig
from mlcore.model import CaptionerConfig, ClipCaptionModel, gpt2_config_dict, load_gpt2, load_tokenizer
from mlcore.tiny import TinyClipSpec, build_gpt2, create_clip, save_clip, train_tokenizer

COLOURS = ["red", "green", "blue", "yellow", "white", "black", "purple", "orange"]
SHAPES = ["circle", "square", "triangle", "star"]
CAPTIONS = [
    f"a {size} {colour} {shape} {where} on a {background} background!"
    for size in ("small", "large")
    for colour in COLOURS
    for shape in SHAPES
    for where in ("in the middle", "to the left", "near the top")
    for background in ("black", "grey")
]


DATABASE_FIXTURES = {
    "db",
    "transactional_db",
    "live_server",
    "django_db_reset_sequences",
    "django_db_serialized_rollback",
}


@pytest.fixture(autouse=True)
def empty_cache(request):
    """Each test starts with an empty cache. Failed sign-ins live there, keyed by user name and address, and
    every test's users have the same names. The cache is a database table (settings.CACHES) that a rolled-back
    or flushed test database keeps, so only a test that uses the database can have anything in it."""
    if request.node.get_closest_marker("django_db") is None and not DATABASE_FIXTURES & set(request.fixturenames):
        return
    request.getfixturevalue("db")  # the test database, set up as the test asked (transactional or not)
    from django.core.cache import cache

    from captioning.translators import forget_stored_languages

    cache.clear()
    forget_stored_languages()  # the process's copy of the stored translations' languages: a rollback sends no signal


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny_clip_dir(model_dir) -> Path:
    spec = TinyClipSpec(embed_dim=24)
    return save_clip(create_clip(spec, seed=1), spec, model_dir / "clip-vit")


@pytest.fixture(scope="session")
def tiny_resnet_clip_dir(model_dir) -> Path:
    spec = TinyClipSpec(vision="resnet", embed_dim=40, image_size=64)
    return save_clip(create_clip(spec, seed=2), spec, model_dir / "clip-resnet")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(model_dir) -> Path:
    directory = model_dir / "gpt2"
    tokenizer = train_tokenizer(CAPTIONS, directory, vocab_size=320)
    build_gpt2(directory, tokenizer, width=32, layers=2, heads=2)
    return directory


def make_captioner_config(
    clip_dir: Path,
    gpt2_dir: Path,
    mapper_type: str = "mlp",
    train_gpt2: bool = False,
    prefix_length: int = 4,
    clip_embedding_size: int = 24,
    normalize_prefix: bool = False,
    stop_token: str = "<|endoftext|>",
    clip_rerank: bool = False,
) -> CaptionerConfig:
    gpt = load_gpt2(gpt2_dir)
    return CaptionerConfig(
        clip_model=f"local-dir:{clip_dir}",
        clip_embedding_size=clip_embedding_size,
        mapper=MapperConfig(
            mapper_type,
            clip_embedding_size,
            gpt.config.n_embd,
            prefix_length,
            prefix_length_clip=3,
            num_layers=2,
            num_heads=4,
        ),
        gpt2_source=str(gpt2_dir),
        gpt2_config=gpt2_config_dict(gpt.config),
        gpt2_weights="checkpoint" if train_gpt2 else "source",
        train_gpt2=train_gpt2,
        normalize_prefix=normalize_prefix,
        stop_token=stop_token,
        clip_rerank=clip_rerank,
    )


def make_random_model(config: CaptionerConfig, gpt2_dir: Path, seed: int, sharpness: float = 1.0) -> ClipCaptionModel:
    """A captioner with random weights. With `train_gpt2`, GPT-2 is perturbed and its output layer
    untied and scaled by `sharpness`, so next-token distributions are peaked and varied like a trained
    model's, instead of nearly uniform or repeating one token (what a tied random GPT-2 does)."""
    torch.manual_seed(seed)
    gpt = load_gpt2(gpt2_dir)
    if config.train_gpt2:
        with torch.no_grad():
            for parameter in gpt.parameters():
                parameter.add_(torch.randn_like(parameter) * 0.05)
        gpt.config.tie_word_embeddings = False
        gpt.lm_head.weight = torch.nn.Parameter(torch.randn_like(gpt.lm_head.weight) * 0.2 * sharpness)
    return ClipCaptionModel(config, gpt).eval()


@pytest.fixture
def save_random_checkpoint(tiny_clip_dir, tiny_gpt2_dir, tmp_path):
    def save(name: str = "ckpt", seed: int = 0, sharpness: float = 1.0, **config_options) -> Path:
        config = make_captioner_config(tiny_clip_dir, tiny_gpt2_dir, **config_options)
        model = make_random_model(config, tiny_gpt2_dir, seed, sharpness)
        return save_checkpoint(model, load_tokenizer(tiny_gpt2_dir), tmp_path / name, config)

    return save
