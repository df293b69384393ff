"""CLIP image and text embeddings through open_clip.

A CLIP model is named in one of four ways:
- an OpenAI name as the ClipCap seed writes it (`ViT-B/32`, `RN50x4`, ...), loaded as open_clip's
  architecture with the `openai` weights;
- an open_clip `MODEL:PRETRAINED` pair (`ViT-B-32:laion2b_s34b_b79k`);
- an `hf-hub:org/repo` id;
- a local directory holding `open_clip_config.json` and a weights file (`local-dir:/path` or a plain
  path), which is how the tests and the demo model load their tiny CLIPs.
"""

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import open_clip
import torch
from PIL import Image, ImageOps

from mlcore.devices import inference_context, resolve_device
from mlcore.errors import ImageDecodeError, ModelUnavailableError
from mlcore.int8 import quantize_image_tower

OPENAI_CLIP_NAMES: dict[str, str] = {
    "RN50": "RN50-quickgelu",
    "RN101": "RN101-quickgelu",
    "RN50x4": "RN50x4-quickgelu",
    "RN50x16": "RN50x16-quickgelu",
    "RN50x64": "RN50x64-quickgelu",
    "ViT-B/32": "ViT-B-32-quickgelu",
    "ViT-B/16": "ViT-B-16-quickgelu",
    "ViT-L/14": "ViT-L-14-quickgelu",
    "ViT-L/14@336px": "ViT-L-14-336-quickgelu",
}

LOCAL_DIR_PREFIX = "local-dir:"
HF_HUB_PREFIX = "hf-hub:"
LOCAL_CONFIG_FILE = "open_clip_config.json"
LOCAL_WEIGHTS_FILE = "open_clip_model.safetensors"


@dataclass(frozen=True)
class ClipSource:
    """Where a CLIP model comes from, in open_clip's terms."""

    name: str
    open_clip_model: str
    pretrained: str | None

    @property
    def is_local(self) -> bool:
        return self.open_clip_model.startswith(LOCAL_DIR_PREFIX)


def resolve_clip_name(name: str, base_dir: Path | None = None) -> ClipSource:
    """Turns any accepted spelling of a CLIP model into open_clip's (model, pretrained) pair.

    Relative local paths are resolved against `base_dir` (a checkpoint's own directory).
    """
    if name in OPENAI_CLIP_NAMES:
        return ClipSource(name, OPENAI_CLIP_NAMES[name], "openai")
    if name.startswith(HF_HUB_PREFIX):
        return ClipSource(name, name, None)
    local_path = name[len(LOCAL_DIR_PREFIX) :] if name.startswith(LOCAL_DIR_PREFIX) else None
    if local_path is None and (name.startswith(("/", "./", "../", "~")) or _is_dir(name, base_dir)):
        local_path = name
    if local_path is not None:
        path = Path(local_path).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        if not (path / LOCAL_CONFIG_FILE).is_file():
            raise ModelUnavailableError(
                f"CLIP model directory {path} has no {LOCAL_CONFIG_FILE}; "
                "a local CLIP model is a folder with open_clip_config.json and its weights file"
            )
        return ClipSource(name, f"{LOCAL_DIR_PREFIX}{path.resolve()}", None)
    model, _, pretrained = name.partition(":")
    if model.replace("/", "-") not in open_clip.list_models():
        known = ", ".join(sorted(OPENAI_CLIP_NAMES))
        raise ModelUnavailableError(
            f"unknown CLIP model {name!r}: use an OpenAI name ({known}), an open_clip MODEL:PRETRAINED "
            "pair, an hf-hub: id, or a local directory with open_clip_config.json"
        )
    return ClipSource(name, model.replace("/", "-"), pretrained or None)


def _is_dir(name: str, base_dir: Path | None) -> bool:
    return Path(name).is_dir() or (base_dir is not None and (base_dir / name).is_dir())


