import json
import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from mlcore.captioner import Captioner
from mlcore.checkpoint import CONFIG_FILE, WEIGHTS_FILE, import_clipcap, load_checkpoint, save_checkpoint
from mlcore.errors import CheckpointError, EmbeddingSizeError
from mlcore.generate import DecodingOptions
from mlcore.model import load_gpt2, load_tokenizer
from mlcore.tiny import TinyClipSpec, create_clip, save_clip
from tests.conftest import make_captioner_config, make_random_model


@pytest.mark.parametrize("mapper_type", ["mlp", "transformer"])
@pytest.mark.parametrize("train_gpt2", [False, True])
def test_checkpoint_round_trip_rebuilds_the_same_model(tiny_clip_dir, tiny_gpt2_dir, tmp_path, mapper_type, train_gpt2):
    config = make_captioner_config(tiny_clip_dir, tiny_gpt2_dir, mapper_type=mapper_type, train_gpt2=train_gpt2)
    model = make_random_model(config, tiny_gpt2_dir, seed=3)
    directory = save_checkpoint(model, load_tokenizer(tiny_gpt2_dir), tmp_path / "ckpt", config)

    loaded_config, loaded, _tokenizer = load_checkpoint(directory)
    assert loaded_config.to_dict() | {"gpt2_config": None} == config.to_dict() | {"gpt2_config": None}
    assert loaded.gpt.config.tie_word_embeddings == model.gpt.config.tie_word_embeddings
    embeddings = torch.randn(3, 24)
    tokens = torch.randint(0, 100, (3, 5))
    with torch.inference_mode():
        torch.testing.assert_close(loaded(tokens, embeddings), model(tokens, embeddings))
    stored = set(json.loads((directory / CONFIG_FILE).read_text()))
    assert {"clip_model", "clip_embedding_size", "mapper", "gpt2_source", "stop_token", "normalize_prefix"} <= stored


def test_prefix_only_checkpoint_stores_the_mapper_alone(tiny_clip_dir, tiny_gpt2_dir, tmp_path):
    from safetensors import safe_open

    config = make_captioner_config(tiny_clip_dir, tiny_gpt2_dir, train_gpt2=False)
    directory = save_checkpoint(
        make_random_model(config, tiny_gpt2_dir, 0), load_tokenizer(tiny_gpt2_dir), tmp_path / "c", config
    )
    with safe_open(directory / WEIGHTS_FILE, framework="pt") as handle:
        assert all(name.startswith("clip_project.") for name in handle.keys())  # noqa: SIM118


def test_saving_over_an_existing_checkpoint_replaces_it_whole(save_random_checkpoint):
    directory = save_random_checkpoint("same", seed=1)
    old_weights = load_checkpoint(directory)[1].state_dict()
    assert save_random_checkpoint("same", seed=2) == directory
    assert not list(directory.parent.glob("same.*"))  # no staging or backup folders left behind
    new_weights = load_checkpoint(directory)[1].state_dict()
    expected_weights = load_checkpoint(save_random_checkpoint("expected", seed=2))[1].state_dict()
    assert new_weights.keys() == expected_weights.keys()
    assert all(torch.equal(new_weights[name], expected_weights[name]) for name in new_weights)
    assert not all(torch.equal(new_weights[name], old_weights[name]) for name in new_weights)


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        Captioner.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="has no config.json"):
        Captioner.load(tmp_path / "empty")


def test_corrupt_weights_are_a_clear_error(save_random_checkpoint):
    directory = save_random_checkpoint()
    weights = directory / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        Captioner.load(directory)


def test_corrupt_config_is_a_clear_error(save_random_checkpoint):
    directory = save_random_checkpoint()
    (directory / CONFIG_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="config .* is corrupt"):
        Captioner.load(directory)


def test_weights_that_do_not_match_the_config_are_refused(save_random_checkpoint):
    directory = save_random_checkpoint()
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["mapper"]["prefix_length"] = 7
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="wrong shapes"):
        Captioner.load(directory)


