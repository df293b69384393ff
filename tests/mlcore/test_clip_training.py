from dataclasses import replace

import pytest
import torch

from mlcore.clip_training import (
    DEMO_CLIP_SPEC,
    caption_ranking_accuracy,
    encode_pixels,
    linear_probe_accuracy,
    preprocess_images,
    tokenize_captions,
    train_clip,
)
from mlcore.encoder import ClipEncoder
from mlcore.shapes import make_shape_samples, probe_labels
from mlcore.tiny import create_clip, save_clip

# The demo recipe at 32 px on single-object images, small enough to train in ~16 s on one thread.
FAST_SPEC = replace(DEMO_CLIP_SPEC, image_size=32)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # For models this small a second thread gains little, and on a busy machine it slows each step
    # several times over (measured: 213 s instead of 17 s for the training below).
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def trained():
    samples = [sample for sample in make_shape_samples(2400, seed=0, contrast_group_size=4) if sample.relation is None]
    model, history = train_clip(
        [sample.render() for sample in samples],
        [sample.description for sample in samples],
        FAST_SPEC,
        epochs=8,
        batch_size=32,
        lr=4e-3,
        group_size=4,
        text_frozen_fraction=1.0,
    )
    return model, history


@pytest.fixture(scope="module")
def held_out():
    samples = make_shape_samples(1500, seed=0, split="val")
    return samples, [sample.render() for sample in samples]


def probe(model, held_out, attribute: str) -> float:
    samples, images = held_out
    embeddings = encode_pixels(model, preprocess_images(images, FAST_SPEC))
    return linear_probe_accuracy(embeddings, probe_labels(samples)[attribute])


@pytest.mark.slow
def test_training_teaches_the_image_embedding_shape(trained, held_out):
    model, history = trained
    assert history[-1]["loss"] < history[0]["loss"]
    random_shape = probe(create_clip(FAST_SPEC, seed=0).eval(), held_out, "shape")
    trained_shape = probe(model, held_out, "shape")
    # Measured here: random init 0.37, trained 0.73 (4 shapes, chance 0.25); colour 0.81 -> 0.98.
    assert random_shape < 0.5
    assert trained_shape > random_shape + 0.2


@pytest.mark.slow
def test_saved_model_reloads_with_the_same_embeddings(trained, held_out, tmp_path):
    model, _ = trained
    _, images = held_out
    encoder = ClipEncoder.load(f"local-dir:{save_clip(model, FAST_SPEC, tmp_path / 'clip')}", device="cpu")
    captions = ["a small red circle in the middle on a black background", "a pink star"]
    with torch.no_grad():
        text_embeddings = model.encode_text(tokenize_captions(captions, FAST_SPEC))
    assert torch.allclose(
        encoder.encode_images(images[:16]), encode_pixels(model, preprocess_images(images[:16], FAST_SPEC))
    )
    # Inference mode takes PyTorch's fused attention path, equal up to float rounding.
    torch.testing.assert_close(encoder.encode_texts(captions), text_embeddings, rtol=1e-4, atol=1e-5)


def tiny_training(seed: int, text_frozen_fraction: float = 0.0):
    samples = make_shape_samples(32, seed=1)
    return train_clip(
        [sample.render() for sample in samples],
        [sample.captions for sample in samples],
        FAST_SPEC,
        epochs=1,
        batch_size=16,
        seed=seed,
        text_frozen_fraction=text_frozen_fraction,
    )[0]


def test_same_seed_trains_the_same_model():
    first, second, other = tiny_training(seed=0).state_dict(), tiny_training(seed=0).state_dict(), tiny_training(1)
    assert all(torch.equal(first[name], second[name]) for name in first)
    assert not torch.equal(first["visual.head.proj.weight"], other.state_dict()["visual.head.proj.weight"])


def test_text_tower_stays_random_while_frozen():
    initial = create_clip(FAST_SPEC, seed=0).state_dict()
    frozen = tiny_training(seed=0, text_frozen_fraction=1.0).state_dict()
    trained = tiny_training(seed=0, text_frozen_fraction=0.0).state_dict()
    for name in ("token_embedding.weight", "text_projection"):
        assert torch.equal(frozen[name], initial[name])
        assert not torch.equal(trained[name], initial[name])
    assert not torch.equal(frozen["visual.head.proj.weight"], initial["visual.head.proj.weight"])


def test_each_step_is_reported_with_the_steps_in_all():
    samples = make_shape_samples(8, seed=0)
    steps: list[tuple[int, int]] = []
    train_clip(
        [sample.render() for sample in samples],
        [sample.description for sample in samples],
        FAST_SPEC,
        epochs=2,
        batch_size=4,
        on_step=lambda done, total: steps.append((done, total)),
    )
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]


def test_training_input_errors_are_specific():
    samples = make_shape_samples(4, seed=0)
    images = [sample.render() for sample in samples]
    with pytest.raises(ValueError, match="4 images but 3 caption lists"):
        train_clip(images, [sample.captions for sample in samples[:3]], FAST_SPEC)
    with pytest.raises(ValueError, match="at least one caption"):
        train_clip(images, [[], *[sample.captions for sample in samples[1:]]], FAST_SPEC)
    with pytest.raises(ValueError, match="multiple of the group size 4"):
        train_clip(images, [sample.captions for sample in samples], FAST_SPEC, batch_size=6, group_size=4)


def test_linear_probe_reads_a_separable_attribute_and_skips_missing_labels():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=generator)
    embeddings = torch.randn(300, 8, generator=generator) * 0.1
    embeddings[torch.arange(300), labels] += 1.0
    assert linear_probe_accuracy(embeddings, labels) == 1.0
    labels[::2] = -1
    embeddings[::2] = 0.0
    assert linear_probe_accuracy(embeddings, labels) == 1.0
    noise = torch.randn(300, 8, generator=generator)
    assert linear_probe_accuracy(noise, torch.randint(0, 3, (300,), generator=generator)) < 0.6


def test_caption_ranking_counts_a_tie_as_a_loss():
    model = create_clip(FAST_SPEC, seed=0).eval()
    samples = make_shape_samples(4, seed=0)
    images, captions = [sample.render() for sample in samples], [sample.description for sample in samples]
    assert caption_ranking_accuracy(model, FAST_SPEC, images, captions, [[caption] for caption in captions]) == 0.0
    with pytest.raises(ValueError, match="no foils"):
        caption_ranking_accuracy(model, FAST_SPEC, images, captions, [[] for _ in captions])
