"""Captioning a folder of image files, the seed's 03_predict.py: decode, embed and caption in batches."""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from mlcore.captioner import Captioner
from mlcore.encoder import load_image
from mlcore.errors import ImageDecodeError
from mlcore.generate import DecodingOptions


@dataclass(frozen=True)
class FileCaption:
    file: str
    caption: str
    score: float


@dataclass(frozen=True)
class SkippedFile:
    file: str
    reason: str


@dataclass
class FolderCaptions:
    captions: list[FileCaption] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def image_files(folder: Path) -> list[Path]:
    """Every regular, non-hidden file under the folder; whether it is an image is decided by decoding it."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )


def _decode(path: Path) -> Image.Image | str:
    try:
        return load_image(path)
    except ImageDecodeError as error:
        return str(error.__cause__ or error)


def _decoded_batches(
    paths: list[Path], batch_size: int, workers: int
) -> Iterator[list[tuple[Path, Image.Image | str]]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            yield list(zip(chunk, pool.map(_decode, chunk), strict=True))


def caption_folder(
    captioner: Captioner,
    folder: Path,
    options: DecodingOptions,
    batch_size: int = 32,
    progress: bool = False,
    workers: int = 4,
) -> FolderCaptions:
    paths = image_files(folder)
    outcome = FolderCaptions()
    with tqdm(total=len(paths), unit="image", disable=not progress, desc="captioning") as bar:
        for batch in _decoded_batches(paths, batch_size, workers):
            decoded = [(path, image) for path, image in batch if isinstance(image, Image.Image)]
            outcome.skipped.extend(
                SkippedFile(str(path.relative_to(folder)), f"not a readable image: {image}")
                for path, image in batch
                if isinstance(image, str)
            )
            if decoded:
                results = captioner.caption([image for _, image in decoded], options, batch_size=batch_size)
                outcome.captions.extend(
                    FileCaption(str(path.relative_to(folder)), result.text, result.score)
                    for (path, _), result in zip(decoded, results, strict=True)
                )
            bar.update(len(batch))
    return outcome
