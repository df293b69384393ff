"""Small CLIP, GPT-2 and tokenizer models built from scratch and saved in the formats real ones use.

The demo model and the tests build these, save them to a directory, and load them back through the
same code that loads `ViT-B/32` and `gpt2`: nothing downstream knows they are small.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from open_clip.model import CLIP
from safetensors.torch import save_file
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

from mlcore.encoder import LOCAL_CONFIG_FILE, LOCAL_WEIGHTS_FILE
from mlcore.model import END_OF_TEXT

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TinyClipSpec:
    embed_dim: int = 32
    image_size: int = 32
    vision: str = "vit"  # or "resnet" (open_clip's ModifiedResNet), or "timm" (a timm trunk, by name)
    vision_width: int = 64
    vision_layers: int = 2
    patch_size: int = 8
    text_width: int = 32
    text_layers: int = 1
    text_heads: int = 2
    context_length: int = 32
    timm_model: str = "test_resnet"  # timm's smallest ResNet; with vision="timm"
    timm_pool: str = "avg"

    def model_cfg(self) -> dict:
        if self.vision == "vit":
            vision_cfg = {
                "image_size": self.image_size,
                "layers": self.vision_layers,
                "width": self.vision_width,
                "patch_size": self.patch_size,
                "head_width": 32,
            }
        elif self.vision == "resnet":
            vision_cfg = {
                "image_size": self.image_size,
                "layers": [1, 1, 1, 1],
                "width": 8,
                "patch_size": None,
            }
        elif self.vision == "timm":
            vision_cfg = {
                "image_size": self.image_size,
                "timm_model_name": self.timm_model,
                "timm_model_pretrained": False,
                "timm_pool": self.timm_pool,
                "timm_proj": "linear",
            }
        else:
            raise ValueError(f"unknown vision tower {self.vision!r}; use 'vit', 'resnet' or 'timm'")
        text_cfg = {
            "context_length": self.context_length,
            "vocab_size": 49408,
            "width": self.text_width,
            "heads": self.text_heads,
            "layers": self.text_layers,
        }
        return {
            "embed_dim": self.embed_dim,
            "quick_gelu": True,
            "vision_cfg": vision_cfg,
            "text_cfg": text_cfg,
        }


def create_clip(spec: TinyClipSpec, seed: int = 0) -> CLIP:
    """A randomly initialised CLIP of open_clip's own architecture."""
    torch.manual_seed(seed)
    return CLIP(**spec.model_cfg())


def save_clip(model: torch.nn.Module, spec: TinyClipSpec, directory: str | Path) -> Path:
    """Saves a CLIP as a local open_clip model directory (`local-dir:` loads it)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": spec.model_cfg(),
        "preprocess_cfg": {"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD), "interpolation": "bicubic"},
    }
    (directory / LOCAL_CONFIG_FILE).write_text(json.dumps(config, indent=2))
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    save_file(state, directory / LOCAL_WEIGHTS_FILE)
    return directory


def train_tokenizer(texts: Iterable[str], directory: str | Path, vocab_size: int = 512) -> GPT2TokenizerFast:
    """A byte-level BPE tokenizer, like GPT-2's but small, saved in the Hugging Face format."""
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(list(texts), vocab_size=vocab_size, min_frequency=1, special_tokens=[END_OF_TEXT])
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer, eos_token=END_OF_TEXT, bos_token=END_OF_TEXT, unk_token=END_OF_TEXT
    )
    tokenizer.save_pretrained(str(directory))
    return tokenizer


def build_gpt2(
    directory: str | Path,
    tokenizer: GPT2TokenizerFast,
    width: int = 32,
    layers: int = 2,
    heads: int = 2,
    positions: int = 64,
    seed: int = 0,
    initializer_range: float = 0.02,
) -> GPT2LMHeadModel:
    """A randomly initialised GPT-2 saved with its tokenizer, the way `gpt2` is laid out on the hub."""
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_positions=positions,
        n_embd=width,
        n_layer=layers,
        n_head=heads,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        initializer_range=initializer_range,
    )
    model = GPT2LMHeadModel(config)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return model
