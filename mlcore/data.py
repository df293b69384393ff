"""Embedding files: CLIP image embeddings with their captions, in one safetensors file (no pickle).

One file holds a whole dataset split (the seed called it `CLIP_Pro_train_merged.pkl`):
    embeddings        [images, D]  float32 CLIP image embeddings, one row per image (encoded once)
    image_ids         [images]     int64 dataset ids (COCO image ids)
    caption_images    [captions]   int64 row in `embeddings` each caption belongs to
    caption_bytes     [bytes]      uint8 UTF-8 text of all captions, concatenated
    caption_offsets   [captions+1] int64 where each caption starts and ends in `caption_bytes`
    file_name_bytes / file_name_offsets   the same for each image's file name
The safetensors metadata holds `format`, `clip_model`, `embedding_size` and any extra string fields.
"""

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from mlcore.errors import DataError

EMBEDDING_FILE_FORMAT = "clippro-embeddings/1"


def _pack_strings(texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [text.encode("utf-8") for text in texts]
    offsets = torch.zeros(len(encoded) + 1, dtype=torch.int64)
    if encoded:
        offsets[1:] = torch.tensor([len(item) for item in encoded], dtype=torch.int64).cumsum(0)
    data = (
        torch.frombuffer(bytearray(b"".join(encoded)), dtype=torch.uint8)
        if offsets[-1] > 0
        else torch.zeros(0, dtype=torch.uint8)
    )
    return data, offsets


def _unpack_strings(data: torch.Tensor, offsets: torch.Tensor) -> list[str]:
    raw = data.numpy().tobytes()
    bounds = offsets.tolist()
    return [raw[start:end].decode("utf-8") for start, end in itertools.pairwise(bounds)]


@dataclass
class EmbeddingSet:
    """Image embeddings and their captions, as training and evaluation use them."""

    embeddings: torch.Tensor
    image_ids: list[int]
    file_names: list[str]
    captions: list[str]
    caption_images: torch.Tensor
    clip_model: str
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        images = self.embeddings.shape[0]
        if self.embeddings.ndim != 2:
            raise DataError(f"embeddings must be [images, D], got {list(self.embeddings.shape)}")
        if len(self.image_ids) != images or len(self.file_names) != images:
            raise DataError("image_ids and file_names must have one entry per embedding row")
        if len(self.captions) != self.caption_images.shape[0]:
            raise DataError("every caption needs the row of its image")
        if self.caption_images.numel() and (
            int(self.caption_images.min()) < 0 or int(self.caption_images.max()) >= images
        ):
            raise DataError("a caption points at an image row that does not exist")

    @property
    def embedding_size(self) -> int:
        return int(self.embeddings.shape[1])

    def __len__(self) -> int:
        return self.embeddings.shape[0]

    def captions_by_image(self) -> list[list[str]]:
        grouped: list[list[str]] = [[] for _ in range(len(self))]
        for caption, row in zip(self.captions, self.caption_images.tolist(), strict=True):
            grouped[row].append(caption)
        return grouped

    @classmethod
    def from_images(
        cls,
        embeddings: torch.Tensor,
        image_ids: Sequence[int],
        file_names: Sequence[str],
        captions_per_image: Sequence[Sequence[str]],
        clip_model: str,
        metadata: dict[str, str] | None = None,
    ) -> "EmbeddingSet":
        captions = [caption for group in captions_per_image for caption in group]
        rows = [row for row, group in enumerate(captions_per_image) for _ in group]
        return cls(
            embeddings=embeddings.float(),
            image_ids=list(image_ids),
            file_names=list(file_names),
            captions=captions,
            caption_images=torch.tensor(rows, dtype=torch.int64),
            clip_model=clip_model,
            metadata=dict(metadata or {}),
        )

    def save(self, path: str | Path) -> Path:
        """Writes atomically (a temporary file renamed into place)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        caption_bytes, caption_offsets = _pack_strings(self.captions)
        name_bytes, name_offsets = _pack_strings(self.file_names)
        tensors = {
            "embeddings": self.embeddings.float().contiguous(),
            "image_ids": torch.tensor(self.image_ids, dtype=torch.int64),
            "caption_images": self.caption_images.to(torch.int64).contiguous(),
            "caption_bytes": caption_bytes,
            "caption_offsets": caption_offsets,
            "file_name_bytes": name_bytes,
            "file_name_offsets": name_offsets,
        }
        metadata = {
            **self.metadata,
            "format": EMBEDDING_FILE_FORMAT,
            "clip_model": self.clip_model,
            "embedding_size": str(self.embedding_size),
        }
        temporary = path.with_name(path.name + ".tmp")
        save_file(tensors, temporary, metadata=metadata)
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "EmbeddingSet":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"embedding file {path} does not exist; create it with `manage.py encode_coco`")
        try:
            with safe_open(path, framework="pt") as handle:
                metadata = dict(handle.metadata() or {})
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        except (SafetensorError, OSError) as error:
            raise DataError(f"{path} is not a readable embedding file: {error}") from error
        if metadata.get("format") != EMBEDDING_FILE_FORMAT:
            raise DataError(
                f"{path} is not a CLIP-Pro embedding file (format {metadata.get('format')!r}, "
                f"expected {EMBEDDING_FILE_FORMAT!r})"
            )
        try:
            return cls(
                embeddings=tensors["embeddings"],
                image_ids=tensors["image_ids"].tolist(),
                file_names=_unpack_strings(tensors["file_name_bytes"], tensors["file_name_offsets"]),
                captions=_unpack_strings(tensors["caption_bytes"], tensors["caption_offsets"]),
                caption_images=tensors["caption_images"],
                clip_model=metadata.pop("clip_model"),
                metadata={k: v for k, v in metadata.items() if k not in ("format", "embedding_size")},
            )
        except KeyError as error:
            raise DataError(f"embedding file {path} lacks {error}") from error

    @classmethod
    def concatenate(cls, parts: Sequence["EmbeddingSet"]) -> "EmbeddingSet":
        if not parts:
            raise DataError("nothing to merge: no embedding shards")
        models = {part.clip_model for part in parts}
        if len(models) > 1:
            raise DataError(f"cannot merge embeddings from different CLIP models: {sorted(models)}")
        offsets = torch.tensor([0] + [len(part) for part in parts[:-1]]).cumsum(0).tolist()
        return cls(
            embeddings=torch.cat([part.embeddings for part in parts]),
            image_ids=[image_id for part in parts for image_id in part.image_ids],
            file_names=[name for part in parts for name in part.file_names],
            captions=[caption for part in parts for caption in part.captions],
            caption_images=torch.cat(
                [part.caption_images + offset for part, offset in zip(parts, offsets, strict=True)]
            ),
            clip_model=parts[0].clip_model,
            metadata=parts[0].metadata,
        )


def metadata_json(values: dict) -> str:
    """Metadata fields are strings; structured values are stored as JSON."""
    return json.dumps(values, sort_keys=True)
