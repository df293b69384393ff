import math
from dataclasses import replace

import pytest
import torch

from mlcore.generate import DecodingOptions, generate, generate_candidates
from mlcore.model import ClipCaptionModel
from tests.conftest import make_captioner_config, make_random_model
from tests.mlcore.clipcap_reference import reference_beam_search


def random_model(tiny_clip_dir, tiny_gpt2_dir, seed: int, mapper_type: str = "mlp") -> ClipCaptionModel:
    config = make_captioner_config(tiny_clip_dir, tiny_gpt2_dir, mapper_type=mapper_type, train_gpt2=True)
    return make_random_model(config, tiny_gpt2_dir, seed, sharpness=4.0).double()


def most_common_token(captions) -> int:
    return int(torch.tensor([token for caption in captions for token in caption.token_ids]).bincount().argmax())


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_batched_beam_search_returns_the_reference_best_caption(tiny_clip_dir, tiny_gpt2_dir, seed):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed, mapper_type="mlp" if seed % 2 else "transformer")
    torch.manual_seed(100 + seed)
    options = DecodingOptions(beam_size=4, max_length=12)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(6, 24, dtype=torch.float64))
        # Stopping on a token the model often emits makes beams stop at different steps.
        stop_token_id = most_common_token(generate(model.gpt, prefixes, -1, options))
        ours = generate(model.gpt, prefixes, stop_token_id, options)
        assert any(len(caption.token_ids) < 12 for caption in ours)
        for index, caption in enumerate(ours):
            expected_tokens, expected_score = reference_beam_search(
                model, prefixes[index : index + 1], stop_token_id, beam_size=4, entry_length=12
            )
            assert caption.token_ids == expected_tokens
            assert caption.score == pytest.approx(expected_score, rel=1e-9)


def test_beam_candidates_are_every_final_beam_best_first_and_the_first_is_the_caption(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=6)
    options = DecodingOptions(beam_size=4, max_length=12)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(5, 24, dtype=torch.float64))
        stop_token_id = most_common_token(generate(model.gpt, prefixes, -1, options))
        captions = generate(model.gpt, prefixes, stop_token_id, options)
        candidates = generate_candidates(model.gpt, prefixes, stop_token_id, options)
        greedy = generate_candidates(model.gpt, prefixes, stop_token_id, replace(options, strategy="greedy"))
    for caption, image_candidates in zip(captions, candidates, strict=True):
        assert len(image_candidates) == 4
        assert image_candidates[0] == caption
        scores = [candidate.score for candidate in image_candidates]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(candidate.token_ids) for candidate in image_candidates}) == 4
    assert [len(image_candidates) for image_candidates in greedy] == [1] * 5


def test_beam_search_stops_at_the_stop_token_and_reports_it(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=7)
    options = DecodingOptions(beam_size=3, max_length=10)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(8, 24, dtype=torch.float64))
        unstopped = generate(model.gpt, prefixes, -1, options)
        assert all(len(caption.token_ids) == 10 for caption in unstopped)
        stop = most_common_token(unstopped)
        captions = generate(model.gpt, prefixes, stop, options)
    assert any(len(caption.token_ids) < 10 for caption in captions)
    for caption in captions:
        assert stop not in caption.token_ids[:-1]


def test_greedy_stops_right_after_the_stop_token(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=8)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(4, 24, dtype=torch.float64))
        options = DecodingOptions(strategy="greedy", max_length=10)
        unstopped = generate(model.gpt, prefixes, -1, options)
        stop = unstopped[0].token_ids[2]
        captions = generate(model.gpt, prefixes, stop, options)
    assert captions[0].token_ids == unstopped[0].token_ids[: unstopped[0].token_ids.index(stop) + 1]


def test_batch_results_equal_one_by_one_results(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=11)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(5, 24, dtype=torch.float64))
        for options in (
            DecodingOptions(beam_size=3, max_length=9),
            DecodingOptions(strategy="greedy", max_length=9),
        ):
            together = generate(model.gpt, prefixes, 3, options)
            alone = [generate(model.gpt, prefixes[i : i + 1], 3, options)[0] for i in range(5)]
            assert [c.token_ids for c in together] == [c.token_ids for c in alone]
            assert [c.score for c in together] == pytest.approx([c.score for c in alone], rel=1e-9)


def test_greedy_equals_beam_of_one(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=12)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(4, 24, dtype=torch.float64))
        greedy = generate(model.gpt, prefixes, 2, DecodingOptions(strategy="greedy", max_length=8))
        beam = generate(model.gpt, prefixes, 2, DecodingOptions(beam_size=1, max_length=8))
    assert [c.token_ids for c in greedy] == [c.token_ids for c in beam]


