"""Caption generation from GPT-2 prefixes: beam search, greedy decoding and sampling.

Every strategy runs over a whole batch of images at once and feeds GPT-2 one new token per step,
reusing its keys and values (mlcore.decoder). All sequences in a batch share one length (the prefix has a fixed length
and every live beam grows by one token per step), so no padding or attention mask is needed.

Beam search follows ClipCap's `generate_beam` exactly, so both pick the same best caption:
- candidates are ranked by summed log-probability divided by length (`length_normalization` is the
  exponent on the length; 1.0 is ClipCap's rule);
- a beam that has emitted the stop token stays in the beam and is "extended" at zero cost without
  growing, so it competes with its final score;
- an image is finished when all its beams have stopped, or after `max_length` tokens.
`beam_candidates` keeps every final beam, best first, for a caller that re-ranks them (mlcore.captioner).
"""

from dataclasses import asdict, dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel

from mlcore.decoder import IncrementalGPT2, at_least_fp32
from mlcore.devices import across_cores

Strategy = Literal["beam", "greedy", "sample"]
# New tokens per caption when neither the caller nor the model says otherwise (a Captioner uses its
# model's `CaptionerConfig.max_length`: ClipCap's imports keep ClipCap's 67).
DEFAULT_MAX_LENGTH = 40


