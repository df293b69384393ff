"""The checkpoint format, and import of ClipCap's released `.pt` weights.

A checkpoint is a directory:
    config.json          CaptionerConfig: everything needed to rebuild the model
    model.safetensors    the mapper's weights, plus GPT-2's when they are part of the model
    tokenizer/           the tokenizer, so captions decode the same wherever the checkpoint goes
    clip/                optional: a local CLIP model the config names as `local-dir:clip`
    familiarity.safetensors  optional: a sample of training embeddings (mlcore.familiarity)
Nothing is ever unpickled: weights are safetensors, everything else JSON.
"""

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import GPT2Config, PreTrainedTokenizerBase

from mlcore.errors import CheckpointError
from mlcore.familiarity import FamiliarityReference, save_reference
from mlcore.mapping import MapperConfig
from mlcore.model import (
    CLIPCAP_MAX_LENGTH,
    CLIPCAP_ORIGIN,
    CaptionerConfig,
    ClipCaptionModel,
    build_gpt2,
    gpt2_config_dict,
    load_gpt2,
    load_tokenizer,
)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
LOCAL_CLIP_DIR = "clip"

# Buffers that transformers < 4.3x saved in GPT-2 state dicts and newer versions reject.
LEGACY_GPT2_BUFFERS = re.compile(r"\.attn\.(bias|masked_bias)$")
TIED_LM_HEAD = "gpt.lm_head.weight"


