"""COCO captions: the annotation files, the image downloads, and encoding a split into one embedding file
(downloading one file: mlcore.download; shards and merging: mlcore.shards).

`encode_coco` runs the whole pipeline:
annotations (the captions JSON, extracted from `annotations_trainval2017.zip`, downloaded when missing)
-> the images of one split (downloaded in parallel, with retries; files already on disk are kept)
-> CLIP embeddings, each image encoded once, written as shards while it goes (an interrupted run resumes)
-> one merged `EmbeddingSet` file, the one training reads.

Base URLs are parameters: the Django settings (or a test's loopback server) supply them.
"""

import json
import re
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests
from PIL import Image
from tqdm import tqdm

from mlcore.download import DownloadError, DownloadPolicy, download_file
from mlcore.encoder import ClipEncoder
from mlcore.errors import DataError
from mlcore.shards import (
    CORRUPT_IMAGE,
    ImageFailure,
    encode_images_to_shards,
    encoded_image_ids,
    merge_shards,
    shard_directory,
)

ANNOTATIONS_ZIP_NAME = "annotations_trainval2017.zip"
COCO_SPLITS = ("train", "val")
# Karpathy's `restval` images are the part of val2014 that his split trains on.
KARPATHY_SPLITS: dict[str, frozenset[str]] = {
    "train": frozenset({"train", "restval"}),
    "val": frozenset({"val"}),
    "test": frozenset({"test"}),
}
CAPTIONS_MEMBER = re.compile(r"annotations/captions_(train|val)2017\.json")


@dataclass(frozen=True)
class CocoImage:
    image_id: int
    file_name: str
    url: str | None  # coco_url (or flickr_url) from the annotation file
    captions: tuple[str, ...]


@dataclass(frozen=True)
class CocoImageFile:
    """An image and where it lives: `relative_path` below the images folder and below the base URL."""

    image: CocoImage
    folder: str  # train2017 or val2017

    @property
    def image_id(self) -> int:
        return self.image.image_id

    @property
    def captions(self) -> tuple[str, ...]:
        return self.image.captions

    @property
    def relative_path(self) -> str:
        return f"{self.folder}/{self.image.file_name}"

    def path(self, images_root: Path) -> Path:
        return images_root / self.folder / self.image.file_name

    def url(self, images_base_url: str) -> str:
        return f"{images_base_url.rstrip('/')}/{self.relative_path}"


# --- annotation files ---------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise DataError(f"{what} {path} does not exist")
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{what} {path} is not valid JSON: {error}") from error


