"""mlcore.familiarity: a reference sample of training embeddings, stored in the checkpoint, tells the photos a
captioner knows from the ones it has never seen anything like."""

import pytest
import torch
from safetensors.torch import save_file

from mlcore.captioner import Captioner
from mlcore.checkpoint import save_checkpoint
from mlcore.data import EmbeddingSet
from mlcore.errors import CheckpointError, EmbeddingSizeError
from mlcore.familiarity import REFERENCE_FILE, FamiliarityScore, build_reference, load_reference
from mlcore.model import load_tokenizer
from mlcore.train import train
from tests.conftest import make_captioner_config, make_random_model
from tests.mlcore.test_train import options

SIZE = 24


def clustered(count: int, seed: int, centres_seed: int = 0, clusters: int = 3) -> torch.Tensor:
    """[count, SIZE] embeddings around a few centres, like a training set of a few kinds of picture."""
    centres = torch.randn(clusters, SIZE, generator=torch.Generator().manual_seed(centres_seed)) * 3
    generator = torch.Generator().manual_seed(seed)
    which = torch.randint(0, clusters, (count,), generator=generator)
    return centres[which] + torch.randn(count, SIZE, generator=generator)


def test_images_like_the_training_ones_are_confident_and_others_are_not():
    reference = build_reference(clustered(600, seed=1), clustered(300, seed=2))

    assert reference.calibration["held_out_images"] == 300
    assert reference.calibration["held_out_confident"] >= 0.99
    fresh = reference.scores(clustered(1000, seed=3))
    assert sum(score.confident for score in fresh) / len(fresh) >= 0.97  # measured 0.99
    strangers = reference.scores(clustered(200, seed=4, centres_seed=9))  # other kinds of picture
    assert not any(score.confident for score in strangers)
    values = [score.value for score in fresh + strangers]
    assert all(0.0 <= value <= 1.0 for value in values)


def test_without_a_held_out_set_a_share_of_the_training_embeddings_calibrates():
    reference = build_reference(clustered(500, seed=1), None)

    assert reference.calibration["held_out_images"] == 50
    assert reference.embeddings.shape == (450, SIZE)
    assert build_reference(clustered(1, seed=1), None) is None  # too few to sample and calibrate both


def test_the_reference_travels_in_the_checkpoint_and_the_captioner_scores_with_it(
    tiny_clip_dir, tiny_gpt2_dir, tmp_path
):
    config = make_captioner_config(tiny_clip_dir, tiny_gpt2_dir)
    model = make_random_model(config, tiny_gpt2_dir, seed=0)
    reference = build_reference(clustered(200, seed=1), clustered(100, seed=2))
    checkpoint = save_checkpoint(model, load_tokenizer(tiny_gpt2_dir), tmp_path / "ckpt", config, familiarity=reference)

    loaded = load_reference(checkpoint)
    assert loaded.threshold == reference.threshold
    assert torch.equal(loaded.embeddings, reference.embeddings)  # calibrated on the half-precision values stored
    captioner = Captioner.load(checkpoint, device="cpu")
    known, stranger = captioner.familiarity(torch.cat([clustered(1, seed=5), clustered(1, seed=6, centres_seed=9)]))
    assert known.confident and not stranger.confident
    assert known.value == float(reference.familiarity(clustered(1, seed=5))[0])


def test_a_checkpoint_without_a_reference_has_unknown_familiarity_and_stays_confident(save_random_checkpoint):
    captioner = Captioner.load(save_random_checkpoint("imported"), device="cpu")

    assert captioner.familiarity_reference is None
    assert captioner.familiarity(torch.randn(2, SIZE)) == [FamiliarityScore(None, True)] * 2


def test_a_corrupt_reference_or_the_wrong_embedding_size_is_a_clear_error(tmp_path):
    reference = build_reference(clustered(50, seed=1), clustered(20, seed=2))
    with pytest.raises(EmbeddingSizeError, match=r"shape \[N, 24\]"):
        reference.familiarity(torch.randn(3, SIZE + 1))
    save_file({"embeddings": torch.randn(4, SIZE)}, tmp_path / REFERENCE_FILE, metadata={"format": "something else"})
    with pytest.raises(CheckpointError, match="not a familiarity reference"):
        load_reference(tmp_path)
    (tmp_path / REFERENCE_FILE).write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="is corrupt"):
        load_reference(tmp_path)


def test_training_stores_the_reference_and_what_the_model_was_trained_on(tmp_path, tiny_gpt2_dir):
    summary = train(options(tmp_path, tiny_gpt2_dir, epochs=1))

    for checkpoint in (summary.best_checkpoint, summary.latest_checkpoint):
        captioner = Captioner.load(checkpoint, device="cpu")
        reference = captioner.familiarity_reference
        assert reference is not None and reference.embeddings.shape == (24, SIZE)  # every training image
        assert reference.calibration["held_out_images"] == 8  # the validation set
        assert captioner.config.training["trained_on"] == "24 images with 48 captions from train.safetensors"
    validation = EmbeddingSet.load(tmp_path / "val.safetensors").embeddings
    assert all(score.confident for score in captioner.familiarity(validation))
    assert not any(score.confident for score in captioner.familiarity(-validation))  # the opposite of each scene
