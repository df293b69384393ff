"""int8 matmuls for x86 CPUs, for GPT-2 and CLIP's image tower.

Weights are quantized once, symmetrically per output channel; activations per call and per row (per token),
symmetrically to 8 bits, so that a row's result never depends on the other rows of the call: an image
captions and embeds the same alone as in any batch. (fbgemm's dynamic int8 linear layer, used before,
takes one scale for the whole call: a large row coarsened every other row's rounding.) The integer
matmul sums exactly, and the scales are applied to its int32 output elementwise. Results differ from fp32 by
rounding: captions can change where two candidates are nearly tied.

The integer matmul is oneDNN's, through one of two entry points that give the same results bit for bit:
- on CPUs with AMX (Intel Xeons that list amx_int8), oneDNN's quantized linear op, whose u8 x s8 kernel runs on
  the AMX tiles: the int8 rows are shifted by 128 into uint8 and oneDNN takes the 128 back off (a zero point),
  exactly for layers whose sums stay below 2**24 (`sums_stay_exact_in_float`; the others keep `torch._int_mm`);
- elsewhere `torch._int_mm` (s8 x s8 through oneDNN's gemm, which does not use AMX; the u8 x s8 kernels of CPUs
  without VNNI could saturate 16-bit pair sums).
"""

import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import GPT2LMHeadModel

from mlcore.devices import across_cores
from mlcore.errors import MlcoreError


def has_amx() -> bool:
    """Whether oneDNN's u8 x s8 matmul runs on AMX tiles here (measured on a 2-core Xeon with AMX, one thread:
    2-2.5x `torch._int_mm` at most of GPT-2's and CLIP's shapes, the shifting included)."""
    return (
        torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.onednn, "qlinear_pointwise")
        and (getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())
    )


AMX = has_amx()


def require_int8_support() -> None:
    # Without oneDNN, torch._int_mm falls back to a plain loop, slower than fp32.
    if not torch.backends.mkldnn.is_available():
        raise MlcoreError("int8 matmuls need PyTorch's oneDNN CPU kernels, which this build lacks; run without int8")


@dataclass(frozen=True)
class Int8Weights:
    """A linear layer's weights as symmetric per-output-channel int8."""

    # [in, out] int8 as torch._int_mm takes its second operand, or (amx) oneDNN's packed layout of it
    weight: torch.Tensor
    scales: torch.Tensor  # [out] float32
    bias: torch.Tensor | None  # [out] float32
    amx: bool = False

    @property
    def out_features(self) -> int:
        return self.scales.shape[0]


def pack_int8(weight: torch.Tensor, bias: torch.Tensor | None, amx: bool | None = None) -> Int8Weights:
    """`weight` [out, in] as symmetric per-output-channel int8. `amx`: for oneDNN's AMX kernel (None: where
    this CPU has AMX)."""
    amx = AMX if amx is None else amx
    weight = weight.detach().float()
    scales = (weight.abs().amax(dim=1) / 127.0).clamp_min(1e-12)
    quantized = (weight / scales.unsqueeze(1)).round_().to(torch.int8)
    amx = amx and sums_stay_exact_in_float(quantized)
    packed = torch.ops.onednn.qlinear_prepack(quantized.contiguous(), None) if amx else quantized.t().contiguous()
    return Int8Weights(packed, scales, None if bias is None else bias.detach().float().contiguous().clone(), amx)


def sums_stay_exact_in_float(quantized: torch.Tensor) -> bool:
    """Whether every partial sum of the AMX kernel stays below 2**24 for any input row, `quantized` [out, in]
    int8: oneDNN converts the shifted rows' sum and its zero-point correction to float before subtracting,
    exact only below 2**24 and beyond it rounded differently for different row counts. A bound over all inputs:
    GPT-2 124M's layers meet it, ViT-B/32's 3,072-input MLP layers (evenly spread weights) keep `torch._int_mm`."""
    weights = quantized.to(torch.int64)
    largest = 128 * weights.sum(dim=1).abs() + 127 * weights.abs().sum(dim=1)  # [out]: |shifted sum| bound
    return bool((largest < 2**24).all())