def save_checkpoint(
    model: ClipCaptionModel,
    tokenizer: PreTrainedTokenizerBase,
    directory: str | Path,
    config: CaptionerConfig | None = None,
    local_clip_dir: str | Path | None = None,
    familiarity: FamiliarityReference | None = None,
) -> Path:
    """Writes a checkpoint directory atomically: a crash mid-save never leaves a half-written checkpoint."""
    directory = Path(directory)
    # The stored GPT-2 architecture is the live model's, so a reload rebuilds exactly what was trained.
    config = replace(config or model.config, gpt2_config=gpt2_config_dict(model.gpt.config))
    staging = directory.with_name(directory.name + ".saving")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    if local_clip_dir is not None:
        shutil.copytree(local_clip_dir, staging / LOCAL_CLIP_DIR)
    tokenizer.save_pretrained(staging / TOKENIZER_DIR)
    if familiarity is not None:
        save_reference(familiarity, staging)
    save_file(_weights_to_save(model, config), staging / WEIGHTS_FILE, metadata={"format": "pt"})
    (staging / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    if directory.exists():
        backup = directory.with_name(directory.name + ".old")
        shutil.rmtree(backup, ignore_errors=True)
        directory.rename(backup)
        staging.rename(directory)
        shutil.rmtree(backup)
    else:
        staging.rename(directory)
    return directory


def _weights_to_save(model: ClipCaptionModel, config: CaptionerConfig) -> dict[str, torch.Tensor]:
    state = model.state_dict()
    if config.gpt2_weights == "source":
        state = {name: tensor for name, tensor in state.items() if name.startswith("clip_project.")}
    elif _lm_head_is_tied(model):
        state.pop(TIED_LM_HEAD, None)
    return {name: tensor.detach().to("cpu").contiguous() for name, tensor in state.items()}


def _lm_head_is_tied(model: ClipCaptionModel) -> bool:
    return model.gpt.lm_head.weight.data_ptr() == model.gpt.transformer.wte.weight.data_ptr()


def read_config(directory: str | Path) -> CaptionerConfig:
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} does not exist or is not a directory")
    if not config_path.is_file():
        raise CheckpointError(f"{directory} is not a CLIP-Pro checkpoint: it has no {CONFIG_FILE}")
    try:
        return CaptionerConfig.from_dict(json.loads(config_path.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
        raise CheckpointError(f"checkpoint config {config_path} is corrupt: {error}") from error


def load_checkpoint(
    directory: str | Path,
) -> tuple[CaptionerConfig, ClipCaptionModel, PreTrainedTokenizerBase]:
    """Rebuilds the model on the CPU, in eval mode. Raises CheckpointError for anything missing or corrupt."""
    directory = Path(directory)
    config = read_config(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"checkpoint {directory} has no {WEIGHTS_FILE}")
    try:
        weights = load_file(weights_path)
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"checkpoint weights {weights_path} are corrupt: {error}") from error
    if config.gpt2_weights == "checkpoint":
        gpt = build_gpt2(config.gpt2_config)
    else:
        gpt = load_gpt2(resolve_relative(config.gpt2_source, directory))
    model = ClipCaptionModel(config, gpt)
    _load_weights(model, weights, expect_gpt2=config.gpt2_weights == "checkpoint", origin=str(weights_path))
    tokenizer = load_tokenizer(directory / TOKENIZER_DIR)
    return config, model.eval(), tokenizer


def _load_weights(model: ClipCaptionModel, weights: dict[str, torch.Tensor], expect_gpt2: bool, origin: str) -> None:
    expected = {name for name in model.state_dict() if expect_gpt2 or name.startswith("clip_project.")}
    if expect_gpt2 and _lm_head_is_tied(model):
        expected.discard(TIED_LM_HEAD)
    missing = sorted(expected - set(weights))
    unexpected = sorted(set(weights) - set(model.state_dict()))
    if missing or unexpected:
        raise CheckpointError(
            f"weights in {origin} do not match the architecture in its config: "
            f"missing {_preview(missing)}, unexpected {_preview(unexpected)}"
        )
    try:
        model.load_state_dict(weights, strict=False)
    except RuntimeError as error:
        raise CheckpointError(f"weights in {origin} have the wrong shapes for its config: {error}") from error


def _preview(names: list[str], limit: int = 5) -> str:
    if not names:
        return "none"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def resolve_relative(source: str, base_dir: Path) -> str:
    """A source given as a relative path is relative to the checkpoint; hub names are left as they are."""
    candidate = base_dir / source
    return str(candidate) if not Path(source).is_absolute() and candidate.exists() else source


def import_clipcap(
    weights_path: str | Path,
    directory: str | Path,
    *,
    tokenizer_source: str | Path = "gpt2",
    clip_model: str | None = None,
    normalize_prefix: bool | None = None,
    num_heads: int | None = None,
    trained_on: str | None = None,
) -> CaptionerConfig:
    """Converts one of ClipCap's released `.pt` state dicts into a checkpoint directory.

    The layout is read from the tensors: the MLP releases (`coco_weights.pt`, `conceptual_weights.pt`:
    prefix 10, ViT-B/32) and the Transformer release (prefix 40, clip length 40, 8 layers, RN50x4 with
    640-d input, L2-normalised prefix). Defaults follow those releases; each can be overridden. `trained_on`
    says in words what the release was trained on (the weights do not tell).
    """
    weights_path = Path(weights_path)
    if not weights_path.is_file():
        raise CheckpointError(f"ClipCap weights file {weights_path} does not exist")
    try:
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several unrelated types for a bad or unsafe pickle
        raise CheckpointError(
            f"{weights_path} is not a plain ClipCap state dict that can be read without unpickling code: {error}"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise CheckpointError(f"{weights_path} does not hold a state dict of tensors")
    state = {name.removeprefix("module."): tensor for name, tensor in state.items()}
    state = {name: tensor for name, tensor in state.items() if not LEGACY_GPT2_BUFFERS.search(name)}
    if "gpt.transformer.wte.weight" not in state:
        raise CheckpointError(f"{weights_path} has no GPT-2 weights (gpt.transformer.wte.weight); is it ClipCap's?")

    gpt_config = _gpt2_config_from_state(state, num_heads)
    mapper = _mapper_config_from_state(state, gpt_config.n_embd)
    is_transformer = mapper.mapper_type == "transformer"
    config = CaptionerConfig(
        clip_model=clip_model or ("RN50x4" if is_transformer else "ViT-B/32"),
        clip_embedding_size=mapper.clip_embedding_size,
        mapper=mapper,
        gpt2_source=str(tokenizer_source),
        gpt2_config=gpt2_config_dict(gpt_config),
        gpt2_weights="checkpoint",
        train_gpt2=False,
        normalize_prefix=is_transformer if normalize_prefix is None else normalize_prefix,
        stop_token=".",
        origin=f"{CLIPCAP_ORIGIN}{weights_path.name}",
        max_length=CLIPCAP_MAX_LENGTH,
        training={"trained_on": trained_on} if trained_on else {},
    )
    model = ClipCaptionModel(config, build_gpt2(config.gpt2_config))
    _load_weights(model, state, expect_gpt2=True, origin=str(weights_path))
    tokenizer = load_tokenizer(tokenizer_source)
    save_checkpoint(model, tokenizer, directory, config)
    return config


def _gpt2_config_from_state(state: dict[str, torch.Tensor], num_heads: int | None) -> GPT2Config:
    vocab_size, width = state["gpt.transformer.wte.weight"].shape
    positions = state["gpt.transformer.wpe.weight"].shape[0]
    layer_indices = {
        int(match.group(1)) for name in state if (match := re.match(r"gpt\.transformer\.h\.(\d+)\.", name))
    }
    # GPT-2's released sizes all use 64-wide attention heads.
    heads = num_heads or max(1, width // 64)
    return GPT2Config(
        vocab_size=int(vocab_size),
        n_positions=int(positions),
        n_embd=int(width),
        n_layer=len(layer_indices),
        n_head=heads,
    )


def _mapper_config_from_state(state: dict[str, torch.Tensor], gpt_width: int) -> MapperConfig:
    if "clip_project.model.0.weight" in state:
        hidden, clip_size = state["clip_project.model.0.weight"].shape
        output = state["clip_project.model.2.weight"].shape[0]
        return MapperConfig("mlp", int(clip_size), gpt_width, prefix_length=int(output) // gpt_width)
    if "clip_project.prefix_const" in state:
        prefix_length = state["clip_project.prefix_const"].shape[0]
        projected, clip_size = state["clip_project.linear.weight"].shape
        layers = {
            int(match.group(1))
            for name in state
            if (match := re.match(r"clip_project\.transformer\.layers\.(\d+)\.", name))
        }
        hidden = state["clip_project.transformer.layers.0.mlp.fc1.weight"].shape[0]
        return MapperConfig(
            "transformer",
            int(clip_size),
            gpt_width,
            prefix_length=int(prefix_length),
            prefix_length_clip=int(projected) // gpt_width,
            num_layers=len(layers),
            mlp_ratio=hidden / gpt_width,
        )
    raise CheckpointError("the state dict has neither ClipCap's MLP nor its Transformer mapper (clip_project.*)")
