"""The caption metrics on small corpora with known values, CLIPScore on hand-made vectors, and
`evaluate_captioner` on a tiny random checkpoint.

Every `score_captions` call starts the PTB tokenizer (Java, ~1 s); METEOR's Java process starts once per
test session. Tests pass `spice=False` unless they are about SPICE, so machines with CoreNLP installed
do not run SPICE (8 GB, minutes) everywhere.
"""

import math
import shutil
from pathlib import Path

import pytest
import torch

from mlcore import evaluate
from mlcore.captioner import Captioner
from mlcore.data import EmbeddingSet
from mlcore.encoder import load_image
from mlcore.errors import EmbeddingSizeError
from mlcore.evaluate import (
    CORENLP_JARS,
    CORENLP_URL,
    MetricInputError,
    MetricUnavailableError,
    ReferenceImage,
    caption_metrics,
    evaluate_captioner,
    score_captions,
    spice_status,
)
from mlcore.generate import DecodingOptions

PHOTOS = Path(__file__).parent.parent / "fixtures" / "photos"
ROUGE_BETA = 1.2  # pycocoevalcap's ROUGE-L weights recall by beta^2

SURFER = "a man riding a wave on top of a surfboard"
GIRAFFES = "two giraffes stand near tall green trees"
PASTA = "a plate of pasta with broccoli and cheese"


@pytest.fixture
def without_corenlp(tmp_path, monkeypatch) -> Path:
    """A SPICE folder with its jar but without Stanford CoreNLP, as pycocoevalcap installs it."""
    spice_dir = tmp_path / "spice"
    (spice_dir / "lib").mkdir(parents=True)
    (spice_dir / "spice-1.0.jar").write_bytes(b"")
    monkeypatch.setattr(evaluate, "SPICE_DIR", spice_dir)
    return spice_dir


def rouge_l(precision: float, recall: float) -> float:
    return (1 + ROUGE_BETA**2) * precision * recall / (recall + ROUGE_BETA**2 * precision)


def test_predictions_identical_to_their_references_up_to_case_and_punctuation_score_full_marks():
    predictions = {
        1: "A man, riding a wave on top of a surfboard.",
        2: "Two giraffes stand near tall green trees!",
        3: PASTA,
    }
    references = {1: [SURFER], 2: [GIRAFFES + "."], 3: [PASTA]}

    metrics = caption_metrics(predictions, references, spice=False)

    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "METEOR"):
        assert metrics[name] == pytest.approx(1.0, abs=1e-6), name
    # CIDEr-D is 10 x the mean cosine similarity of tf-idf n-gram vectors: 10 when they are identical.
    assert metrics["CIDEr"] == pytest.approx(10.0, abs=1e-6)
    assert "SPICE" not in metrics


def test_predictions_sharing_no_word_with_their_references_score_zero():
    predictions = {1: "purple elephants dance gracefully", 2: "seven yellow umbrellas"}
    references = {1: [SURFER], 2: [GIRAFFES]}

    metrics = caption_metrics(predictions, references, spice=False)

    for name in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr"):
        assert metrics[name] == pytest.approx(0.0, abs=1e-6), name


def test_bleu_and_rouge_match_hand_computed_values_per_image_and_for_the_corpus():
    predictions = {1: "the cat sat on the mat", 2: "the cat"}
    references = {1: ["the cat is on the mat"], 2: ["the cat is on the mat"]}

    scores = score_captions(predictions, references, spice=False)

    # Image 1: unigrams 5/6 match, bigrams 3/5, trigrams 1/4, 4-grams 0/3; same length, no brevity penalty.
    first = scores.per_image[1]
    assert first["BLEU-1"] == pytest.approx(5 / 6, abs=1e-6)
    assert first["BLEU-2"] == pytest.approx(math.sqrt(5 / 6 * 3 / 5), abs=1e-6)
    assert first["BLEU-3"] == pytest.approx((5 / 6 * 3 / 5 * 1 / 4) ** (1 / 3), abs=1e-6)
    assert first["BLEU-4"] < 1e-3
    assert first["ROUGE-L"] == pytest.approx(rouge_l(5 / 6, 5 / 6), abs=1e-6)  # LCS "the cat on the mat"
    # Image 2: every n-gram matches, but 2 words against 6 give a brevity penalty of exp(1 - 6/2).
    second = scores.per_image[2]
    assert second["BLEU-1"] == pytest.approx(math.exp(-2), abs=1e-6)
    assert second["BLEU-2"] == pytest.approx(math.exp(-2), abs=1e-6)
    assert second["ROUGE-L"] == pytest.approx(rouge_l(1.0, 2 / 6), abs=1e-6)
    # The corpus pools the counts: unigrams 7/8, bigrams 4/6, length 8 against 12.
    corpus_penalty = math.exp(1 - 12 / 8)
    assert scores.corpus["BLEU-1"] == pytest.approx(7 / 8 * corpus_penalty, abs=1e-6)
    assert scores.corpus["BLEU-2"] == pytest.approx(math.sqrt(7 / 8 * 4 / 6) * corpus_penalty, abs=1e-6)
    assert scores.corpus["ROUGE-L"] == pytest.approx((first["ROUGE-L"] + second["ROUGE-L"]) / 2, abs=1e-9)