def load_image(path: str | Path) -> Image.Image:
    """Opens an image file, applies its EXIF orientation and converts it to RGB."""
    try:
        with Image.open(path) as image:
            image.load()
            return prepare_image(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"cannot decode image {path}: {error}") from error


def prepare_image(image: Image.Image) -> Image.Image:
    """EXIF orientation applied, first frame of animations, RGB."""
    if getattr(image, "is_animated", False):
        image.seek(0)
    upright = ImageOps.exif_transpose(image)
    return upright.convert("RGB") if upright.mode != "RGB" else upright


class ClipEncoder:
    """A loaded CLIP model: images and texts in, float32 embeddings out (not normalised)."""

    def __init__(self, source: ClipSource, model: torch.nn.Module, preprocess, tokenizer, device: torch.device):
        self.source = source
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.embedding_size: int = _embedding_size(self.model, self.image_size)

    @classmethod
    def load(
        cls, name: str, device: str | torch.device | None = "auto", base_dir: Path | None = None, int8: bool = False
    ) -> "ClipEncoder":
        """`int8`: the image tower's transformer blocks run as int8 matmuls, for CPUs (mlcore.int8); ResNet
        and timm towers stay in fp32. Text embeddings are unchanged."""
        source = resolve_clip_name(name, base_dir)
        resolved_device = resolve_device(device)
        if int8 and resolved_device.type != "cpu":
            raise ValueError(f"int8 CLIP is for CPUs; on {resolved_device.type} CLIP runs in bf16/fp16 instead")
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                source.open_clip_model,
                pretrained=source.pretrained,
                device=resolved_device,
                cache_dir=os.environ.get("CLIPPRO_CLIP_CACHE") or None,
            )
        except (RuntimeError, OSError, ValueError) as error:
            raise ModelUnavailableError(_unavailable_message(source, error)) from error
        tokenizer = open_clip.get_tokenizer(source.open_clip_model)
        if int8:
            quantize_image_tower(model)
        return cls(source, model, preprocess, tokenizer, resolved_device)

    @property
    def image_size(self) -> int:
        size = getattr(self.model.visual, "image_size", 224)
        return int(size[0] if isinstance(size, tuple | list) else size)

    def preprocess_images(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.preprocess(prepare_image(image)) for image in images])

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """Embeds already preprocessed images, [N, 3, H, W] -> [N, D] float32 on the CPU."""
        with inference_context(self.device):
            features = self.model.encode_image(pixels.to(self.device, non_blocking=True))
        return features.float().cpu()

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = 64) -> torch.Tensor:
        chunks = [
            self.encode_pixels(self.preprocess_images(images[start : start + batch_size]))
            for start in range(0, len(images), batch_size)
        ]
        return torch.cat(chunks) if chunks else torch.empty(0, self.embedding_size)

    def encode_texts(self, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
            with inference_context(self.device):
                chunks.append(self.model.encode_text(tokens).float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, self.embedding_size)


def _embedding_size(model: torch.nn.Module, image_size: int) -> int:
    """Read from the model; towers that do not declare it are measured with one blank image."""
    declared = getattr(model.visual, "output_dim", None)
    if isinstance(declared, int):
        return declared
    parameter = next(model.parameters())
    with torch.inference_mode():
        blank = torch.zeros(1, 3, image_size, image_size, device=parameter.device, dtype=parameter.dtype)
        return int(model.encode_image(blank).shape[-1])


def _unavailable_message(source: ClipSource, error: Exception) -> str:
    if source.is_local:
        return f"cannot load the local CLIP model {source.name!r}: {error}"
    return (
        f"CLIP model {source.name!r} (open_clip {source.open_clip_model}, weights {source.pretrained or 'hub'}) "
        f"is not cached here and could not be downloaded: {error}. On a machine with internet access the "
        "first use downloads it; offline, copy the Hugging Face cache (HF_HOME) from such a machine, set "
        "CLIPPRO_CLIP_CACHE to a folder holding the weights file, or name a local directory with "
        "open_clip_config.json and open_clip_model.safetensors."
    )
