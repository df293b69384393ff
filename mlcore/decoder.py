"""GPT-2's forward pass for generation, one token per step, on the weights of a transformers model.

Two things make it cheaper than calling the transformers model with its generic cache:
- the prefix's keys and values are computed once per image and shared by all of its beams, so only
  the generated tokens' keys and values are kept per beam (and reordered when beams swap);
- the fused tanh-GELU kernel replaces GPT-2's `gelu_new`, which is the same function written as
  six separate elementwise passes.
On x86 CPUs, `int8=True` runs every linear layer (the output layer included) as fbgemm's dynamic int8
matmul: weights quantized once per output channel, activations per call. Measured on 2 Zen 3 cores at
GPT-2 124M's shapes with 320 rows it does 300-750 GFLOP/s where fp32 does 100-165 (there is no fast bf16
on such CPUs). Captions can differ from fp32 where two candidates are nearly tied.
Training and anything that needs gradients keep using the transformers model itself.
"""

import warnings
import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel
from transformers.activations import ACT2FN

from mlcore.errors import MlcoreError

TANH_GELUS = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}


@dataclass
class DecoderState:
    """Keys and values of one running batch: rows are `images * beams`, beams of an image adjacent."""

    prefix_keys: list[torch.Tensor]  # per layer [images, heads, prefix_length, head_dim]
    prefix_values: list[torch.Tensor]
    generated_keys: list[torch.Tensor]  # per layer [rows, heads, generated, head_dim]
    generated_values: list[torch.Tensor]
    beams: int

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
        for cache in (self.generated_keys, self.generated_values):
            cache[:] = [tensor.index_select(0, rows) for tensor in cache]


class Int8Linears:
    """GPT-2's linear layers packed for fbgemm's dynamic int8 matmul, keyed by the module they come from.

    Packed once per model and kept while its weights are unchanged (an optimizer step repacks them)."""

    _cache: "weakref.WeakKeyDictionary[GPT2LMHeadModel, Int8Linears]" = weakref.WeakKeyDictionary()

    def __init__(self, gpt: GPT2LMHeadModel):
        self.versions = self._weight_versions(gpt)
        self.packed: dict[int, object] = {}
        for block in gpt.transformer.h:
            for conv in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                self.packed[id(conv)] = _pack_int8(conv.weight.t(), conv.bias)  # Conv1D keeps [in, out]
        self.packed[id(gpt.lm_head)] = _pack_int8(gpt.lm_head.weight, gpt.lm_head.bias)

    @classmethod
    def of(cls, gpt: GPT2LMHeadModel) -> "Int8Linears":
        if not {"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines):
            raise MlcoreError("int8 decoding needs an x86 CPU (PyTorch's fbgemm kernels); run without int8")
        packed = cls._cache.get(gpt)
        if packed is None or packed.versions != cls._weight_versions(gpt):
            packed = cls._cache[gpt] = cls(gpt)
        return packed

    @staticmethod
    def _weight_versions(gpt: GPT2LMHeadModel) -> tuple[int, ...]:
        return tuple(parameter._version for parameter in gpt.parameters())

    def linear(self, module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        flat = inputs.reshape(-1, inputs.shape[-1]).float().contiguous()
        outputs = torch.ops.quantized.linear_dynamic(flat, self.packed[id(module)], reduce_range=True)
        return outputs.reshape(*inputs.shape[:-1], outputs.shape[-1])


def _pack_int8(weight: torch.Tensor, bias: torch.Tensor | None):
    """Symmetric per-output-channel int8 weights, prepacked for fbgemm."""
    weight = weight.detach().float().contiguous()
    scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12).double()
    zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
    with warnings.catch_warnings():
        # PyTorch plans to drop quantized tensors for torchao's; the pinned 2.14 has them and they are
        # the only int8 CPU matmul that needs no extra package. Move to torchao when the pin moves past them.
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*deprecated")
        quantized = torch.quantize_per_channel(weight, scales, zero_points, axis=0, dtype=torch.qint8)
    return torch.ops.quantized.linear_prepack(quantized, None if bias is None else bias.detach().float())


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
        self.int8 = Int8Linears.of(gpt) if int8 else None

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

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        final = self.gpt.transformer.ln_f
        normed = F.layer_norm(hidden, hidden.shape[-1:], final.weight, final.bias, self.epsilon)
        return self._linear(self.gpt.lm_head, normed)

    def prefill(self, prefixes: torch.Tensor, beams: int) -> tuple[torch.Tensor, DecoderState]:
        """Runs the prefixes ([images, length, width]); returns next-token logits [images, vocab]."""
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
        return self._logits(hidden[:, -1]), state

    def step(self, token_ids: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Feeds one token per row ([images * beams]); returns next-token logits [rows, vocab]."""
        images, beams = state.images, state.beams
        position = torch.tensor([state.length], device=token_ids.device)
        hidden = (self.embed_tokens(token_ids) + self.gpt.transformer.wpe(position)).unsqueeze(1)  # [rows, 1, width]
        for layer, (block, scale) in enumerate(zip(self.gpt.transformer.h, self.scales, strict=True)):
            query, key, value = self._project_qkv(block, hidden)  # [rows, heads, 1, head_dim]
            generated_keys = torch.cat((state.generated_keys[layer], key), dim=2)
            generated_values = torch.cat((state.generated_values[layer], value), dim=2)
            state.generated_keys[layer], state.generated_values[layer] = generated_keys, generated_values
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
        return self._logits(hidden[:, 0])