# Rows per integer matmul, at most. CLIP's blocks run 50 tokens x 64 images = 3,200 rows per call: in blocks of
# at most 512 (`even_block`) the int32 products and their float copies stay in cache for the scaling passes that
# follow (CLIP's int8 matmuls with their scaling took 20-50% less CPU time on Zen 4); each row's result is bitwise
# the same.
ROW_BLOCK = 512


def int8_linear(packed: Int8Weights, inputs: torch.Tensor) -> torch.Tensor:
    """`inputs @ weight.T + bias` with the weights `pack_int8` packed; any leading dimensions. Each row is
    quantized with its own scale, so its result is the same whatever rows share the call."""
    flat = inputs.reshape(-1, inputs.shape[-1]).float()
    outputs = in_row_blocks(lambda rows: _int8_rows(packed, rows), flat, packed.out_features)
    return outputs.reshape(*inputs.shape[:-1], outputs.shape[-1])


def in_row_blocks(
    function: Callable[[torch.Tensor], torch.Tensor], flat: torch.Tensor, out_features: int
) -> torch.Tensor:
    """`function` of the rows of `flat` [rows, in] -> [rows, out_features], in blocks of `even_block` rows."""
    if flat.shape[0] <= ROW_BLOCK:
        return function(flat)
    outputs = flat.new_empty(flat.shape[0], out_features)
    size = even_block(flat.shape[0])
    for start in range(0, flat.shape[0], size):
        outputs[start : start + size] = function(flat[start : start + size])
    return outputs


