"""GPT-2's forward pass for generation, one token per step, on the weights of a transformers model.

Three things make it cheaper than calling the transformers model with its generic cache:
- the prefix's keys and values are computed once per image and shared by all of its beams, so only
  the generated tokens' keys and values are kept per beam (and reordered when beams swap, in the
  same copy that appends the new token's);
- the fused tanh-GELU kernel replaces GPT-2's `gelu_new`, which is the same function written as
  six separate elementwise passes;
- beam search and greedy decoding need only each row's best tokens and its softmax normaliser, which
  `top_log_probabilities` takes from the output layer one vocabulary chunk at a time.
On x86 CPUs, `int8=True` runs every linear layer (the output layer included) as an int8 matmul
(mlcore.int8), several times faster than fp32 there.
Training and anything that needs gradients keep using the transformers model itself.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel
from transformers.activations import ACT2FN

from mlcore.int8 import Int8Linears

TANH_GELUS = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}
# Output-layer columns per matmul when only the best tokens are needed: 8192 x 320 rows of fp32 logits
# fit in a CPU's cache, where the whole [rows, 50257] would go through memory twice more.
VOCAB_CHUNK = 8192
# A chunk's best tokens lie in its `count` groups of this many columns with the highest maxima: ranking the
# groups' maxima and then those groups' columns costs half of one topk over the chunk (exact, same values).
TOP_K_GROUP = 128


@dataclass
class DecoderState:
    """Keys and values of one running batch: rows are `images * beams`, beams of an image adjacent.

    Reordering rows (beams swapping, images leaving) is recorded, not applied: the next step gathers the
    old rows straight into the cache it grows by one token, so each step copies the cache once."""

    prefix_keys: list[torch.Tensor]  # per layer [images, heads, prefix_length, head_dim]
    prefix_values: list[torch.Tensor]
    generated_keys: list[torch.Tensor]  # per layer [rows before reordering, heads, generated, head_dim]
    generated_values: list[torch.Tensor]
    beams: int
    row_order: torch.Tensor | None = None  # row i of the batch is row row_order[i] of the generated cache

    @property
    def images(self) -> int:
        return self.prefix_keys[0].shape[0]

    @property
    def length(self) -> int:
        return self.prefix_keys[0].shape[2] + self.generated_keys[0].shape[2]

    def keep_images(self, images: torch.Tensor) -> None:
        """Drops finished images (and their beams) from the batch."""
        rows = (images.unsqueeze(-1) * self.beams + torch.arange(self.beams, device=images.device)).reshape(-1)
        for cache in (self.prefix_keys, self.prefix_values):
            cache[:] = [tensor.index_select(0, images) for tensor in cache]
        self.reorder_rows(rows)

    def reorder_rows(self, rows: torch.Tensor) -> None:
        """Row i takes over the generated keys and values of row `rows[i]` (beam search reordering)."""
        self.row_order = rows if self.row_order is None else self.row_order[rows]

    def append(self, layer: int, key: torch.Tensor, value: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Adds one token's key and value ([rows, heads, 1, head_dim]) to a layer's cache, in the current
        row order; returns that layer's generated keys and values."""
        self.generated_keys[layer] = _reordered_with(self.generated_keys[layer], self.row_order, key)
        self.generated_values[layer] = _reordered_with(self.generated_values[layer], self.row_order, value)
        return self.generated_keys[layer], self.generated_values[layer]


def at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    """Half-precision logits (autocast on a GPU) in fp32 before softmax; fp32 and fp64 as they are."""
    return logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits


def _reordered_with(cache: torch.Tensor, rows: torch.Tensor | None, new: torch.Tensor) -> torch.Tensor:
    if rows is None:
        return torch.cat((cache, new), dim=2)
    grown = new.new_empty(rows.shape[0], cache.shape[1], cache.shape[2] + 1, cache.shape[3])
    torch.index_select(cache, 0, rows, out=grown[:, :, :-1])
    grown[:, :, -1:] = new
    return grown