def test_line_breaks_and_empty_captions_keep_every_caption_with_its_own_image():
    predictions = {1: "a man riding\u2028a wave on top\nof a surfboard", 2: "", 3: PASTA}
    references = {1: [SURFER], 2: [GIRAFFES], 3: [PASTA]}

    scores = score_captions(predictions, references, spice=False)

    assert scores.per_image[1]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert scores.per_image[2]["BLEU-1"] == pytest.approx(0.0, abs=1e-6)
    assert scores.per_image[2]["METEOR"] == 0.0
    assert scores.per_image[3]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ({1: "a", 3: "b"}, {1: ["a"], 2: ["b"]}, "no prediction for images 2; no references for images 3"),
        ({1: "a"}, {1: []}, "image 1 has an empty list of reference captions"),
        ({1: "a"}, {1: ["a dog", "  "]}, "reference 1 of image 1 is empty"),
        ({1: "a"}, {1: "a dog"}, "must be a list of captions"),
        ({}, {}, "nothing to score"),
    ],
)
def test_unusable_metric_inputs_are_rejected_with_the_problem_named(predictions, references, message):
    with pytest.raises(MetricInputError, match=message):
        caption_metrics(predictions, references, spice=False)


def test_spice_status_names_the_missing_corenlp_jars_and_where_to_put_them(without_corenlp):
    status = spice_status()

    assert not status.available
    for jar in CORENLP_JARS:
        assert jar in status.reason
    assert str(without_corenlp / "lib") in status.reason
    assert CORENLP_URL in status.reason


def test_spice_is_reported_as_skipped_with_the_reason_when_corenlp_is_missing(without_corenlp):
    scores = score_captions({1: PASTA}, {1: [PASTA]})

    assert "SPICE" not in scores.corpus
    assert "SPICE" not in scores.per_image[1]
    assert scores.skipped["SPICE"] == spice_status().reason
    assert scores.corpus["BLEU-4"] == pytest.approx(1.0, abs=1e-6)


def test_requiring_spice_without_corenlp_raises_with_instructions(without_corenlp):
    with pytest.raises(MetricUnavailableError, match="stanford-corenlp-3.6.0-models.jar"):
        caption_metrics({1: PASTA}, {1: [PASTA]}, spice=True)


@pytest.mark.skipif(not spice_status().available, reason="Stanford CoreNLP jars for SPICE are not installed")
def test_spice_scores_a_caption_identical_to_its_reference_as_one():
    metrics = caption_metrics({1: SURFER, 2: "purple elephants"}, {1: [SURFER], 2: [GIRAFFES]}, spice=True)

    assert metrics["SPICE"] == pytest.approx(0.5, abs=1e-6)


def reference_set(clip_model: str, embedding_size: int = 24, images: int = 3) -> EmbeddingSet:
    generator = torch.Generator().manual_seed(0)
    return EmbeddingSet.from_images(
        torch.randn(images, embedding_size, generator=generator),
        image_ids=[100 + index for index in range(images)],
        file_names=[f"{100 + index}.jpg" for index in range(images)],
        captions_per_image=[[SURFER, GIRAFFES] for _ in range(images)],
        clip_model=clip_model,
    )