def even_block(rows: int) -> int:
    """Rows per block when `rows` are cut into as few blocks of at most ROW_BLOCK as possible, all of one size
    (1,600 rows: 4 of 400, not 3 of 512 and a last one of 64 that the matmul runs less efficiently)."""
    blocks = -(-rows // ROW_BLOCK)
    return -(-rows // blocks)


def _int8_rows(packed: Int8Weights, flat: torch.Tensor) -> torch.Tensor:
    row_scales = flat.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / 127.0  # [rows, 1]
    quantized = torch.div(flat, row_scales).round_()  # [rows, in], integers in [-127, 127]
    if packed.amx:
        outputs = _amx_int_mm(quantized.add_(128).to(torch.uint8), packed)
    else:
        outputs = torch._int_mm(quantized.to(torch.int8), packed.weight).float()  # [rows, out], exact integer sums
    outputs.mul_(row_scales).mul_(packed.scales)
    if packed.bias is not None:
        outputs.add_(packed.bias)
    return outputs


def _amx_int_mm(shifted: torch.Tensor, packed: Int8Weights) -> torch.Tensor:
    """`torch._int_mm(shifted - 128, weight).float()` through oneDNN's quantized linear op: zero point 128, and
    scales of 1 so that the op's float output is the exact integer sum converted, as `.float()` converts it."""
    unit_scales, zero_points = _unit_scales(packed.out_features)
    return torch.ops.onednn.qlinear_pointwise(
        shifted, 1.0, 128, packed.weight, unit_scales, zero_points, None, 1.0, 0, torch.float32, "none", [], ""
    )


@functools.cache
def _unit_scales(out_features: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.ones(out_features), torch.zeros(out_features, dtype=torch.int64)


class Int8Linears:
    """GPT-2's linear layers packed for int8, keyed by the module they come from; the output layer in chunks.

    Packed once per model and kept while its weights are unchanged (an optimizer step repacks them)."""

    _cache: "weakref.WeakKeyDictionary[GPT2LMHeadModel, Int8Linears]" = weakref.WeakKeyDictionary()

    def __init__(self, gpt: GPT2LMHeadModel, head_chunk: int):
        self.versions = self._weight_versions(gpt)
        self.amx = AMX
        self.packed: dict[int, Int8Weights] = {}
        for block in gpt.transformer.h:
            for conv in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
                self.packed[id(conv)] = pack_int8(conv.weight.t(), conv.bias)  # Conv1D keeps [in, out]
        head = gpt.lm_head
        self.head_chunk_size = head_chunk
        self.head_chunks = {
            start: pack_int8(
                head.weight[start : start + head_chunk],
                None if head.bias is None else head.bias[start : start + head_chunk],
            )
            for start in range(0, head.out_features, head_chunk)
        }

    @classmethod
    def of(cls, gpt: GPT2LMHeadModel, head_chunk: int) -> "Int8Linears":
        """The output layer is packed in chunks of `head_chunk` vocabulary entries."""
        require_int8_support()
        packed = cls._cache.get(gpt)
        if (
            packed is None
            or packed.versions != cls._weight_versions(gpt)
            or packed.head_chunk_size != head_chunk
            or packed.amx != AMX
        ):
            packed = cls._cache[gpt] = cls(gpt, head_chunk)
        return packed

    @staticmethod
    def _weight_versions(gpt: GPT2LMHeadModel) -> tuple[int, ...]:
        return tuple(parameter._version for parameter in gpt.parameters())

    def linear(self, module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
        return int8_linear(self.packed[id(module)], inputs)

    def head_chunk(self, start: int, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of the vocabulary chunk that begins at `start`."""
        return int8_linear(self.head_chunks[start], inputs)


class Int8Linear(torch.nn.Module):
    """An inference-only stand-in for `torch.nn.Linear`."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.int8_original_dtype = linear.weight.dtype  # open_clip reads this to pick its cast dtype
        self.packed = pack_int8(linear.weight, linear.bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return int8_linear(self.packed, inputs).to(self.int8_original_dtype)


class Int8Mlp(torch.nn.Module):
    """An inference-only stand-in for open_clip's MLP (`c_fc`, activation, `c_proj`), ROW_BLOCK rows at a time:
    each block's [rows, 4 x width] hidden activations stay in cache from one int8 matmul through the activation's
    elementwise passes to the next, where the whole call's went through memory several times (ViT-B/32, 64 images,
    one thread: CLIP 3.1-3.2 -> 2.2-2.4 s of CPU time). Rows are independent, so each row's result is the same."""

    def __init__(self, mlp: torch.nn.Sequential):
        super().__init__()
        self.c_fc, self.gelu, self.c_proj = Int8Linear(mlp.c_fc), mlp.gelu, Int8Linear(mlp.c_proj)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        flat = inputs.reshape(-1, inputs.shape[-1])
        outputs = torch.cat(across_cores(self._in_blocks, flat))
        return outputs.reshape(*inputs.shape[:-1], outputs.shape[-1])

    def _in_blocks(self, flat: torch.Tensor) -> torch.Tensor:
        return in_row_blocks(lambda rows: self.c_proj(self.gelu(self.c_fc(rows))), flat, self.c_proj.out_features)


def is_plain_mlp(mlp: torch.nn.Module) -> bool:
    """open_clip's default MLP: a linear layer, an activation, a linear layer, nothing else."""
    return (
        isinstance(mlp, torch.nn.Sequential)
        and list(dict(mlp.named_children())) == ["c_fc", "gelu", "c_proj"]
        and isinstance(mlp.c_fc, torch.nn.Linear)
        and isinstance(mlp.c_proj, torch.nn.Linear)
    )


class Int8PatchEmbedding(torch.nn.Module):
    """An inference-only stand-in for a ViT's patch embedding, a `torch.nn.Conv2d` whose stride is its kernel: the
    same product as a linear layer over each patch's pixels, run as one (in fp32, oneDNN's convolution took
    10-15% of ViT-B/32's int8 CPU time). Each patch is quantized on its own, as any row."""

    def __init__(self, conv: torch.nn.Conv2d):
        super().__init__()
        self.kernel = conv.kernel_size
        self.packed = pack_int8(conv.weight.reshape(conv.out_channels, -1), conv.bias)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = pixels.shape
        kernel_height, kernel_width = self.kernel
        grid_height, grid_width = height // kernel_height, width // kernel_width
        cropped = pixels[:, :, : grid_height * kernel_height, : grid_width * kernel_width]  # as the convolution drops
        patches = cropped.reshape(batch, channels, grid_height, kernel_height, grid_width, kernel_width)
        patches = patches.permute(0, 2, 4, 1, 3, 5)  # [batch, grid, grid, channels, kernel, kernel]
        rows = patches.reshape(batch * grid_height * grid_width, -1)
        embedded = torch.cat(across_cores(lambda part: int8_linear(self.packed, part), rows))
        return embedded.view(batch, grid_height, grid_width, -1).permute(0, 3, 1, 2).to(pixels.dtype)


def is_patch_embedding(conv: torch.nn.Conv2d) -> bool:
    return (
        conv.kernel_size == conv.stride
        and conv.padding in ((0, 0), 0, "valid")
        and conv.dilation == (1, 1)
        and conv.groups == 1
        and conv.padding_mode == "zeros"
    )


class Int8SelfAttention(torch.nn.Module):
    """An inference-only stand-in for a self-attention `torch.nn.MultiheadAttention`, called as open_clip's
    transformer blocks call it: `(x, x, x, need_weights=False, attn_mask=None or additive)`."""

    def __init__(self, attention: torch.nn.MultiheadAttention):
        super().__init__()
        if not supports_int8_attention(attention):
            raise ValueError("only plain self-attention (one input projection, no bias_k/v) can run in int8")
        self.heads = attention.num_heads
        self.batch_first = attention.batch_first
        self.in_proj = pack_int8(attention.in_proj_weight, attention.in_proj_bias)
        self.out_proj = Int8Linear(attention.out_proj)

    def forward(self, query, key, value, need_weights: bool = False, attn_mask: torch.Tensor | None = None, **_):
        if key is not query or value is not query:
            raise ValueError("Int8SelfAttention only computes self-attention")
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            raise ValueError("Int8SelfAttention takes additive float masks, as open_clip passes them")
        inputs = query if self.batch_first else query.transpose(0, 1)
        if attn_mask is None or attn_mask.dim() == 2:  # the same mask for every image: images share the cores
            outputs = torch.cat(across_cores(lambda images: self._attend(images, attn_mask), inputs))
        else:
            outputs = self._attend(inputs, attn_mask)
        return (outputs if self.batch_first else outputs.transpose(0, 1)), None

    def _attend(self, inputs: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = inputs.shape
        qkv = int8_linear(self.in_proj, inputs).view(batch, length, 3, self.heads, width // self.heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each [batch, heads, length, head_dim]
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask)
        return self.out_proj(attended.transpose(1, 2).reshape(batch, length, width))


def supports_int8_attention(attention: torch.nn.MultiheadAttention) -> bool:
    return attention._qkv_same_embed_dim and attention.bias_k is None and not attention.add_zero_attn


def quantize_image_tower(clip: torch.nn.Module) -> int:
    """Swaps the linear layers of the transformer blocks in an open_clip model's image tower for int8 ones,
    in place, for inference on a CPU. Returns how many layers it swapped: 0 for towers without such blocks
    (ResNets, timm models), which keep running in fp32."""
    from open_clip.transformer import ResidualAttentionBlock

    require_int8_support()
    swapped = 0
    for block in clip.visual.modules():
        if not isinstance(block, ResidualAttentionBlock):
            continue
        if isinstance(block.attn, torch.nn.MultiheadAttention) and supports_int8_attention(block.attn):
            block.attn = Int8SelfAttention(block.attn)
            swapped += 2
        if is_plain_mlp(block.mlp):
            block.mlp = Int8Mlp(block.mlp)
            swapped += 2
            continue
        for name in ("c_fc", "c_proj"):  # an MLP with more in it (a norm between the layers) keeps its order
            layer = getattr(block.mlp, name, None)
            if isinstance(layer, torch.nn.Linear):
                setattr(block.mlp, name, Int8Linear(layer))
                swapped += 1
    patches = getattr(clip.visual, "conv1", None)
    if swapped and isinstance(patches, torch.nn.Conv2d) and is_patch_embedding(patches):
        clip.visual.conv1 = Int8PatchEmbedding(patches)
        swapped += 1
    return swapped
