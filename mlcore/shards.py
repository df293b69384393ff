"""Encoding images into embedding shards and merging them into one `EmbeddingSet` file.

Every batch is saved as a shard as soon as it is encoded, so an interrupted run resumes with what is
missing. Shards remember the CLIP model and dataset they were written for and are never mixed.
"""

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from tqdm import tqdm

from mlcore.data import EmbeddingSet
from mlcore.encoder import ClipEncoder, load_image
from mlcore.errors import DataError, ImageDecodeError

CORRUPT_IMAGE = "corrupt image"
SHARD_PATTERN = "shard-*.safetensors"


class ImageFile(Protocol):
    """An image on disk with its captions (`mlcore.coco.CocoImageFile` is one)."""

    @property
    def image_id(self) -> int: ...

    @property
    def captions(self) -> tuple[str, ...]: ...

    @property
    def relative_path(self) -> str: ...

    def path(self, images_root: Path) -> Path: ...


@dataclass(frozen=True)
class ImageFailure:
    image_id: int
    where: str  # the URL or file that failed
    reason: str


def shard_directory(out: Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".shards")


def _shard_paths(shard_dir: Path) -> list[Path]:
    return sorted(shard_dir.glob(SHARD_PATTERN)) if shard_dir.is_dir() else []


def encoded_image_ids(shard_dir: Path, clip_model: str, metadata: dict[str, str]) -> set[int]:
    """Ids already in the shards; shards written for another model or dataset are refused, not mixed in."""
    ids: set[int] = set()
    for path in _shard_paths(shard_dir):
        shard = EmbeddingSet.load(path)
        found = {"clip_model": shard.clip_model, **{key: shard.metadata.get(key, "") for key in metadata}}
        expected = {"clip_model": clip_model, **metadata}
        if found != expected:
            raise DataError(
                f"shard {path} was written for {found}, not {expected}; choose another --out or delete {shard_dir}"
            )
        ids.update(shard.image_ids)
    return ids


def _load_pixels(encoder: ClipEncoder, path: Path) -> torch.Tensor | None:
    try:
        return encoder.preprocess_images([load_image(path)])[0]
    except ImageDecodeError:
        return None


def _prefetched_batches(
    files: Sequence[ImageFile], images_root: Path, encoder: ClipEncoder, batch_size: int, workers: int
) -> Iterator[list[tuple[ImageFile, torch.Tensor | None]]]:
    """Batches of (file, pixels or None when undecodable); worker threads decode and preprocess the next
    batch while the caller encodes this one."""
    batches = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="coco-decode")

    def submit(batch: Sequence[ImageFile]) -> list[Future]:
        return [pool.submit(_load_pixels, encoder, item.path(images_root)) for item in batch]

    try:
        pending = submit(batches[0]) if batches else []
        for index, batch in enumerate(batches):
            current = pending
            pending = submit(batches[index + 1]) if index + 1 < len(batches) else []
            yield [(item, future.result()) for item, future in zip(batch, current, strict=True)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class EncodeReport:
    encoded: int = 0
    shards_written: int = 0
    failures: list[ImageFailure] = field(default_factory=list)


def encode_images_to_shards(
    files: Sequence[ImageFile],
    images_root: Path,
    encoder: ClipEncoder,
    shard_dir: Path,
    metadata: dict[str, str],
    batch_size: int = 2000,
    workers: int = 4,
    progress: bool = True,
) -> EncodeReport:
    """Encodes each image once and saves every batch as a shard as soon as it is done."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    shard_dir.mkdir(parents=True, exist_ok=True)
    existing = _shard_paths(shard_dir)
    next_index = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
    report = EncodeReport()
    with tqdm(total=len(files), desc="encoding", unit="img", disable=not progress) as bar:
        for batch in _prefetched_batches(files, images_root, encoder, batch_size, workers):
            decoded = [(item, pixels) for item, pixels in batch if pixels is not None]
            report.failures += [
                ImageFailure(item.image_id, str(item.path(images_root)), CORRUPT_IMAGE)
                for item, pixels in batch
                if pixels is None
            ]
            if decoded:
                embeddings = encoder.encode_pixels(torch.stack([pixels for _, pixels in decoded]))
                shard = EmbeddingSet.from_images(
                    embeddings,
                    image_ids=[item.image_id for item, _ in decoded],
                    file_names=[item.relative_path for item, _ in decoded],
                    captions_per_image=[item.captions for item, _ in decoded],
                    clip_model=encoder.source.name,
                    metadata=metadata,
                )
                shard.save(shard_dir / f"shard-{next_index:05d}.safetensors")
                next_index += 1
                report.shards_written += 1
                report.encoded += len(decoded)
            bar.update(len(batch))
    return report


def merge_shards(shard_dir: Path, out: Path, keep_image_ids: Collection[int] | None = None) -> EmbeddingSet:
    """Writes the shards as one embedding file, keeping only `keep_image_ids` when given."""
    shard_dir, out = Path(shard_dir), Path(out)
    paths = _shard_paths(shard_dir)
    if not paths:
        raise DataError(f"no shards to merge in {shard_dir}; run `manage.py encode_coco` without --merge first")
    merged = EmbeddingSet.concatenate([EmbeddingSet.load(path) for path in paths])
    duplicates = [image_id for image_id, count in Counter(merged.image_ids).items() if count > 1]
    if duplicates:
        raise DataError(f"images {duplicates[:5]} are in more than one shard in {shard_dir}; delete it and re-encode")
    if keep_image_ids is not None:
        merged = _keep_images(merged, set(keep_image_ids))
    merged.save(out)
    return merged


def _keep_images(embeddings: EmbeddingSet, keep: set[int]) -> EmbeddingSet:
    rows = [row for row, image_id in enumerate(embeddings.image_ids) if image_id in keep]
    grouped = embeddings.captions_by_image()
    return EmbeddingSet.from_images(
        embeddings.embeddings[rows],
        image_ids=[embeddings.image_ids[row] for row in rows],
        file_names=[embeddings.file_names[row] for row in rows],
        captions_per_image=[grouped[row] for row in rows],
        clip_model=embeddings.clip_model,
        metadata=embeddings.metadata,
    )