def test_evaluating_on_image_files_skips_unreadable_ones_and_scores_the_rest(save_random_checkpoint, tmp_path):
    captioner = Captioner.load(save_random_checkpoint(), device="cpu")
    photos = sorted(PHOTOS.glob("COCO_*.jpg"))[:3]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    images = [ReferenceImage(index, path, [SURFER, PASTA]) for index, path in enumerate([*photos, broken])]

    report = evaluate_captioner(captioner, images, DecodingOptions(beam_size=2), batch_size=2, spice=False)

    assert [item.image_id for item in report.predictions] == [0, 1, 2]
    assert [item.file_name for item in report.predictions] == [path.name for path in photos]
    assert len(report.skipped_images) == 1
    assert report.skipped_images[0]["file"] == str(broken)
    assert "cannot decode" in report.skipped_images[0]["reason"]
    assert 0.0 <= report.metrics["CLIPScore"] <= 2.5
    assert report.settings["dataset"]["kind"] == "images"
    assert report.settings["dataset"]["references"] == 6
    assert report.timings["embed_images_seconds"] > 0
    # The captions are the captioner's own for the same images.
    expected = captioner.caption([load_image(path) for path in photos], beam_size=2)
    assert [item.caption for item in report.predictions] == [result.text for result in expected]


def test_a_model_that_reranks_by_clip_is_evaluated_on_its_reranked_captions(save_random_checkpoint):
    directory = save_random_checkpoint(mapper_type="transformer", train_gpt2=True, clip_rerank=True)
    captioner = Captioner.load(directory, device="cpu")
    dataset = reference_set(captioner.config.clip_model, images=7)

    report = evaluate_captioner(captioner, dataset, DecodingOptions(beam_size=4, max_length=8), spice=False)

    assert report.settings["decoding"]["clip_rerank"] is True
    reranked = captioner.caption_embeddings(dataset.embeddings, beam_size=4, max_length=8, clip_rerank=True)
    likeliest = captioner.caption_embeddings(dataset.embeddings, beam_size=4, max_length=8, clip_rerank=False)
    assert [item.caption for item in report.predictions] == [result.text for result in reranked]
    assert [result.text for result in reranked] != [result.text for result in likeliest]


def test_embeddings_from_another_clip_are_flagged_in_the_report(save_random_checkpoint):
    captioner = Captioner.load(save_random_checkpoint(), device="cpu")

    report = evaluate_captioner(captioner, reference_set("ViT-B/32"), DecodingOptions(beam_size=1), spice=False)

    assert len(report.warnings) == 1
    assert "'ViT-B/32'" in report.warnings[0]
    assert len(report.predictions) == 3


def test_embeddings_of_the_wrong_width_fail_before_captioning(save_random_checkpoint):
    captioner = Captioner.load(save_random_checkpoint(), device="cpu")

    with pytest.raises(EmbeddingSizeError, match="16-d CLIP embeddings"):
        evaluate_captioner(captioner, reference_set(captioner.config.clip_model, embedding_size=16))


def test_an_image_without_references_fails_before_captioning(save_random_checkpoint, tmp_path):
    captioner = Captioner.load(save_random_checkpoint(), device="cpu")
    photo = shutil.copy(sorted(PHOTOS.glob("*.jpg"))[0], tmp_path / "photo.jpg")

    with pytest.raises(MetricInputError, match="image 7 has an empty list"):
        evaluate_captioner(captioner, [ReferenceImage(7, Path(photo), [])])


def test_a_failing_spice_run_is_reported_as_skipped_with_javas_error_unless_required(tmp_path, monkeypatch):
    spice_dir = tmp_path / "spice"
    (spice_dir / "lib").mkdir(parents=True)
    (spice_dir / "spice-1.0.jar").symlink_to(evaluate.SPICE_DIR / "spice-1.0.jar")
    for jar in CORENLP_JARS:  # present but empty: SPICE starts and cannot find CoreNLP's classes
        (spice_dir / "lib" / jar).write_bytes(b"")
    monkeypatch.setattr(evaluate, "SPICE_DIR", spice_dir)

    scores = score_captions({1: PASTA}, {1: [PASTA]})

    assert "SPICE" not in scores.corpus
    assert scores.skipped["SPICE"].startswith("SPICE skipped: the SPICE jar exited with status 1")
    assert "NoClassDefFoundError" in scores.skipped["SPICE"]
    with pytest.raises(MetricUnavailableError, match="SPICE jar exited"):
        score_captions({1: PASTA}, {1: [PASTA]}, spice=True)
