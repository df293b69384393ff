"""The ClipCap engine: CLIP embeddings -> mapping network -> GPT-2 prefix -> caption. No Django here."""

from mlcore.captioner import Captioner, CaptionResult
from mlcore.encoder import ClipEncoder, load_image, prepare_image
from mlcore.errors import (
    CheckpointError,
    DataError,
    EmbeddingSizeError,
    ImageDecodeError,
    MlcoreError,
    ModelUnavailableError,
)
from mlcore.generate import DecodingOptions

__all__ = [
    "CaptionResult",
    "Captioner",
    "CheckpointError",
    "ClipEncoder",
    "DataError",
    "DecodingOptions",
    "EmbeddingSizeError",
    "ImageDecodeError",
    "MlcoreError",
    "ModelUnavailableError",
    "load_image",
    "prepare_image",
]
