from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import mlcore.int8
from mlcore.encoder import ClipEncoder
from mlcore.int8 import (
    ROW_BLOCK,
    Int8Linear,
    Int8Mlp,
    Int8PatchEmbedding,
    Int8SelfAttention,
    has_amx,
    int8_linear,
    pack_int8,
    quantize_image_tower,
)

needs_amx = pytest.mark.skipif(not has_amx(), reason="this CPU has no AMX")


@pytest.fixture(params=["int_mm", pytest.param("amx", marks=needs_amx)])
def int8_kernel(request, monkeypatch) -> str:
    """Runs a test with each integer matmul this CPU has: torch._int_mm, and oneDNN's AMX kernel."""
    monkeypatch.setattr(mlcore.int8, "AMX", request.param == "amx")
    return request.param


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


def test_int8_linear_stays_close_to_float():
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    inputs = torch.randn(5, 7, 64)
    with torch.inference_mode():
        error = relative_error(Int8Linear(linear)(inputs), linear(inputs))
    assert 0 < error < 0.03  # quantized, so not equal; measured 1-2%


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_int8_self_attention_matches_multihead_attention(batch_first, masked):
    torch.manual_seed(0)
    attention = torch.nn.MultiheadAttention(64, 4, batch_first=batch_first).eval()
    inputs = torch.randn(3, 9, 64) if batch_first else torch.randn(9, 3, 64)
    mask = torch.full((9, 9), float("-inf")).triu(1) if masked else None
    with torch.inference_mode():
        expected = attention(inputs, inputs, inputs, need_weights=False, attn_mask=mask)[0]
        actual, weights = Int8SelfAttention(attention)(inputs, inputs, inputs, need_weights=False, attn_mask=mask)
    assert weights is None
    assert actual.shape == expected.shape
    assert 0 < relative_error(actual, expected) < 0.05


def test_int8_self_attention_refuses_cross_attention():
    attention = Int8SelfAttention(torch.nn.MultiheadAttention(32, 2, batch_first=True).eval())
    query, memory = torch.randn(1, 3, 32), torch.randn(1, 5, 32)
    with pytest.raises(ValueError, match="only computes self-attention"):
        attention(query, memory, memory)


IMAGES = [Image.new("RGB", (40, 40), colour) for colour in ("red", "green", "blue", "white", "black")]
IMAGES += [Image.effect_noise((40, 40), 60).convert("RGB") for _ in range(3)]


def test_int8_vit_embeddings_stay_close_to_float(tiny_clip_dir):
    full = ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu")
    quantized = ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="cpu", int8=True)
    blocks = quantized.model.visual.transformer.resblocks
    assert all(isinstance(block.attn, Int8SelfAttention) for block in blocks)
    assert all(isinstance(block.mlp, Int8Mlp) and isinstance(block.mlp.c_fc, Int8Linear) for block in blocks)
    assert isinstance(quantized.model.visual.conv1, Int8PatchEmbedding)
    expected, actual = full.encode_images(IMAGES), quantized.encode_images(IMAGES)
    similarity = F.cosine_similarity(actual, expected)
    assert not torch.equal(actual, expected)
    assert similarity.min() > 0.99
    texts = ["a red square", "a cat"]
    torch.testing.assert_close(quantized.encode_texts(texts), full.encode_texts(texts))  # the text tower is fp32


def test_int8_mlp_in_row_blocks_gives_every_row_what_the_layers_give_it(int8_kernel):
    # CLIP's MLP runs ROW_BLOCK rows at a time from one layer to the next; a row's result is the layers' result.
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(
        OrderedDict(c_fc=torch.nn.Linear(64, 256), gelu=torch.nn.GELU(), c_proj=torch.nn.Linear(256, 64))
    )
    blocked = Int8Mlp(mlp)
    inputs = torch.randn(3, ROW_BLOCK // 2 + 7, 64)  # three calls' worth of rows, the last block ragged
    with torch.inference_mode():
        expected = blocked.c_proj(mlp.gelu(blocked.c_fc(inputs.reshape(-1, 64)))).reshape(3, -1, 64)
        one_image = blocked(inputs[1:2])
        actual = blocked(inputs)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)
    torch.testing.assert_close(one_image, expected[1:2], rtol=0, atol=0)
    assert 0 < relative_error(actual, mlp(inputs)) < 0.03


