import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import mlcore.int8
from mlcore import Captioner, DecodingOptions
from mlcore.checkpoint import load_checkpoint
from mlcore.generate import generate_candidates

needs_amx = pytest.mark.skipif(not mlcore.int8.has_amx(), reason="this CPU has no AMX")
IMAGES = [Image.new("RGB", (48, 32), colour) for colour in ("red", "green", "blue", "white", "black", "yellow", "grey")]


@pytest.fixture
def captioner(save_random_checkpoint) -> Captioner:
    return Captioner.load(save_random_checkpoint(mapper_type="transformer", train_gpt2=True), device="auto")


def test_caption_from_images_equals_caption_from_their_embeddings(captioner):
    from_images = captioner.caption(IMAGES, beam_size=3, max_length=8)
    from_embeddings = captioner.caption_embeddings(captioner.embed(IMAGES), DecodingOptions(beam_size=3, max_length=8))
    assert [r.token_ids for r in from_images] == [r.token_ids for r in from_embeddings]
    assert captioner.device.type == ("cuda" if torch.cuda.is_available() else "cpu")  # what "auto" picks


def test_batch_size_does_not_change_the_captions(captioner):
    embeddings = captioner.embed(IMAGES)
    whole = captioner.caption_embeddings(embeddings, beam_size=3, max_length=8, batch_size=64)
    pieces = captioner.caption_embeddings(embeddings, beam_size=3, max_length=8, batch_size=2)
    assert [r.token_ids for r in whole] == [r.token_ids for r in pieces]
    assert [r.score for r in whole] == pytest.approx([r.score for r in pieces], rel=1e-4)


def test_caption_text_is_the_decoded_tokens_without_the_end_of_text(captioner):
    for result in captioner.caption(IMAGES[:3], strategy="greedy", max_length=10):
        ids = [token for token in result.token_ids if token != captioner.tokenizer.eos_token_id]
        assert result.text == captioner.tokenizer.decode(ids).strip()
        assert "<|endoftext|>" not in result.text


def test_text_embeddings_have_the_image_embedding_size(captioner):
    assert captioner.embed_text(["a red circle", "a blue square"]).shape == (2, captioner.embedding_size)
    assert captioner.embed([]).shape == (0, captioner.embedding_size)
    assert captioner.caption_embeddings(torch.empty(0, captioner.embedding_size)) == []


def test_decoding_overrides_apply_on_top_of_given_options(captioner):
    base = DecodingOptions(strategy="sample", seed=3, max_length=4)
    results = captioner.caption_embeddings(captioner.embed(IMAGES[:2]), base, max_length=2)
    assert all(len(result.token_ids) <= 2 for result in results)


def test_clip_rerank_picks_the_final_beam_whose_text_is_closest_to_the_image(captioner):
    embeddings = captioner.embed(IMAGES)
    options = DecodingOptions(beam_size=4, max_length=8)
    with torch.inference_mode():
        prefixes = captioner.model.prefix_embeddings(embeddings)
        candidates = generate_candidates(
            captioner.model.gpt, prefixes, captioner.stop_token_id, captioner.decoding_options(options)
        )
    likeliest = captioner.caption_embeddings(embeddings, options)
    reranked = captioner.caption_embeddings(embeddings, options, clip_rerank=True, batch_size=3)
    for embedding, image_candidates, result in zip(embeddings, candidates, reranked, strict=True):
        texts = [captioner.decode(candidate.token_ids) for candidate in image_candidates]
        similarities = F.cosine_similarity(captioner.embed_text(texts), embedding.unsqueeze(0))
        assert result.token_ids == image_candidates[int(similarities.argmax())].token_ids
    assert [r.token_ids for r in likeliest] == [candidates[0].token_ids for candidates in candidates]
    assert [r.token_ids for r in reranked] != [r.token_ids for r in likeliest]


def test_a_checkpoint_that_opts_in_reranks_by_clip_unless_the_caller_says_otherwise(save_random_checkpoint):
    opted_in = Captioner.load(
        save_random_checkpoint("opted-in", mapper_type="transformer", train_gpt2=True, clip_rerank=True), device="cpu"
    )
    assert opted_in.decoding_options().clip_rerank is True
    assert opted_in.decoding_options(DecodingOptions(beam_size=3)).clip_rerank is True
    assert opted_in.decoding_options(DecodingOptions(clip_rerank=False)).clip_rerank is False
    embeddings = opted_in.embed(IMAGES)
    by_default = [r.token_ids for r in opted_in.caption_embeddings(embeddings)]
    assert by_default == [r.token_ids for r in opted_in.caption_embeddings(embeddings, clip_rerank=True)]
    assert by_default != [r.token_ids for r in opted_in.caption_embeddings(embeddings, clip_rerank=False)]
    assert Captioner.load(save_random_checkpoint("default"), device="cpu").decoding_options().clip_rerank is False


def test_int8_decoding_is_refused_off_the_cpu(save_random_checkpoint):
    with pytest.raises(ValueError, match="int8 captioning is for CPUs"):
        Captioner(*load_checkpoint(save_random_checkpoint("int8")), device=torch.device("cuda"), int8=True)


MIXED_IMAGES = [*IMAGES[:4], Image.effect_noise((48, 32), 120).convert("RGB"), *IMAGES[4:]]


@pytest.mark.parametrize(
    "int8, amx",
    [(False, False), (True, False), pytest.param(True, True, marks=needs_amx)],
    ids=["fp32", "int8 int_mm", "int8 amx"],
)
def test_each_image_gets_the_same_embedding_and_captions_alone_as_in_a_mixed_batch(
    save_random_checkpoint, monkeypatch, int8, amx
):
    monkeypatch.setattr(mlcore.int8, "AMX", amx)
    directory = save_random_checkpoint(mapper_type="mlp", train_gpt2=True, sharpness=2.0)
    captioner = Captioner.load(directory, device="cpu", int8=int8)
    together = captioner.embed(MIXED_IMAGES)
    alone = torch.cat([captioner.embed([image]) for image in MIXED_IMAGES])
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-6)

    # A row far larger than the others, as an unusual photo's embedding can be.
    embeddings = torch.cat((alone[:3], alone[3:4] * 40, alone[4:]))
    for options in (DecodingOptions(beam_size=3, max_length=10), DecodingOptions(strategy="greedy", max_length=10)):
        batched = captioner.caption_embeddings(embeddings, options)
        one_by_one = [captioner.caption_embeddings(row.unsqueeze(0), options)[0] for row in embeddings]
        assert [r.token_ids for r in batched] == [r.token_ids for r in one_by_one]


def test_seeded_sampling_gives_an_image_the_same_caption_alone_as_in_a_batch(captioner):
    embeddings = captioner.embed(IMAGES)
    options = DecodingOptions(strategy="sample", seed=1, max_length=10)
    batched = captioner.caption_embeddings(embeddings, options)
    one_by_one = [captioner.caption_embeddings(row.unsqueeze(0), options)[0] for row in embeddings]
    assert [r.token_ids for r in batched] == [r.token_ids for r in one_by_one]
    reversed_batch = captioner.caption_embeddings(embeddings.flip(0), options)
    assert [r.token_ids for r in reversed_batch] == [r.token_ids for r in batched][::-1]
