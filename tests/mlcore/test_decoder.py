import pytest
import torch
import torch.nn.functional as F

from mlcore import decoder as decoder_module
from mlcore.decoder import TOP_K_GROUP, IncrementalGPT2, top_k
from mlcore.model import load_gpt2


@pytest.mark.parametrize("activation", ["gelu_new", "relu"])
def test_incremental_decoding_matches_the_full_forward_pass(tiny_gpt2_dir, activation):
    torch.manual_seed(0)
    gpt = load_gpt2(tiny_gpt2_dir).double().eval()
    gpt.config.activation_function = activation
    for block in gpt.transformer.h:
        block.mlp.act = torch.nn.ReLU() if activation == "relu" else block.mlp.act
    decoder = IncrementalGPT2(gpt)
    images, beams, prefix_length = 3, 2, 4
    prefixes = torch.randn(images, prefix_length, gpt.config.n_embd, dtype=torch.float64)
    tokens = torch.randint(0, gpt.config.vocab_size, (images * beams, 5))

    with torch.inference_mode():
        features, state = decoder.prefill(prefixes, beams)
        torch.testing.assert_close(decoder.logits(features), gpt(inputs_embeds=prefixes).logits[:, -1])
        full = torch.cat((prefixes.repeat_interleave(beams, 0), gpt.transformer.wte(tokens)), dim=1)
        expected = gpt(inputs_embeds=full).logits
        for step in range(tokens.shape[1]):
            step_logits = decoder.logits(decoder.step(tokens[:, step], state))
            torch.testing.assert_close(step_logits, expected[:, prefix_length + step])


def test_reordering_rows_follows_the_chosen_beams(tiny_gpt2_dir):
    gpt = load_gpt2(tiny_gpt2_dir).double().eval()
    decoder = IncrementalGPT2(gpt)
    prefixes = torch.randn(2, 3, gpt.config.n_embd, dtype=torch.float64)
    first, second = torch.tensor([5, 6, 7, 8]), torch.tensor([9, 10, 11, 12])
    with torch.inference_mode():
        _, state = decoder.prefill(prefixes, beams=2)
        decoder.step(first, state)
        state.reorder_rows(torch.tensor([1, 1, 3, 2]))  # image 0 keeps beam 1 twice; image 1 swaps
        logits = decoder.logits(decoder.step(second, state))
        histories = torch.tensor([[6, 9], [6, 10], [8, 11], [7, 12]])
        full = torch.cat((prefixes.repeat_interleave(2, 0), gpt.transformer.wte(histories)), dim=1)
        torch.testing.assert_close(logits, gpt(inputs_embeds=full).logits[:, -1])


def test_reorderings_between_two_steps_compose(tiny_gpt2_dir):
    gpt = load_gpt2(tiny_gpt2_dir).double().eval()
    decoder = IncrementalGPT2(gpt)
    prefixes = torch.randn(3, 3, gpt.config.n_embd, dtype=torch.float64)
    with torch.inference_mode():
        _, state = decoder.prefill(prefixes, beams=2)
        decoder.step(torch.tensor([5, 6, 7, 8, 9, 10]), state)
        state.reorder_rows(torch.tensor([1, 0, 2, 2, 5, 4]))  # image 0 swaps its beams, image 1 keeps beam 0 twice
        state.keep_images(torch.tensor([0, 2]))  # image 1 finishes
        logits = decoder.logits(decoder.step(torch.tensor([11, 12, 13, 14]), state))
        histories = torch.tensor([[6, 11], [5, 12], [10, 13], [9, 14]])
        kept_prefixes = prefixes[[0, 0, 2, 2]]
        full = torch.cat((kept_prefixes, gpt.transformer.wte(histories)), dim=1)
        torch.testing.assert_close(logits, gpt(inputs_embeds=full).logits[:, -1])


@pytest.mark.parametrize("int8", [False, True])
@pytest.mark.parametrize("chunk", [64, 100, 8192])  # several chunks, a ragged last one, one chunk
def test_top_log_probabilities_equal_the_full_log_softmax(tiny_gpt2_dir, monkeypatch, int8, chunk):
    monkeypatch.setattr(decoder_module, "VOCAB_CHUNK", chunk)
    gpt = load_gpt2(tiny_gpt2_dir).eval()
    decoder = IncrementalGPT2(gpt, int8=int8)
    torch.manual_seed(0)
    features = torch.randn(6, gpt.config.n_embd)
    with torch.inference_mode():
        logits = decoder.logits(features)
        assert logits.shape == (6, gpt.config.vocab_size)
        for temperature in (1.0, 0.5):
            expected_values, expected_tokens = F.log_softmax(logits / temperature, dim=-1).topk(7, dim=-1)
            values, tokens = decoder.top_log_probabilities(features, 7, temperature)
            torch.testing.assert_close(values, expected_values)
            assert torch.equal(tokens, expected_tokens)


def int8_logits_error(gpt, seed: int) -> tuple[float, float]:
    """Largest int8-vs-float logit difference over a prefill and three steps, and the logits' spread."""
    torch.manual_seed(seed)
    prefixes = torch.randn(3, 4, gpt.config.n_embd)
    tokens = torch.randint(0, gpt.config.vocab_size, (6, 3))
    outputs = []
    with torch.inference_mode():
        for int8 in (False, True):
            decoder = IncrementalGPT2(gpt, int8=int8)
            features, state = decoder.prefill(prefixes, beams=2)
            steps = [decoder.step(tokens[:, step], state) for step in range(3)]
            outputs.append([decoder.logits(each) for each in [features, *steps]])
    error = max((a - b).abs().max().item() for a, b in zip(*outputs, strict=True))
    return error, outputs[0][0].std().item()


def test_int8_decoding_stays_close_to_float(tiny_gpt2_dir):
    gpt = load_gpt2(tiny_gpt2_dir).eval()
    error, spread = int8_logits_error(gpt, seed=0)
    assert 0 < error < 0.1 * spread  # quantized, so not equal; measured 5% of the logits' spread


def test_int8_weights_are_packed_again_after_the_model_changes(tiny_gpt2_dir):
    gpt = load_gpt2(tiny_gpt2_dir).eval()
    int8_logits_error(gpt, seed=1)  # packs the weights
    with torch.no_grad():
        gpt.lm_head.weight.mul_(-1.0)  # as an optimizer step would, in place
    error, spread = int8_logits_error(gpt, seed=1)
    assert error < 0.1 * spread  # stale packed weights would give the negated logits


def test_top_k_through_groups_of_columns_equals_topk():
    torch.manual_seed(0)
    logits = torch.randn(5, 64 * TOP_K_GROUP)
    logits[0, 3 * TOP_K_GROUP : 3 * TOP_K_GROUP + 7] += 10  # a row's best tokens all in one group
    logits[1, ::TOP_K_GROUP] += 10  # each in its own group
    for count in (1, 5, 7):
        values, tokens = top_k(logits, count)
        expected_values, expected_tokens = logits.topk(count, dim=-1)
        assert torch.equal(values, expected_values)
        assert torch.equal(tokens, expected_tokens)