def first_token_frequencies(model, prefix, options: DecodingOptions, draws: int) -> torch.Tensor:
    # A seed gives every image the same draws (each has its own generator, seeded alike): independent draws
    # come from torch's global generator, seeded here instead.
    torch.manual_seed(options.seed)
    prefixes = prefix.expand(draws, -1, -1)
    captions = generate(model.gpt, prefixes, -1, replace(options, seed=None))
    counts = torch.zeros(model.gpt.config.vocab_size, dtype=torch.float64)
    for caption in captions:
        counts[caption.token_ids[0]] += 1
    return counts / draws


def total_variation(first: torch.Tensor, second: torch.Tensor) -> float:
    return float(0.5 * (first - second).abs().sum())


def test_sampling_temperature_changes_the_distribution(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=13).float()
    with torch.inference_mode():
        prefix = model.prefix_embeddings(torch.randn(1, 24))
        probabilities = model.gpt(inputs_embeds=prefix).logits[0, -1].softmax(-1).double()
        distributions = {t: (probabilities.log() / t).softmax(-1) for t in (0.5, 1.0, 2.0)}
        for temperature, expected in distributions.items():
            observed = first_token_frequencies(
                model,
                prefix,
                DecodingOptions(strategy="sample", temperature=temperature, max_length=1, seed=5),
                20000,
            )
            # Total variation distance: sampling noise at 20000 draws stays under 0.05, while the
            # distributions of the other temperatures are much further away.
            assert total_variation(observed, expected) < 0.05, temperature
            for other, other_expected in distributions.items():
                if other != temperature:
                    assert total_variation(observed, other_expected) > 0.1
        cold = first_token_frequencies(
            model, prefix, DecodingOptions(strategy="sample", temperature=0.3, max_length=1, seed=5), 2000
        )
        hot = first_token_frequencies(
            model, prefix, DecodingOptions(strategy="sample", temperature=3.0, max_length=1, seed=5), 2000
        )
    entropy = lambda p: float(-(p[p > 0] * p[p > 0].log()).sum())  # noqa: E731
    assert entropy(cold) < entropy(hot)


def test_top_p_and_top_k_only_sample_the_allowed_tokens(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=14).float()
    with torch.inference_mode():
        prefix = model.prefix_embeddings(torch.randn(1, 24))
        probabilities = model.gpt(inputs_embeds=prefix).logits[0, -1].softmax(-1).double()
        ordered, order = probabilities.sort(descending=True)
        nucleus_size = int((ordered.cumsum(0) < 0.6).sum()) + 1
        nucleus = set(order[:nucleus_size].tolist())
        observed = first_token_frequencies(
            model, prefix, DecodingOptions(strategy="sample", top_p=0.6, max_length=1, seed=3), 20000
        )
        assert set(observed.nonzero().squeeze(-1).tolist()) <= nucleus
        # Within the nucleus, tokens keep their relative probabilities.
        expected = torch.zeros_like(probabilities)
        expected[list(nucleus)] = probabilities[list(nucleus)] / probabilities[list(nucleus)].sum()
        assert total_variation(observed, expected) < 0.05

        observed_k = first_token_frequencies(
            model, prefix, DecodingOptions(strategy="sample", top_k=3, max_length=1, seed=4), 1500
        )
        assert set(observed_k.nonzero().squeeze(-1).tolist()) == set(order[:3].tolist())


def test_sampling_with_a_seed_is_reproducible(tiny_clip_dir, tiny_gpt2_dir):
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=15)
    with torch.inference_mode():
        prefixes = model.prefix_embeddings(torch.randn(3, 24, dtype=torch.float64))
        options = DecodingOptions(strategy="sample", max_length=8, seed=42, top_k=20)
        first = generate(model.gpt, prefixes, 1, options)
        second = generate(model.gpt, prefixes, 1, options)
    assert [c.token_ids for c in first] == [c.token_ids for c in second]
    assert all(math.isfinite(c.score) and c.score <= 0 for c in first)


def test_unseeded_int8_sampling_draws_from_the_global_generator_as_one_call_does(tiny_clip_dir, tiny_gpt2_dir):
    # int8 splits a batch across the cores; unseeded draws from torch's global generator must not be split.
    model = random_model(tiny_clip_dir, tiny_gpt2_dir, seed=16).float()
    options = DecodingOptions(strategy="sample", max_length=6)
    previous = torch.get_num_threads()
    drawn = {}
    try:
        with torch.inference_mode():
            prefixes = model.prefix_embeddings(torch.randn(6, 24))
            for threads in (1, 2):
                torch.set_num_threads(threads)
                torch.manual_seed(3)
                drawn[threads] = [c.token_ids for c in generate(model.gpt, prefixes, -1, options, int8=True)]
    finally:
        torch.set_num_threads(previous)
    assert drawn[1] == drawn[2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "nucleus"}, "unknown decoding strategy"),
        ({"beam_size": 0}, "beam_size"),
        ({"temperature": 0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_k": 0}, "top_k"),
        ({"max_length": 0}, "max_length"),
    ],
)
def test_invalid_decoding_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        DecodingOptions(**options)