def test_wrong_embedding_size_is_refused(save_random_checkpoint):
    captioner = Captioner.load(save_random_checkpoint(), device="cpu")
    with pytest.raises(EmbeddingSizeError, match=r"shape \[N, 24\].*got \[2, 512\]"):
        captioner.caption_embeddings(torch.randn(2, 512))


def test_clip_with_a_different_embedding_size_is_refused(save_random_checkpoint, tiny_resnet_clip_dir):
    directory = save_random_checkpoint()
    config = json.loads((directory / CONFIG_FILE).read_text())
    config["clip_model"] = f"local-dir:{tiny_resnet_clip_dir}"
    (directory / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="40-d embeddings but the captioner was trained on 24-d"):
        Captioner.load(directory, device="cpu").embed([])


# ClipCap's released checkpoints, rebuilt here key by key as its train.py and transformers 2.x/3.x saved them.


def clipcap_gpt2_state(gpt2_dir, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    gpt = load_gpt2(gpt2_dir)
    with torch.no_grad():
        for parameter in gpt.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    state = {f"gpt.{name}": tensor.clone() for name, tensor in gpt.state_dict().items()}
    positions = gpt.config.n_positions
    for layer in range(gpt.config.n_layer):
        state[f"gpt.transformer.h.{layer}.attn.bias"] = torch.tril(torch.ones(positions, positions)).view(
            1, 1, positions, positions
        )
        state[f"gpt.transformer.h.{layer}.attn.masked_bias"] = torch.tensor(-1e4)
    return state


def clipcap_mlp_state(clip_size: int, width: int, prefix_length: int) -> dict[str, torch.Tensor]:
    hidden = width * prefix_length // 2
    return {
        "clip_project.model.0.weight": torch.randn(hidden, clip_size) * 0.05,
        "clip_project.model.0.bias": torch.randn(hidden) * 0.05,
        "clip_project.model.2.weight": torch.randn(width * prefix_length, hidden) * 0.05,
        "clip_project.model.2.bias": torch.randn(width * prefix_length) * 0.05,
    }


def clipcap_transformer_state(
    clip_size: int, width: int, prefix_length: int, clip_length: int, layers: int
) -> dict[str, torch.Tensor]:
    state = {
        "clip_project.linear.weight": torch.randn(clip_length * width, clip_size) * 0.05,
        "clip_project.linear.bias": torch.randn(clip_length * width) * 0.05,
        "clip_project.prefix_const": torch.randn(prefix_length, width),
    }
    for layer in range(layers):
        prefix = f"clip_project.transformer.layers.{layer}"
        state |= {
            f"{prefix}.norm1.weight": 1 + torch.randn(width) * 0.1,
            f"{prefix}.norm1.bias": torch.randn(width) * 0.1,
            f"{prefix}.attn.to_queries.weight": torch.randn(width, width) * 0.2,
            f"{prefix}.attn.to_keys_values.weight": torch.randn(2 * width, width) * 0.2,
            f"{prefix}.attn.project.weight": torch.randn(width, width) * 0.2,
            f"{prefix}.attn.project.bias": torch.randn(width) * 0.1,
            f"{prefix}.norm2.weight": 1 + torch.randn(width) * 0.1,
            f"{prefix}.norm2.bias": torch.randn(width) * 0.1,
            f"{prefix}.mlp.fc1.weight": torch.randn(2 * width, width) * 0.2,
            f"{prefix}.mlp.fc1.bias": torch.randn(2 * width) * 0.1,
            f"{prefix}.mlp.fc2.weight": torch.randn(width, 2 * width) * 0.2,
            f"{prefix}.mlp.fc2.bias": torch.randn(width) * 0.1,
        }
    return state


def clipcap_transformer_prefix(state: dict, embedding: torch.Tensor, clip_length: int, layers: int, heads: int = 8):
    """ClipCap's TransformerMapper.forward, written out with its einsum attention."""
    width = state["clip_project.prefix_const"].shape[1]
    x = F.linear(embedding, state["clip_project.linear.weight"], state["clip_project.linear.bias"])
    x = torch.cat(
        (
            x.view(embedding.shape[0], clip_length, width),
            state["clip_project.prefix_const"].expand(embedding.shape[0], -1, -1),
        ),
        1,
    )
    for layer in range(layers):
        p = lambda name: state[f"clip_project.transformer.layers.{layer}.{name}"]  # noqa: B023, E731
        h = F.layer_norm(x, (width,), p("norm1.weight"), p("norm1.bias"))
        b, n, c = h.shape
        queries = F.linear(h, p("attn.to_queries.weight")).reshape(b, n, heads, c // heads)
        keys_values = F.linear(h, p("attn.to_keys_values.weight")).reshape(b, n, 2, heads, c // heads)
        keys, values = keys_values[:, :, 0], keys_values[:, :, 1]
        attention = torch.einsum("bnhd,bmhd->bnmh", queries, keys) * (c // heads) ** -0.5
        out = torch.einsum("bnmh,bmhd->bnhd", attention.softmax(dim=2), values).reshape(b, n, c)
        x = x + F.linear(out, p("attn.project.weight"), p("attn.project.bias"))
        h = F.layer_norm(x, (width,), p("norm2.weight"), p("norm2.bias"))
        x = x + F.linear(
            F.relu(F.linear(h, p("mlp.fc1.weight"), p("mlp.fc1.bias"))), p("mlp.fc2.weight"), p("mlp.fc2.bias")
        )
    return x[:, clip_length:]


@pytest.fixture(scope="session")
def clip_512_dir(model_dir):
    spec = TinyClipSpec(embed_dim=512)
    return save_clip(create_clip(spec, seed=5), spec, model_dir / "clip-512")


def test_import_of_clipcap_mlp_release(tiny_gpt2_dir, clip_512_dir, tmp_path):
    torch.manual_seed(0)
    state = clipcap_gpt2_state(tiny_gpt2_dir, seed=1) | clipcap_mlp_state(512, 32, prefix_length=10)
    weights = tmp_path / "coco_weights.pt"
    torch.save(state, weights)

    config = import_clipcap(weights, tmp_path / "clipcap-coco", tokenizer_source=tiny_gpt2_dir, num_heads=2)
    assert config.clip_model == "ViT-B/32"
    assert (config.mapper.mapper_type, config.prefix_length, config.clip_embedding_size) == ("mlp", 10, 512)
    assert (config.stop_token, config.normalize_prefix) == (".", False)

    _, model, _ = load_checkpoint(tmp_path / "clipcap-coco")
    embedding = torch.randn(2, 512)
    hidden = torch.tanh(F.linear(embedding, state["clip_project.model.0.weight"], state["clip_project.model.0.bias"]))
    expected_prefix = F.linear(hidden, state["clip_project.model.2.weight"], state["clip_project.model.2.bias"])
    with torch.inference_mode():
        torch.testing.assert_close(model.prefix_embeddings(embedding), expected_prefix.view(2, 10, 32))
        torch.testing.assert_close(
            model.gpt.transformer.h[1].mlp.c_fc.weight, state["gpt.transformer.h.1.mlp.c_fc.weight"]
        )

    # Overriding the CLIP model lets a local one stand in for ViT-B/32 (not downloadable here).
    import_clipcap(
        weights, tmp_path / "local", tokenizer_source=tiny_gpt2_dir, num_heads=2, clip_model=f"local-dir:{clip_512_dir}"
    )
    captioner = Captioner.load(tmp_path / "local", device="cpu")
    from PIL import Image

    results = captioner.caption([Image.new("RGB", (40, 40), "blue")], beam_size=3, max_length=8)
    assert len(results) == 1 and results[0].token_ids and math.isfinite(results[0].score)
    period = captioner.tokenizer.encode(".")[0]
    assert period not in results[0].token_ids[:-1]


def test_import_of_clipcap_transformer_release(tiny_gpt2_dir, tmp_path):
    torch.manual_seed(0)
    state = clipcap_gpt2_state(tiny_gpt2_dir, seed=2) | clipcap_transformer_state(
        640, 32, prefix_length=40, clip_length=40, layers=8
    )
    weights = tmp_path / "transformer_weights.pt"
    torch.save(state, weights)

    config = import_clipcap(weights, tmp_path / "clipcap-transformer", tokenizer_source=tiny_gpt2_dir, num_heads=2)
    assert config.clip_model == "RN50x4"
    mapper = config.mapper
    assert (mapper.mapper_type, mapper.prefix_length, mapper.prefix_length_clip, mapper.num_layers) == (
        "transformer",
        40,
        40,
        8,
    )
    assert (config.clip_embedding_size, config.normalize_prefix) == (640, True)

    _, model, _ = load_checkpoint(tmp_path / "clipcap-transformer")
    embedding = torch.randn(3, 640)
    normalised = embedding / embedding.norm(dim=-1, keepdim=True)
    with torch.inference_mode():
        ours = model.prefix_embeddings(embedding)
        theirs = clipcap_transformer_prefix(state, normalised, clip_length=40, layers=8)
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-4)
    captioner = Captioner.load(tmp_path / "clipcap-transformer", device="cpu")
    assert len(captioner.caption_embeddings(embedding, beam_size=2, max_length=5)) == 3


def test_import_refuses_a_pickle_that_runs_code(tmp_path, tiny_gpt2_dir):
    class Payload:
        def __reduce__(self):
            return (print, ("this would run on load",))

    weights = tmp_path / "evil.pt"
    weights.write_bytes(pickle.dumps({"gpt.transformer.wte.weight": Payload()}))
    with pytest.raises(CheckpointError, match="without unpickling code"):
        import_clipcap(weights, tmp_path / "out", tokenizer_source=tiny_gpt2_dir, num_heads=2)
    assert not (tmp_path / "out").exists()


def test_import_refuses_a_state_dict_that_is_not_clipcap(tmp_path, tiny_gpt2_dir):
    weights = tmp_path / "other.pt"
    torch.save({"encoder.weight": torch.zeros(2, 2)}, weights)
    with pytest.raises(CheckpointError, match="no GPT-2 weights"):
        import_clipcap(weights, tmp_path / "out", tokenizer_source=tiny_gpt2_dir, num_heads=2)


def test_imported_clipcap_models_decode_up_to_its_67_tokens_and_ours_keep_40(
    tiny_gpt2_dir, save_random_checkpoint, tmp_path
):
    torch.manual_seed(0)
    weights = tmp_path / "coco_weights.pt"
    torch.save(clipcap_gpt2_state(tiny_gpt2_dir, seed=1) | clipcap_mlp_state(512, 32, prefix_length=10), weights)
    imported = tmp_path / "clipcap-coco"
    import_clipcap(weights, imported, tokenizer_source=tiny_gpt2_dir, num_heads=2)
    assert Captioner.load(imported, device="cpu").decoding_options().max_length == 67
    assert Captioner.load(imported, device="cpu").decoding_options(max_length=12).max_length == 12

    # Imported before the config stored a max_length: still ClipCap's.
    config = json.loads((imported / CONFIG_FILE).read_text())
    del config["max_length"]
    (imported / CONFIG_FILE).write_text(json.dumps(config))
    assert Captioner.load(imported, device="cpu").decoding_options().max_length == 67

    ours = Captioner.load(save_random_checkpoint(), device="cpu")
    assert ours.decoding_options(DecodingOptions(strategy="greedy")).max_length == 40