def read_caption_annotations(path: Path) -> list[CocoImage]:
    """Images of a COCO captions file (`captions_{train,val}2017.json`), in file order, with their captions."""
    data = _read_json(Path(path), "COCO captions file")
    try:
        captions: dict[int, list[str]] = {}
        for annotation in data["annotations"]:
            captions.setdefault(int(annotation["image_id"]), []).append(annotation["caption"].strip())
        return [
            CocoImage(
                image_id=int(entry["id"]),
                file_name=entry["file_name"],
                url=entry.get("coco_url") or entry.get("flickr_url"),
                captions=tuple(captions.get(int(entry["id"]), ())),
            )
            for entry in data["images"]
        ]
    except (KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{path} is not a COCO captions file: an entry lacks {error}") from error


def read_karpathy_split(path: Path, split: str) -> list[CocoImage]:
    """Images of one split of Karpathy's `dataset_coco.json` (train includes restval), raw captions.

    `file_name` is the file's own (COCO 2014) name; `coco2017_file_name` gives the 2017 one.
    """
    if split not in KARPATHY_SPLITS:
        raise DataError(f"unknown Karpathy split {split!r}; use {', '.join(KARPATHY_SPLITS)}")
    data = _read_json(Path(path), "Karpathy split file")
    wanted = KARPATHY_SPLITS[split]
    try:
        return [
            CocoImage(
                image_id=int(entry["cocoid"]),
                file_name=entry["filename"],
                url=None,
                captions=tuple(sentence["raw"].strip() for sentence in entry["sentences"]),
            )
            for entry in data["images"]
            if entry["split"] in wanted
        ]
    except (KeyError, TypeError, AttributeError) as error:
        raise DataError(f"{path} is not a Karpathy split file (dataset_coco.json): an entry lacks {error}") from error


def coco2017_file_name(image_id: int) -> str:
    return f"{image_id:012d}.jpg"


def caption_annotations_path(coco_root: Path, dataset: str) -> Path:
    return Path(coco_root) / "annotations" / f"captions_{dataset}2017.json"


def ensure_caption_annotations(
    coco_root: Path,
    dataset: str,
    annotations_url: str,
    policy: DownloadPolicy | None = None,
    progress: bool = True,
) -> Path:
    """The captions JSON of a split; downloads and unpacks the annotations zip first when it is missing."""
    coco_root, policy = Path(coco_root), policy or DownloadPolicy()
    target = caption_annotations_path(coco_root, dataset)
    if target.is_file():
        return target
    archive = coco_root / ANNOTATIONS_ZIP_NAME
    if not zipfile.is_zipfile(archive):
        try:
            with (
                requests.Session() as session,
                tqdm(desc=ANNOTATIONS_ZIP_NAME, unit="B", unit_scale=True, disable=not progress) as bar,
            ):
                download_file(session, annotations_url, archive, policy, validate=_zip_problem, progress_bar=bar)
        except DownloadError as error:
            raise DownloadError(
                annotations_url,
                error.reason,
                f"Set COCO_ANNOTATIONS_URL to a reachable copy of {ANNOTATIONS_ZIP_NAME}, or place that zip in "
                f"{coco_root}/ (or {target.name} in {target.parent}/) yourself",
            ) from error
    _extract_captions(archive, coco_root)
    if not target.is_file():
        raise DataError(f"{archive} does not contain annotations/{target.name}")
    return target


def _zip_problem(path: Path) -> str | None:
    return None if zipfile.is_zipfile(path) else "not a zip file"


def _extract_captions(archive: Path, coco_root: Path) -> None:
    """Extracts only the captions JSONs, by known names (a member cannot write outside `coco_root`)."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if CAPTIONS_MEMBER.fullmatch(member):
                    destination = coco_root / member
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    partial = destination.with_name(destination.name + ".part")
                    partial.write_bytes(bundle.read(member))
                    partial.replace(destination)
    except (zipfile.BadZipFile, OSError) as error:
        raise DataError(f"cannot unpack {archive}: {error}; delete it to download it again") from error


# --- downloads ----------------------------------------------------------------------------------


def image_problem(path: Path) -> str | None:
    """None when the file decodes as an image. JPEGs decode at reduced scale: fast, and still every byte."""
    try:
        with Image.open(path) as image:
            image.draft("RGB", (64, 64))
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return CORRUPT_IMAGE
    return None


@dataclass
class DownloadReport:
    available: list[CocoImageFile] = field(default_factory=list)  # on disk and decodable, in input order
    present: int = 0  # were already on disk
    downloaded: int = 0
    failures: list[ImageFailure] = field(default_factory=list)


def download_images(
    files: Sequence[CocoImageFile],
    images_root: Path,
    images_base_url: str,
    policy: DownloadPolicy | None = None,
    workers: int = 16,
    progress: bool = True,
) -> DownloadReport:
    """Makes every image present under `images_root`; files already there and decodable are kept."""
    policy = policy or DownloadPolicy()
    local = threading.local()

    def fetch(item: CocoImageFile) -> tuple[str, ImageFailure | None]:
        path = item.path(images_root)
        if path.is_file() and image_problem(path) is None:
            return "present", None
        if not hasattr(local, "session"):
            local.session = requests.Session()
        url = item.url(images_base_url)
        try:
            download_file(local.session, url, path, policy, validate=image_problem)
        except DownloadError as error:
            return "failed", ImageFailure(item.image.image_id, url, error.reason)
        return "downloaded", None

    report = DownloadReport()
    with (
        ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="coco-download") as pool,
        tqdm(total=len(files), desc="images", unit="img", disable=not progress) as bar,
    ):
        futures = [pool.submit(fetch, item) for item in files]
        for future in futures:
            future.add_done_callback(lambda _: bar.update())
        for item, future in zip(files, futures, strict=True):
            outcome, failure = future.result()
            if failure is not None:
                report.failures.append(failure)
                continue
            report.available.append(item)
            if outcome == "present":
                report.present += 1
            else:
                report.downloaded += 1
    return report


# --- the whole pipeline -------------------------------------------------------------------------


@dataclass(frozen=True)
class CocoEncodeOptions:
    dataset: str  # train or val; also test with a Karpathy split
    coco_root: Path
    out: Path
    clip_model: str
    annotations_url: str
    images_base_url: str
    max_images: int | None = None
    batch_size: int = 2000
    workers: int = 4  # threads decoding and preprocessing images
    download_workers: int = 16
    karpathy_split: Path | None = None
    device: str = "auto"
    download: DownloadPolicy = field(default_factory=DownloadPolicy)
    progress: bool = True

    @property
    def images_root(self) -> Path:
        return Path(self.coco_root) / "images"


@dataclass
class CocoEncodeSummary:
    dataset: str
    clip_model: str
    images_in_annotations: int
    images_selected: int
    already_encoded: int = 0
    present: int = 0
    downloaded: int = 0
    encoded: int = 0
    failures: list[ImageFailure] = field(default_factory=list)
    embeddings_written: int = 0
    captions_written: int = 0
    seconds: float = 0.0
    output_path: Path | None = None
    shard_dir: Path | None = None

    @property
    def failure_counts(self) -> Counter[str]:
        return Counter(failure.reason for failure in self.failures)

    def as_text(self) -> str:
        rows = [
            ("images in annotations", str(self.images_in_annotations)),
            ("selected", str(self.images_selected)),
            ("already encoded", f"{self.already_encoded} (skipped)"),
            ("already on disk", f"{self.present} (not downloaded again)"),
            ("downloaded", str(self.downloaded)),
            ("failed", f"{len(self.failures)} (skipped, no embedding)"),
        ]
        for reason, count in self.failure_counts.most_common():
            example = next(failure.where for failure in self.failures if failure.reason == reason)
            rows.append((f"  {reason}", f"{count}, e.g. {example}"))
        rows += [
            ("encoded now", str(self.encoded)),
            ("embeddings written", f"{self.embeddings_written} (one per image)"),
            ("captions written", str(self.captions_written)),
            ("time", f"{self.seconds:.1f} s"),
            ("output", str(self.output_path) if self.output_path else "none (nothing encoded)"),
            ("shards", str(self.shard_dir)),
        ]
        width = max(len(label) for label, _ in rows)
        return "\n".join(
            [
                f"COCO {self.dataset} -> CLIP {self.clip_model}",
                *(f"  {label:<{width}}  {value}" for label, value in rows),
            ]
        )


def select_coco_images(options: CocoEncodeOptions) -> tuple[list[CocoImageFile], int]:
    """The images to encode (the first `max_images` of the split, in annotation order) and the split's size."""
    coco_root = Path(options.coco_root)
    if options.karpathy_split is not None:
        # Karpathy's splits reshuffle COCO 2014; COCO 2017 holds the same images, val2017 a subset of val2014.
        val_annotations = ensure_caption_annotations(
            coco_root, "val", options.annotations_url, options.download, options.progress
        )
        val_ids = {image.image_id for image in read_caption_annotations(val_annotations)}
        files = [
            CocoImageFile(
                replace(image, file_name=coco2017_file_name(image.image_id)),
                "val2017" if image.image_id in val_ids else "train2017",
            )
            for image in read_karpathy_split(options.karpathy_split, options.dataset)
        ]
    else:
        if options.dataset not in COCO_SPLITS:
            raise DataError(
                f"COCO 2017 captions have no {options.dataset!r} split; use train or val, "
                "or give a Karpathy split file (dataset_coco.json) for its test split"
            )
        annotations = ensure_caption_annotations(
            coco_root, options.dataset, options.annotations_url, options.download, options.progress
        )
        files = [CocoImageFile(image, f"{options.dataset}2017") for image in read_caption_annotations(annotations)]
    if options.max_images is not None and options.max_images < 0:
        raise DataError(f"max images must be 0 or more, got {options.max_images}")
    selected = files if options.max_images is None else files[: options.max_images]
    return selected, len(files)


def encode_coco(options: CocoEncodeOptions, encoder: ClipEncoder | None = None) -> CocoEncodeSummary:
    """Downloads what is missing, encodes what is not encoded yet, and writes the merged file."""
    started = time.monotonic()
    files, total = select_coco_images(options)
    encoder = encoder or ClipEncoder.load(options.clip_model, options.device)
    summary = CocoEncodeSummary(options.dataset, encoder.source.name, total, images_selected=len(files))
    summary.shard_dir = shard_directory(options.out)
    metadata = {
        "dataset": options.dataset,
        "captions": options.karpathy_split.name if options.karpathy_split else f"captions_{options.dataset}2017.json",
    }
    done = encoded_image_ids(summary.shard_dir, encoder.source.name, metadata)
    pending = [item for item in files if item.image.image_id not in done]
    summary.already_encoded = len(files) - len(pending)

    downloads = download_images(
        pending,
        options.images_root,
        options.images_base_url,
        options.download,
        options.download_workers,
        options.progress,
    )
    encoding = encode_images_to_shards(
        downloads.available,
        options.images_root,
        encoder,
        summary.shard_dir,
        metadata,
        options.batch_size,
        options.workers,
        options.progress,
    )
    summary.present, summary.downloaded, summary.encoded = downloads.present, downloads.downloaded, encoding.encoded
    summary.failures = downloads.failures + encoding.failures

    if summary.already_encoded or summary.encoded:
        merged = merge_shards(summary.shard_dir, options.out, keep_image_ids={item.image.image_id for item in files})
        summary.output_path = Path(options.out)
        summary.embeddings_written, summary.captions_written = len(merged), len(merged.captions)
    summary.seconds = time.monotonic() - started
    return summary
