"""COCO captions: the annotation files, the image downloads, and encoding a split into one embedding file.

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
from collections.abc import Callable, Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests
import torch
from PIL import Image
from tqdm import tqdm

from mlcore.data import EmbeddingSet
from mlcore.encoder import ClipEncoder, load_image
from mlcore.errors import DataError, ImageDecodeError

ANNOTATIONS_ZIP_NAME = "annotations_trainval2017.zip"
COCO_SPLITS = ("train", "val")
# Karpathy's `restval` images are the part of val2014 that his split trains on.
KARPATHY_SPLITS: dict[str, frozenset[str]] = {
    "train": frozenset({"train", "restval"}),
    "val": frozenset({"val"}),
    "test": frozenset({"test"}),
}
CAPTIONS_MEMBER = re.compile(r"annotations/captions_(train|val)2017\.json")
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CORRUPT_IMAGE = "corrupt image"
SHARD_PATTERN = "shard-*.safetensors"


class DownloadError(DataError):
    """A file could not be downloaded; `reason` is short enough to count failures by."""

    def __init__(self, url: str, reason: str, advice: str = ""):
        self.url = url
        self.reason = reason
        super().__init__(f"could not download {url}: {reason}" + (f". {advice}" if advice else ""))


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
    def relative_path(self) -> str:
        return f"{self.folder}/{self.image.file_name}"

    def path(self, images_root: Path) -> Path:
        return images_root / self.folder / self.image.file_name

    def url(self, images_base_url: str) -> str:
        return f"{images_base_url.rstrip('/')}/{self.relative_path}"


@dataclass(frozen=True)
class DownloadPolicy:
    timeout_seconds: float = 30.0
    retries: int = 4
    backoff_seconds: float = 1.0  # waits 1, 2, 4, ... seconds between attempts

    @property
    def attempts(self) -> int:
        return self.retries + 1


@dataclass(frozen=True)
class ImageFailure:
    image_id: int
    where: str  # the URL or file that failed
    reason: str


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


def download_file(
    session: requests.Session,
    url: str,
    destination: Path,
    policy: DownloadPolicy,
    validate: Callable[[Path], str | None] | None = None,
    progress_bar: tqdm | None = None,
) -> None:
    """Downloads into `destination` (via a `.part` file, so a present file is always complete).

    Server errors, timeouts and dropped connections are retried with exponential backoff; other HTTP
    errors and content that `validate` rejects fail at once.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    problem = ""
    for attempt in range(policy.attempts):
        if attempt:
            time.sleep(policy.backoff_seconds * 2 ** (attempt - 1))
        try:
            with session.get(url, stream=True, timeout=policy.timeout_seconds) as response:
                if response.status_code in RETRYABLE_STATUS:
                    problem = f"HTTP {response.status_code}"
                    continue
                if response.status_code >= 400:
                    raise DownloadError(url, f"HTTP {response.status_code}")
                if progress_bar is not None and response.headers.get("Content-Length", "").isdigit():
                    progress_bar.reset(total=int(response.headers["Content-Length"]))
                with partial.open("wb") as handle:
                    for chunk in response.iter_content(chunk_size=1 << 16):
                        handle.write(chunk)
                        if progress_bar is not None:
                            progress_bar.update(len(chunk))
        except requests.Timeout:
            problem = "timed out"
            continue
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
            problem = "connection failed"
            continue
        rejected = validate(partial) if validate else None
        if rejected:
            partial.unlink(missing_ok=True)
            raise DownloadError(url, rejected)
        partial.replace(destination)
        return
    partial.unlink(missing_ok=True)
    raise DownloadError(url, f"{problem} after {policy.attempts} attempts")


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


# --- encoding into shards -----------------------------------------------------------------------


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
    files: Sequence[CocoImageFile], images_root: Path, encoder: ClipEncoder, batch_size: int, workers: int
) -> Iterator[list[tuple[CocoImageFile, torch.Tensor | None]]]:
    """Batches of (file, pixels or None when undecodable); worker threads decode and preprocess the next
    batch while the caller encodes this one."""
    batches = [files[start : start + batch_size] for start in range(0, len(files), batch_size)]
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="coco-decode")

    def submit(batch: Sequence[CocoImageFile]) -> list[Future]:
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
    files: Sequence[CocoImageFile],
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
                ImageFailure(item.image.image_id, str(item.path(images_root)), CORRUPT_IMAGE)
                for item, pixels in batch
                if pixels is None
            ]
            if decoded:
                embeddings = encoder.encode_pixels(torch.stack([pixels for _, pixels in decoded]))
                shard = EmbeddingSet.from_images(
                    embeddings,
                    image_ids=[item.image.image_id for item, _ in decoded],
                    file_names=[item.relative_path for item, _ in decoded],
                    captions_per_image=[item.image.captions for item, _ in decoded],
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
