"""mlcore.familiarity: a reference sample of training embeddings, stored in the checkpoint, tells the photos a
captioner knows from the ones it has never seen anything like."""

import pytest
import torch
from safetensors.torch import save_file

from mlcore.captioner import Captioner
from mlcore.checkpoint import save_checkpoint
from mlcore.data import EmbeddingSet
from mlcore.errors import CheckpointError, EmbeddingSizeError
from mlcore.familiarity import (
    GAUSSIAN_REFERENCE_FORMAT,
    REFERENCE_FILE,
    FamiliarityReference,
    FamiliarityScore,
    build_reference,
    load_reference,
    save_reference,
)
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


def two_kinds(count: int, seed: int) -> torch.Tensor:
    """[count, SIZE] embeddings of two kinds of picture on either side of the origin, none near it (varying along
    one direction: a small CLIP's embeddings of simple scenes use few of their dimensions)."""
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.zeros(count, SIZE)
    kind = torch.randint(0, 2, (count,), generator=generator) * 2 - 1
    embeddings[:, 0] = kind * 2.0 + 0.3 * torch.randn(count, generator=generator)
    return embeddings


def test_a_photo_between_the_kinds_of_training_image_is_unfamiliar_though_it_lies_at_their_mean():
    # The full demo build's blue globe: as close to the mean of all shapes as a shape, near none of them.
    reference = build_reference(two_kinds(600, seed=1), two_kinds(300, seed=2))
    between = torch.zeros(1, SIZE)

    assert [score.confident for score in reference.scores(two_kinds(200, seed=3))].count(True) >= 196
    assert not reference.scores(between)[0].confident
    # Scored by the distance to the mean alone (how format 1 references were calibrated), it passed for the
    # most typical picture of all.
    as_format_1 = FamiliarityReference(reference.embeddings, reference.threshold, {}, GAUSSIAN_REFERENCE_FORMAT)
    assert float(as_format_1.familiarity(between)[0]) == pytest.approx(1.0, abs=0.01)


def test_a_reference_of_the_first_format_keeps_the_score_its_threshold_was_calibrated_for(tmp_path):
    sample = two_kinds(300, seed=1)
    written = FamiliarityReference(sample.half().float(), 0.5, {"quantile": 0.005}, GAUSSIAN_REFERENCE_FORMAT)
    save_reference(written, tmp_path)

    loaded = load_reference(tmp_path)
    assert loaded.format == GAUSSIAN_REFERENCE_FORMAT
    # Scored as when it was calibrated: 1 at the sample's mean, where no picture lies (its nearest are far).
    assert float(loaded.familiarity(loaded.embeddings.mean(dim=0, keepdim=True))[0]) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(loaded.familiarity(sample[:5]), written.familiarity(sample[:5]))


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