@dataclass(frozen=True)
class DecodingOptions:
    strategy: Strategy = "beam"
    beam_size: int = 5
    length_normalization: float = 1.0
    max_length: int | None = None  # None: the model's own (CaptionerConfig.max_length), else DEFAULT_MAX_LENGTH
    temperature: float = 1.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    # Pick among beam search's final beams the one the model's own CLIP finds closest to the image (mlcore.captioner).
    # None: the model's own choice (CaptionerConfig.clip_rerank).
    clip_rerank: bool | None = None

    def __post_init__(self) -> None:
        if self.strategy not in ("beam", "greedy", "sample"):
            raise ValueError(f"unknown decoding strategy {self.strategy!r}; use beam, greedy or sample")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be at least 1, got {self.beam_size}")
        if self.max_length is not None and self.max_length < 1:
            raise ValueError(f"max_length must be at least 1, got {self.max_length}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {self.top_k}")

    def to_dict(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_dict(cls, values: dict) -> "DecodingOptions":
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown decoding options: {', '.join(sorted(unknown))}")
        return cls(**values)


@dataclass(frozen=True)
class GeneratedTokens:
    """One caption's token ids (the stop token included when it was reached) and its score.

    The score is the summed log-probability divided by length**length_normalization for beam search,
    and the mean log-probability per token under the model for greedy decoding and sampling.
    """

    token_ids: list[int]
    score: float


def generate(
    gpt: GPT2LMHeadModel, prefixes: torch.Tensor, stop_token_id: int, options: DecodingOptions, int8: bool = False
) -> list[GeneratedTokens]:
    """Continues each prefix ([N, prefix_length, width]) into one caption. `int8`: GPT-2's linear layers
    as int8 matmuls, for CPUs (see mlcore.decoder)."""
    return [candidates[0] for candidates in generate_candidates(gpt, prefixes, stop_token_id, options, int8)]


def generate_candidates(
    gpt: GPT2LMHeadModel, prefixes: torch.Tensor, stop_token_id: int, options: DecodingOptions, int8: bool = False
) -> list[list[GeneratedTokens]]:
    """Each prefix's candidate captions, best first: beam search's final beams, or greedy decoding's or
    sampling's one caption."""
    if prefixes.shape[0] == 0:
        return []
    if options.max_length is None:
        options = replace(options, max_length=DEFAULT_MAX_LENGTH)
    decoder = IncrementalGPT2(gpt, int8=int8)

    def candidates(part: torch.Tensor) -> list[list[GeneratedTokens]]:
        if options.strategy == "beam":
            return beam_candidates(decoder, part, stop_token_id, options)
        return [[generated] for generated in sample_or_greedy(decoder, part, stop_token_id, options)]

    if not int8 or (options.strategy == "sample" and options.seed is None):
        return candidates(prefixes)  # unseeded draws from torch's global generator would race between threads
    # int8 runs on a CPU, and a row's result never depends on its batch-mates: each core takes its share of images.
    return [each for part in across_cores(candidates, prefixes) for each in part]


def beam_candidates(
    decoder: IncrementalGPT2, prefixes: torch.Tensor, stop_token_id: int, options: DecodingOptions
) -> list[list[GeneratedTokens]]:
    """Every final beam of each image, best first (ties keep the beam order)."""
    alpha = options.length_normalization
    beams = min(options.beam_size, decoder.gpt.config.vocab_size)
    features, state = decoder.prefill(prefixes, beams)
    sums, first_tokens = decoder.top_log_probabilities(features, beams, options.temperature)  # [images, beams]
    tokens = first_tokens.unsqueeze(-1)  # [images, beams, length]
    lengths = torch.ones_like(sums)
    stopped = first_tokens == stop_token_id

    # Rows of the running batch map to these images; finished images leave the batch.
    running_images = torch.arange(prefixes.shape[0], device=prefixes.device)
    results: dict[int, list[GeneratedTokens]] = {}

    for _ in range(1, options.max_length):
        finished = stopped.all(dim=-1)
        if finished.any():
            _record_beams(results, running_images[finished], tokens[finished], sums[finished], lengths[finished], alpha)
            keep = ~finished
            if not keep.any():
                break
            running_images, tokens, sums, lengths, stopped = (
                running_images[keep],
                tokens[keep],
                sums[keep],
                lengths[keep],
                stopped[keep],
            )
            state.keep_images(keep.nonzero().squeeze(-1))

        images = tokens.shape[0]
        features = decoder.step(tokens[:, :, -1].reshape(-1), state)
        # Only the best `beams` tokens of each beam can make the joint top `beams`: rank those alone.
        top_log_probs, top_tokens = decoder.top_log_probabilities(features, beams, options.temperature)
        top_log_probs, top_tokens = top_log_probs.view(images, beams, beams), top_tokens.view(images, beams, beams)
        # A stopped beam offers exactly one candidate: token 0 at no cost, length unchanged.
        top_log_probs = torch.where(stopped.unsqueeze(-1), _stopped_row(top_log_probs), top_log_probs)
        top_tokens = torch.where(stopped.unsqueeze(-1), torch.zeros_like(top_tokens), top_tokens)
        new_lengths = lengths + (~stopped).to(lengths.dtype)
        candidate_scores = (sums.unsqueeze(-1) + top_log_probs) / new_lengths.unsqueeze(-1) ** alpha
        best_scores, best_flat = candidate_scores.view(images, -1).topk(beams, dim=-1)
        source_beams = best_flat // beams
        next_tokens = top_tokens.view(images, -1).gather(1, best_flat)

        lengths = new_lengths.gather(1, source_beams)
        sums = best_scores * lengths**alpha
        tokens = torch.cat(
            (tokens.gather(1, source_beams.unsqueeze(-1).expand_as(tokens)), next_tokens.unsqueeze(-1)), -1
        )
        stopped = stopped.gather(1, source_beams) | (next_tokens == stop_token_id)
        row_offsets = torch.arange(images, device=tokens.device).unsqueeze(-1) * beams
        state.reorder_rows((row_offsets + source_beams).reshape(-1))

    else:
        _record_beams(results, running_images, tokens, sums, lengths, alpha)
    return [results[index] for index in range(prefixes.shape[0])]


def _stopped_row(top_log_probs: torch.Tensor) -> torch.Tensor:
    row = torch.full_like(top_log_probs, float("-inf"))
    row[..., 0] = 0.0
    return row


def _record_beams(
    results: dict[int, list[GeneratedTokens]],
    image_indices: torch.Tensor,
    tokens: torch.Tensor,
    sums: torch.Tensor,
    lengths: torch.Tensor,
    alpha: float,
) -> None:
    final_scores = sums / lengths**alpha  # [images, beams]
    order = final_scores.argsort(dim=-1, descending=True, stable=True)
    for row, image in enumerate(image_indices.tolist()):
        results[image] = [
            GeneratedTokens(tokens[row, beam, : int(lengths[row, beam])].tolist(), float(final_scores[row, beam]))
            for beam in order[row].tolist()
        ]


def sample_or_greedy(
    decoder: IncrementalGPT2, prefixes: torch.Tensor, stop_token_id: int, options: DecodingOptions
) -> list[GeneratedTokens]:
    count = prefixes.shape[0]
    generators = None
    if options.strategy == "sample" and options.seed is not None:
        # One generator per image, each seeded alike: an image's caption depends on the seed alone, never
        # on which images share its batch or where it sits in it ("caption again with seed 1" reproduces it).
        generators = [torch.Generator(device=prefixes.device).manual_seed(options.seed) for _ in range(count)]
    features, state = decoder.prefill(prefixes, beams=1)
    sequences: list[list[int]] = [[] for _ in range(count)]
    log_prob_sums = [0.0] * count
    running = torch.arange(count, device=prefixes.device)

    for step in range(options.max_length):
        if options.strategy == "greedy":
            chosen_log_probs, next_tokens = (
                column.squeeze(-1) for column in decoder.top_log_probabilities(features, 1)
            )
        else:
            logits = at_least_fp32(decoder.logits(features))
            row_generators = None if generators is None else [generators[image] for image in running.tolist()]
            next_tokens = _sample(logits, options, row_generators)
            chosen_log_probs = F.log_softmax(logits, dim=-1).gather(1, next_tokens.unsqueeze(-1)).squeeze(-1)
        for image, token, log_prob in zip(
            running.tolist(), next_tokens.tolist(), chosen_log_probs.tolist(), strict=True
        ):
            sequences[image].append(token)
            log_prob_sums[image] += log_prob
        keep = next_tokens != stop_token_id
        if step + 1 == options.max_length or not keep.any():
            break
        if not keep.all():
            running, next_tokens = running[keep], next_tokens[keep]
            state.keep_images(keep.nonzero().squeeze(-1))
        features = decoder.step(next_tokens, state)
    return [
        GeneratedTokens(tokens, total / len(tokens)) for tokens, total in zip(sequences, log_prob_sums, strict=True)
    ]


def _sample(logits: torch.Tensor, options: DecodingOptions, generators: list[torch.Generator] | None) -> torch.Tensor:
    """One token per row; row i draws from `generators[i]`, or all rows from torch's global one."""
    scores = logits.float() / options.temperature
    if options.top_k is not None and options.top_k < scores.shape[-1]:
        kth_best = scores.topk(options.top_k, dim=-1).values[:, -1:]
        scores = scores.masked_fill(scores < kth_best, float("-inf"))
    if options.top_p is not None and options.top_p < 1.0:
        sorted_scores, order = scores.sort(dim=-1, descending=True)
        cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        # Keep the smallest set whose mass reaches top_p: a token is dropped if the mass before it already does.
        drop_sorted = (cumulative - sorted_scores.softmax(dim=-1)) >= options.top_p
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, float("-inf"))
    probabilities = scores.softmax(dim=-1)
    if generators is None:
        return torch.multinomial(probabilities, 1).squeeze(-1)
    return torch.cat(
        [
            torch.multinomial(row, 1, generator=generator)
            for row, generator in zip(probabilities, generators, strict=True)
        ]
    )