def top_k(logits: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`logits.topk(count, dim=-1)` of [rows, columns], best first, through the best groups of columns."""
    rows, columns = logits.shape
    if columns % TOP_K_GROUP or count * TOP_K_GROUP >= columns:
        return logits.topk(count, dim=-1)
    groups = logits.view(rows, columns // TOP_K_GROUP, TOP_K_GROUP)
    best_groups = groups.amax(dim=-1).topk(count, dim=-1).indices  # [rows, count]
    candidates = groups.gather(1, best_groups.unsqueeze(-1).expand(-1, -1, TOP_K_GROUP)).view(rows, -1)
    values, picks = candidates.topk(count, dim=-1)
    return values, best_groups.gather(1, picks // TOP_K_GROUP) * TOP_K_GROUP + picks % TOP_K_GROUP


class IncrementalGPT2:
    """Runs a GPT2LMHeadModel's weights for decoding. Results equal the transformers forward pass
    up to floating-point rounding (and int8 quantization when asked for)."""

    def __init__(self, gpt: GPT2LMHeadModel, int8: bool = False):
        config = gpt.config
        if config.reorder_and_upcast_attn or config.add_cross_attention:
            raise ValueError("incremental decoding supports standard GPT-2 attention only")
        self.gpt = gpt
        self.heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.epsilon = config.layer_norm_epsilon
        scale = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
        self.scales = [
            scale / (index + 1) if config.scale_attn_by_inverse_layer_idx else scale for index in range(config.n_layer)
        ]
        if config.activation_function in TANH_GELUS:
            self.activation = lambda x: F.gelu(x, approximate="tanh")
        else:
            self.activation = ACT2FN[config.activation_function]
        self.int8 = Int8Linears.of(gpt, VOCAB_CHUNK) if int8 else None

    def _linear(self, module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        if self.int8 is not None:
            return self.int8.linear(module, inputs)
        if isinstance(module, torch.nn.Linear):
            return module(inputs)
        return F.linear(inputs, module.weight.t(), module.bias)  # transformers' Conv1D keeps [in, out]

    def embed_tokens(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.gpt.transformer.wte(token_ids)

    def _project_qkv(self, block, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        normed = F.layer_norm(hidden, hidden.shape[-1:], block.ln_1.weight, block.ln_1.bias, self.epsilon)
        qkv = self._linear(block.attn.c_attn, normed)
        shape = (*hidden.shape[:-1], self.heads, self.head_dim)
        query, key, value = (part.reshape(shape).transpose(-3, -2) for part in qkv.split(hidden.shape[-1], dim=-1))
        return query, key, value

    def _finish_block(self, block, hidden: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        attended = attended.transpose(-3, -2).reshape(hidden.shape)
        hidden = hidden + self._linear(block.attn.c_proj, attended)
        normed = F.layer_norm(hidden, hidden.shape[-1:], block.ln_2.weight, block.ln_2.bias, self.epsilon)
        inner = self.activation(self._linear(block.mlp.c_fc, normed))
        return hidden + self._linear(block.mlp.c_proj, inner)

    def _final_norm(self, hidden: torch.Tensor) -> torch.Tensor:
        final = self.gpt.transformer.ln_f
        return F.layer_norm(hidden, hidden.shape[-1:], final.weight, final.bias, self.epsilon)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        """Next-token logits [rows, vocab] from what `prefill` or `step` returned."""
        if self.int8 is not None:
            return torch.cat([self._head_chunk(start, features) for start in self._chunk_starts()], dim=-1)
        return self._linear(self.gpt.lm_head, features)

    def top_log_probabilities(
        self, features: torch.Tensor, count: int, temperature: float = 1.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The `count` most likely next tokens of each row and their log-probabilities (of the logits
        divided by `temperature`): values and token ids, [rows, count] each, best first.

        Same result as `log_softmax(logits).topk(count)`, computed one vocabulary chunk at a time so that
        the [rows, vocab] logits are never held whole: each chunk's matmul output is still in cache when
        its normaliser and best tokens are taken from it."""
        values, tokens, normalizers = [], [], []
        for start in self._chunk_starts():
            logits = at_least_fp32(self._head_chunk(start, features))
            if temperature != 1.0:
                logits = logits / temperature
            normalizers.append(torch.logsumexp(logits, dim=-1))
            chunk_values, chunk_tokens = top_k(logits, min(count, logits.shape[-1]))
            values.append(chunk_values)
            tokens.append(chunk_tokens + start)
        normalizer = torch.logsumexp(torch.stack(normalizers, dim=-1), dim=-1, keepdim=True)
        best_values, picks = torch.cat(values, dim=-1).topk(count, dim=-1)
        return best_values - normalizer, torch.cat(tokens, dim=-1).gather(-1, picks)

    def _chunk_starts(self) -> range:
        return range(0, self.gpt.lm_head.out_features, VOCAB_CHUNK)

    def _head_chunk(self, start: int, features: torch.Tensor) -> torch.Tensor:
        if self.int8 is not None:
            return self.int8.head_chunk(start, features)
        head = self.gpt.lm_head
        end = start + VOCAB_CHUNK
        return F.linear(features, head.weight[start:end], None if head.bias is None else head.bias[start:end])

    def prefill(self, prefixes: torch.Tensor, beams: int) -> tuple[torch.Tensor, DecoderState]:
        """Runs the prefixes ([images, length, width]); returns the last position's features [images, width],
        for `logits` or `top_log_probabilities`, and the state `step` continues from."""
        length = prefixes.shape[1]
        positions = torch.arange(length, device=prefixes.device)
        hidden = prefixes + self.gpt.transformer.wpe(positions)
        keys, values = [], []
        for block, scale in zip(self.gpt.transformer.h, self.scales, strict=True):
            query, key, value = self._project_qkv(block, hidden)
            keys.append(key)
            values.append(value)
            attended = F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=scale)
            hidden = self._finish_block(block, hidden, attended)
        empty = key.new_empty(prefixes.shape[0] * beams, self.heads, 0, self.head_dim)
        state = DecoderState(keys, values, [empty] * len(keys), [empty] * len(keys), beams)
        return self._final_norm(hidden[:, -1]), state

    def step(self, token_ids: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Feeds one token per row ([images * beams]); returns the features [rows, width] that
        `logits` and `top_log_probabilities` turn into next-token scores."""
        images, beams = state.images, state.beams
        position = torch.tensor([state.length], device=token_ids.device)
        hidden = (self.embed_tokens(token_ids) + self.gpt.transformer.wpe(position)).unsqueeze(1)  # [rows, 1, width]
        for layer, (block, scale) in enumerate(zip(self.gpt.transformer.h, self.scales, strict=True)):
            query, key, value = self._project_qkv(block, hidden)  # [rows, heads, 1, head_dim]
            generated_keys, generated_values = state.append(layer, key, value)
            prefix_keys, prefix_values = state.prefix_keys[layer], state.prefix_values[layer]

            # Scores against the shared prefix ([images, beams, heads, prefix]) and each beam's own tokens.
            query = query.squeeze(2)
            grouped_query = query.view(images, beams, self.heads, self.head_dim)
            prefix_scores = torch.einsum("ibhd,ihpd->ibhp", grouped_query, prefix_keys).reshape(
                images * beams, self.heads, -1
            )
            own_scores = torch.einsum("rhd,rhtd->rht", query, generated_keys)
            weights = (torch.cat((prefix_scores, own_scores), dim=-1) * scale).softmax(dim=-1)
            prefix_weights, own_weights = weights.split((prefix_scores.shape[-1], own_scores.shape[-1]), dim=-1)
            attended = torch.einsum(
                "ibhp,ihpd->ibhd", prefix_weights.view(images, beams, self.heads, -1), prefix_values
            ).reshape(images * beams, self.heads, self.head_dim) + torch.einsum(
                "rht,rhtd->rhd", own_weights, generated_values
            )
            hidden = self._finish_block(block, hidden, attended.unsqueeze(2))
        state.row_order = None
        return self._final_norm(hidden[:, 0])
