"""The captioner network: a mapping network that turns a CLIP embedding into a GPT-2 prefix.

Parameters are named as in ClipCap (`gpt.*`, `clip_project.*`), so its released weights load as they are.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerBase

from mlcore.errors import EmbeddingSizeError, ModelUnavailableError
from mlcore.generate import DEFAULT_MAX_LENGTH
from mlcore.mapping import MapperConfig, build_mapper

END_OF_TEXT = "<|endoftext|>"
CLIPCAP_ORIGIN = "clipcap-import:"
# ClipCap's `generate_beam` decodes up to 67 tokens (its `entry_length`); its imports keep that.
CLIPCAP_MAX_LENGTH = 67
CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class CaptionerConfig:
    """Everything needed to rebuild a captioner; stored as `config.json` beside the weights."""

    clip_model: str
    clip_embedding_size: int
    mapper: MapperConfig
    gpt2_source: str
    gpt2_config: dict
    # "checkpoint": GPT-2's weights are in the checkpoint (fine-tuned or imported);
    # "source": GPT-2 was frozen and loads from `gpt2_source`.
    gpt2_weights: Literal["checkpoint", "source"]
    train_gpt2: bool
    normalize_prefix: bool
    stop_token: str = END_OF_TEXT
    origin: str = "clip-pro"
    training: dict = field(default_factory=dict)
    format_version: int = CONFIG_FORMAT_VERSION
    # New tokens per caption unless the caller asks otherwise.
    max_length: int = DEFAULT_MAX_LENGTH
    # Beam search's final beams re-ranked by this model's CLIP unless the caller asks otherwise (needs the CLIP's
    # text tower; the demo model opts in, imported weights do not).
    clip_rerank: bool = False

    @property
    def prefix_length(self) -> int:
        return self.mapper.prefix_length

    def to_dict(self) -> dict:
        values = asdict(self)
        values["mapper"] = self.mapper.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "CaptionerConfig":
        values = dict(values)
        values["mapper"] = MapperConfig.from_dict(values["mapper"])
        known = set(cls.__dataclass_fields__)
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown captioner config fields: {', '.join(sorted(unknown))}")
        if "max_length" not in values and str(values.get("origin", "")).startswith(CLIPCAP_ORIGIN):
            values["max_length"] = CLIPCAP_MAX_LENGTH  # imported before the field existed
        return cls(**values)

    def with_training(self, **metadata) -> "CaptionerConfig":
        return replace(self, training={**self.training, **metadata})


class ClipCaptionModel(nn.Module):
    def __init__(self, config: CaptionerConfig, gpt: GPT2LMHeadModel):
        super().__init__()
        if gpt.config.n_embd != config.mapper.gpt_embedding_size:
            raise ValueError(
                f"GPT-2 width {gpt.config.n_embd} does not match the mapper's {config.mapper.gpt_embedding_size}"
            )
        self.config = config
        self.gpt = gpt
        self.clip_project = build_mapper(config.mapper)
        self.set_gpt2_trainable(config.train_gpt2)

    def set_gpt2_trainable(self, trainable: bool) -> None:
        for parameter in self.gpt.parameters():
            parameter.requires_grad_(trainable)

    def train(self, mode: bool = True) -> "ClipCaptionModel":
        super().train(mode)
        # A frozen GPT-2 stays in eval mode (no dropout), as in ClipCap's prefix-only training.
        if mode and not self.config.train_gpt2:
            self.gpt.eval()
        return self

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.gpt.transformer.wte

    def check_embeddings(self, clip_embeddings: torch.Tensor) -> None:
        expected = self.config.clip_embedding_size
        if clip_embeddings.ndim != 2 or clip_embeddings.shape[1] != expected:
            raise EmbeddingSizeError(
                f"expected CLIP embeddings of shape [N, {expected}] for CLIP {self.config.clip_model!r}, "
                f"got {list(clip_embeddings.shape)}"
            )

    def prefix_embeddings(self, clip_embeddings: torch.Tensor) -> torch.Tensor:
        """[N, clip_size] -> [N, prefix_length, gpt_width]."""
        self.check_embeddings(clip_embeddings)
        weight = self.token_embedding.weight
        clip_embeddings = clip_embeddings.to(device=weight.device, dtype=weight.dtype)
        if self.config.normalize_prefix:
            clip_embeddings = clip_embeddings / clip_embeddings.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return self.clip_project(clip_embeddings)

    def forward(self, token_ids: torch.Tensor, clip_embeddings: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits predicting each caption token from the prefix and the tokens before it:
        [N, T] tokens -> [N, T, vocab]. Padding after a caption's end cannot affect it (attention is causal)."""
        prefix = self.prefix_embeddings(clip_embeddings)
        inputs = torch.cat((prefix, self.token_embedding(token_ids)), dim=1)
        caption_length = token_ids.shape[1]
        logits = self.gpt(inputs_embeds=inputs, use_cache=False, logits_to_keep=caption_length + 1).logits
        return logits[:, :-1]


# GPT-2's `gelu_new` is the tanh approximation of GELU written as six elementwise operations;
# `gelu_pytorch_tanh` is the same function as one fused kernel.
FUSED_ACTIVATIONS = {"gelu_new": "gelu_pytorch_tanh"}


def load_gpt2(source: str | Path) -> GPT2LMHeadModel:
    """Any GPT-2 name on the Hugging Face hub (`gpt2`, `gpt2-medium`, ...) or a local directory."""
    try:
        config = GPT2Config.from_pretrained(str(source))
        config.activation_function = FUSED_ACTIVATIONS.get(config.activation_function, config.activation_function)
        return GPT2LMHeadModel.from_pretrained(str(source), config=config)
    except OSError as error:
        raise ModelUnavailableError(_hub_message("GPT-2 model", source, error)) from error


def build_gpt2(config_values: dict) -> GPT2LMHeadModel:
    """The architecture alone, from a stored config, with fresh weights (to be overwritten by a load)."""
    config = GPT2Config.from_dict(config_values)
    config.activation_function = FUSED_ACTIVATIONS.get(config.activation_function, config.activation_function)
    return GPT2LMHeadModel(config)


def load_tokenizer(source: str | Path) -> PreTrainedTokenizerBase:
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        raise ModelUnavailableError(_hub_message("tokenizer", source, error)) from error
    if tokenizer.eos_token is None:
        raise ModelUnavailableError(f"tokenizer {source} has no end-of-text token; GPT-2 tokenizers use {END_OF_TEXT}")
    return tokenizer


def stop_token_id(tokenizer: PreTrainedTokenizerBase, stop_token: str) -> int:
    """The id generation stops at: the end-of-text token, or the first token of a text such as '.'."""
    if stop_token == tokenizer.eos_token:
        return int(tokenizer.eos_token_id)
    ids = tokenizer.encode(stop_token, add_special_tokens=False)
    if not ids:
        raise ValueError(f"stop token {stop_token!r} encodes to nothing")
    return int(ids[0])


def gpt2_config_dict(config: GPT2Config) -> dict:
    """A GPT-2 config as JSON-ready values, without the fields that change between library versions."""
    values = config.to_dict()
    for volatile in ("transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"):
        values.pop(volatile, None)
    return values


def _hub_message(what: str, source: str | Path, error: Exception) -> str:
    if Path(str(source)).exists():
        return f"cannot load {what} from {source}: {error}"
    return (
        f"{what} {str(source)!r} is neither a local directory nor cached, and could not be downloaded "
        f"from the Hugging Face hub: {error}. Download it on a machine with internet access "
        f"(e.g. `save_pretrained`) and pass the directory, or set HF_HOME to a cache that holds it."
    )