def test_int8_patch_embedding_matches_the_convolution_patch_by_patch(int8_kernel):
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 48, kernel_size=8, stride=8, bias=False)
    embedding = Int8PatchEmbedding(conv)
    pixels = torch.randn(3, 3, 36, 28)  # not a whole number of patches: the convolution drops the rest
    with torch.inference_mode():
        expected = conv(pixels)
        actual = embedding(pixels)
        alone = torch.cat([embedding(image.unsqueeze(0)) for image in pixels])
    assert actual.shape == expected.shape == (3, 48, 4, 3)
    assert 0 < relative_error(actual, expected) < 0.03
    torch.testing.assert_close(actual, alone, rtol=0, atol=0)


def test_resnet_image_towers_stay_in_float(tiny_resnet_clip_dir):
    encoder = ClipEncoder.load(str(tiny_resnet_clip_dir), device="cpu")
    before = encoder.encode_images(IMAGES)
    assert quantize_image_tower(encoder.model) == 0
    torch.testing.assert_close(encoder.encode_images(IMAGES), before, rtol=0, atol=0)


def test_int8_clip_is_refused_off_the_cpu(tiny_clip_dir):
    # "meta" stands in for a GPU this machine lacks: the refusal comes before anything is loaded on it.
    with pytest.raises(ValueError, match="int8 CLIP is for CPUs; on meta"):
        ClipEncoder.load(f"local-dir:{tiny_clip_dir}", device="meta", int8=True)


def test_int8_linear_quantizes_each_row_on_its_own(int8_kernel):
    # One activation scale for the whole call let a large row coarsen every other row's rounding.
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    rows = torch.randn(4, 64)
    mixed = torch.cat((rows[:2], rows[2:3] * 200, rows[3:]))
    layer = Int8Linear(linear)
    with torch.inference_mode():
        alone = torch.cat([layer(row.unsqueeze(0)) for row in rows])
        together = layer(mixed)
        error = relative_error(together[[0, 1, 3]], linear(rows[[0, 1, 3]]))
    torch.testing.assert_close(together[[0, 1, 3]], alone[[0, 1, 3]], rtol=0, atol=0)
    assert error < 0.03


def test_int8_linear_gives_every_row_of_a_long_call_its_own_result(int8_kernel):
    # Calls longer than ROW_BLOCK (CLIP's 50 tokens x 64 images) are computed block by block.
    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 48)
    rows = torch.randn(2 * ROW_BLOCK + 5, 64)
    layer = Int8Linear(linear)
    with torch.inference_mode():
        together = layer(rows)
        in_small_calls = torch.cat([layer(rows[start : start + 7]) for start in range(0, rows.shape[0], 7)])
    torch.testing.assert_close(together, in_small_calls, rtol=0, atol=0)


@needs_amx
@pytest.mark.parametrize("rows", [1, 7, 320, ROW_BLOCK + 3])
@pytest.mark.parametrize("with_bias", [True, False])
def test_amx_kernel_gives_the_same_results_as_int_mm_bit_for_bit(rows, with_bias):
    torch.manual_seed(0)
    weight = torch.randn(3072, 96).t()  # [out, in] as a view, as GPT-2's Conv1D layers hand their weights over
    bias = torch.randn(96) if with_bias else None
    inputs = torch.randn(rows, 3072) * torch.rand(rows, 1) * 10
    on_amx = int8_linear(pack_int8(weight, bias, amx=True), inputs)
    with_int_mm = int8_linear(pack_int8(weight, bias, amx=False), inputs)
    torch.testing.assert_close(on_amx, with_int_mm, rtol=0, atol=0)


@needs_amx
def test_layers_whose_sums_could_pass_exact_float_stay_off_amx_and_batch_independent():
    # A weight row of ones meets rows of ones in a sum of 3,072 x 127 x 127, past 2**24, where oneDNN's
    # correction for the zero point rounds in float, differently for different row counts.
    torch.manual_seed(0)
    weight = torch.randn(96, 3072)
    assert pack_int8(weight, None, amx=True).amx
    weight[0] = 1.0
    packed = pack_int8(weight, None, amx=True)
    assert not packed.amx
    inputs = torch.randn(2 * ROW_BLOCK + 5, 3072) * torch.rand(2 * ROW_BLOCK + 5, 1) * 10
    inputs[::7] = 1.0
    together = int8_linear(packed, inputs)
    alone = torch.cat([int8_linear(packed, row.unsqueeze(0)) for row in inputs])
    torch.testing.assert_close(together, alone, rtol=0, atol=0)
