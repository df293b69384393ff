"""ClipCap's reference beam search (`generate_beam` in its predict code), kept as the oracle our
batched generation is checked against, in the tests and in benchmarks/generation.py."""

import torch


def reference_beam_search(
    model: torch.nn.Module, prefix: torch.Tensor, stop_token_id: int, beam_size: int, entry_length: int
) -> tuple[list[int], float]:
    """ClipCap's `generate_beam`, kept as the oracle: one image, the whole sequence recomputed every step,
    summed log-probabilities divided by length, stopped beams extended by token 0 at zero cost."""
    tokens = None
    scores = None
    seq_lengths = torch.ones(beam_size, dtype=prefix.dtype, device=prefix.device)
    is_stopped = torch.zeros(beam_size, dtype=torch.bool, device=prefix.device)
    generated = prefix
    for _ in range(entry_length):
        logits = model.gpt(inputs_embeds=generated).logits[:, -1, :]
        logits = logits.softmax(-1).log()
        if scores is None:
            scores, next_tokens = logits.topk(beam_size, -1)
            generated = generated.expand(beam_size, *generated.shape[1:])
            next_tokens, scores = next_tokens.permute(1, 0), scores.squeeze(0)
            tokens = next_tokens
        else:
            logits[is_stopped] = -float("inf")
            logits[is_stopped, 0] = 0
            scores_sum = scores[:, None] + logits
            seq_lengths[~is_stopped] += 1
            scores_sum_average = scores_sum / seq_lengths[:, None]
            scores_sum_average, next_tokens = scores_sum_average.view(-1).topk(beam_size, -1)
            next_tokens_source = next_tokens // scores_sum.shape[1]
            seq_lengths = seq_lengths[next_tokens_source]
            next_tokens = (next_tokens % scores_sum.shape[1]).unsqueeze(1)
            tokens = torch.cat((tokens[next_tokens_source], next_tokens), dim=1)
            generated = generated[next_tokens_source]
            scores = scores_sum_average * seq_lengths
            is_stopped = is_stopped[next_tokens_source]
        next_token_embed = model.gpt.transformer.wte(next_tokens.squeeze(1)).view(generated.shape[0], 1, -1)
        generated = torch.cat((generated, next_token_embed), dim=1)
        is_stopped = is_stopped + next_tokens.eq(stop_token_id).squeeze(1)
        if is_stopped.all():
            break
    scores = scores / seq_lengths
    best = int(scores.argmax())
    return tokens[best, : int(seq_lengths[best])].tolist(), float(scores[best])
