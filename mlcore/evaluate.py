"""Measuring a captioner: the COCO caption metrics and CLIPScore.

BLEU-1..4, METEOR, ROUGE-L, CIDEr and SPICE come from pycocoevalcap, the reference implementation the
COCO caption evaluation uses, on captions tokenised by its Stanford PTB tokenizer (lower-cased,
punctuation removed), so figures compare with published ones. Values are fractions as pycocoevalcap
returns them (papers usually print them x100). The tokenizer, METEOR and SPICE are Java programs.

SPICE needs Stanford CoreNLP 3.6.0, which pycocoevalcap downloads on first use. That download is never
attempted here: SPICE runs only when its jars are already in place, and is otherwise reported as skipped
with a note saying which files to put where (`spice_status()`).

CLIPScore (Hessel et al. 2021, mlcore.clipscore) is reported beside them.
"""

import json
import math
import shutil
import subprocess
import tempfile
import textwrap
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pycocoevalcap.spice
import torch
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer
from tqdm import tqdm

from mlcore.captioner import Captioner
from mlcore.clipscore import CLIPSCORE_PROMPT, CLIPSCORE_WEIGHT, caption_clip_scores
from mlcore.data import EmbeddingSet
from mlcore.encoder import load_image, resolve_clip_name
from mlcore.errors import (
    CheckpointError,
    EmbeddingSizeError,
    ImageDecodeError,
    MetricInputError,
    MlcoreError,
    ModelUnavailableError,
)
from mlcore.generate import DecodingOptions

BLEU_NAMES = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
METRIC_NAMES = (*BLEU_NAMES, "METEOR", "ROUGE-L", "CIDEr", "SPICE", "CLIPScore")


SPICE_DIR = Path(pycocoevalcap.spice.__file__).parent
SPICE_JAR = "spice-1.0.jar"
CORENLP_JARS = ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar")
CORENLP_URL = "http://nlp.stanford.edu/software/stanford-corenlp-full-2015-12-09.zip"
SPICE_MEMORY = "-Xmx8G"


class MetricUnavailableError(MlcoreError):
    """A metric's external program (Java, SPICE's CoreNLP jars) is missing or failed."""


# ---------------------------------------------------------------------------------------------------
# Caption metrics (pycocoevalcap)


@dataclass(frozen=True)
class SpiceStatus:
    available: bool
    reason: str  # why SPICE cannot run, and how to enable it; empty when available


def spice_status() -> SpiceStatus:
    """Whether SPICE can run now. Only looks for files: never downloads, never starts Java."""
    if shutil.which("java") is None:
        return SpiceStatus(False, "SPICE skipped: no `java` on PATH; install a Java runtime (8 or newer).")
    lib_dir = SPICE_DIR / "lib"
    missing = [name for name in CORENLP_JARS if not (lib_dir / name).is_file()]
    if not (SPICE_DIR / SPICE_JAR).is_file():
        missing.insert(0, SPICE_JAR)
    if not missing:
        return SpiceStatus(True, "")
    return SpiceStatus(
        False,
        f"SPICE skipped: Stanford CoreNLP 3.6.0 is not installed (missing {', '.join(missing)} in {lib_dir}). "
        f"To enable it, take {' and '.join(CORENLP_JARS)} from {CORENLP_URL} and put them in {lib_dir}; "
        "on a machine with internet access, `python -c 'from pycocoevalcap.spice.get_stanford_models import "
        "get_stanford_models; get_stanford_models()'` does it. SPICE's Java process needs about 8 GB of memory.",
    )


@dataclass
class CaptionScores:
    corpus: dict[str, float]  # the figures papers report
    per_image: dict[int, dict[str, float]]
    skipped: dict[str, str] = field(default_factory=dict)  # metric -> why it was not computed


def caption_metrics(
    predictions: Mapping[int, str], references: Mapping[int, Sequence[str]], spice: bool | None = None
) -> dict[str, float]:
    """Corpus-level BLEU-1..4, METEOR, ROUGE-L, CIDEr, and SPICE when available. See `score_captions`."""
    return score_captions(predictions, references, spice).corpus


def score_captions(
    predictions: Mapping[int, str], references: Mapping[int, Sequence[str]], spice: bool | None = None
) -> CaptionScores:
    """Scores one predicted caption per image against that image's reference captions.

    `spice`: None runs SPICE when its jars are installed and otherwise records why it was skipped;
    True requires it (raises `MetricUnavailableError` before any work if it cannot run); False skips it.
    """
    image_ids = check_caption_inputs(predictions, references)
    status = (
        spice_status()
        if spice is not False
        else SpiceStatus(False, "SPICE skipped: turned off (spice=False, or --spice off).")
    )
    if spice and not status.available:
        raise MetricUnavailableError(status.reason)
    if shutil.which("java") is None:
        raise MetricUnavailableError(
            "caption metrics need Java (the PTB tokenizer and METEOR are Java programs); install a Java "
            "runtime, e.g. `apt install default-jre-headless`"
        )

    tokenized_predictions, tokenized_references = _tokenize(image_ids, predictions, references)
    corpus: dict[str, float] = {}
    per_image: dict[int, dict[str, float]] = {image_id: {} for image_id in image_ids}

    def record(name: str, corpus_score: float, image_scores: Sequence[float]) -> None:
        corpus[name] = float(corpus_score)
        for image_id, score in zip(image_ids, image_scores, strict=True):
            per_image[image_id][name] = float(score)

    bleu, bleu_per_image = Bleu(4).compute_score(tokenized_references, tokenized_predictions, verbose=0)
    for name, score, image_scores in zip(BLEU_NAMES, bleu, bleu_per_image, strict=True):
        record(name, score, image_scores)
    record("METEOR", *_meteor_score(tokenized_references, tokenized_predictions))
    record("ROUGE-L", *Rouge().compute_score(tokenized_references, tokenized_predictions))
    record("CIDEr", *Cider().compute_score(tokenized_references, tokenized_predictions))

    skipped: dict[str, str] = {}
    if status.available:
        try:
            record("SPICE", *_spice_score(image_ids, tokenized_references, tokenized_predictions))
        except MetricUnavailableError as error:
            if spice:
                raise
            skipped["SPICE"] = f"SPICE skipped: {error}"
    else:
        skipped["SPICE"] = status.reason
    return CaptionScores(corpus, per_image, skipped)


def check_caption_inputs(predictions: Mapping[int, str], references: Mapping[int, Sequence[str]]) -> list[int]:
    """The image ids to score, in the order of `references`; raises `MetricInputError` on unusable inputs."""
    if not references:
        raise MetricInputError("nothing to score: no images with reference captions")
    missing = [image_id for image_id in references if image_id not in predictions]
    extra = [image_id for image_id in predictions if image_id not in references]
    if missing or extra:
        problems = []
        if missing:
            problems.append(f"no prediction for images {_some(missing)}")
        if extra:
            problems.append(f"no references for images {_some(extra)}")
        raise MetricInputError("predictions and references must cover the same images: " + "; ".join(problems))
    for image_id, captions in references.items():
        if isinstance(captions, str):
            raise MetricInputError(f"references of image {image_id} must be a list of captions, not one string")
        if not captions:
            raise MetricInputError(f"image {image_id} has an empty list of reference captions")
        for index, caption in enumerate(captions):
            if not isinstance(caption, str) or not caption.strip():
                raise MetricInputError(f"reference {index} of image {image_id} is empty or not a string")
        if not isinstance(predictions[image_id], str):
            raise MetricInputError(f"the prediction for image {image_id} is not a string")
    return list(references)


def _some(items: Sequence[int], shown: int = 5) -> str:
    listed = ", ".join(str(item) for item in items[:shown])
    return f"{listed} (and {len(items) - shown} more)" if len(items) > shown else listed


def _tokenize(
    image_ids: Sequence[int], predictions: Mapping[int, str], references: Mapping[int, Sequence[str]]
) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
    """Predictions and references through the PTB tokenizer in one Java run."""
    # The tokenizer keeps one caption per line; any line break inside a caption would shift every
    # caption after it onto the wrong image.
    combined = {}
    for image_id in image_ids:
        combined[("reference", image_id)] = [{"caption": _one_line(text)} for text in references[image_id]]
        combined[("prediction", image_id)] = [{"caption": _one_line(predictions[image_id])}]
    tokenized = PTBTokenizer().tokenize(combined)
    for key, captions in combined.items():
        if len(tokenized.get(key, ())) != len(captions):
            raise MetricUnavailableError(
                f"the PTB tokenizer returned {len(tokenized.get(key, ()))} lines for {key[0]} of image {key[1]}, "
                f"expected {len(captions)}; check that Java runs (`java -version`)"
            )
    return (
        {image_id: tokenized[("prediction", image_id)] for image_id in image_ids},
        {image_id: tokenized[("reference", image_id)] for image_id in image_ids},
    )


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


# METEOR's Java process loads a large paraphrase table on start (~10 s), so one process serves every
# call in this Python process (training evaluates each epoch; the tests score many small corpora).
_meteor_lock = threading.Lock()
_meteor: Meteor | None = None


def _meteor_score(references: dict[int, list[str]], predictions: dict[int, list[str]]) -> tuple[float, list[float]]:
    global _meteor
    with _meteor_lock:
        if _meteor is None or _meteor.meteor_p.poll() is not None:
            _meteor = Meteor()
        try:
            return _meteor.compute_score(references, predictions)
        except (ValueError, OSError) as error:
            _meteor = None
            raise MetricUnavailableError(f"METEOR's Java process failed: {error!r}") from error


def _spice_score(
    image_ids: Sequence[int], references: dict[int, list[str]], predictions: dict[int, list[str]]
) -> tuple[float, list[float]]:
    """Runs the SPICE jar as pycocoevalcap does, but without its LMDB parse cache, which fails on Java 9+
    (its serialiser reflects into java.lang), and with the Java error kept for the message."""
    with tempfile.TemporaryDirectory(prefix="clippro-spice-") as folder:
        input_path, output_path = Path(folder) / "input.json", Path(folder) / "output.json"
        items = [
            {"image_id": image_id, "test": predictions[image_id][0], "refs": references[image_id]}
            for image_id in image_ids
        ]
        input_path.write_text(json.dumps(items))
        command = ["java", "-jar", SPICE_MEMORY, SPICE_JAR, str(input_path), "-out", str(output_path)]
        completed = subprocess.run(
            [*command, "-subset", "-silent"], cwd=SPICE_DIR, capture_output=True, text=True, check=False
        )
        if completed.returncode != 0 or not output_path.is_file():
            raise MetricUnavailableError(
                f"the SPICE jar exited with status {completed.returncode}: {_java_error(completed.stderr or completed.stdout)}"
            )
        results = {item["image_id"]: item["scores"]["All"]["f"] for item in json.loads(output_path.read_text())}
    image_scores = [_float_or_nan(results.get(image_id)) for image_id in image_ids]
    return sum(image_scores) / len(image_scores), image_scores


def _java_error(output: str) -> str:
    """The exception lines of a Java stack trace, without the `at ...` frames."""
    lines = [line.strip() for line in output.strip().splitlines()]
    errors = [line for line in lines if ("Exception" in line or "Error" in line) and not line.startswith("at ")]
    return " | ".join(errors[:3] or lines[-3:])


def _float_or_nan(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------------------------------------------
# Evaluating a captioner


@dataclass(frozen=True)
class ReferenceImage:
    """An image file and its reference captions, for evaluating on images rather than stored embeddings."""

    image_id: int
    path: Path
    captions: Sequence[str]


@dataclass
class Prediction:
    image_id: int
    file_name: str
    caption: str
    score: float  # the decoder's mean log-probability per token
    metrics: dict[str, float]


@dataclass
class EvaluationReport:
    metrics: dict[str, float]
    skipped_metrics: dict[str, str]
    predictions: list[Prediction]
    settings: dict
    checkpoint: dict
    timings: dict[str, float]
    skipped_images: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return _without_nan(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(self.to_json())
        temporary.replace(path)
        return path

    def summary(self, examples: int = 3) -> str:
        """A one-screen table: the metrics, what was skipped and why, timings and a few captions."""
        decoding = self.settings.get("decoding", {})
        lines = [
            f"Evaluated {len(self.predictions)} images ({self.settings.get('dataset', {}).get('kind', '?')}), "
            f"decoding {_describe_decoding(decoding)}",
            "",
        ]
        for name in METRIC_NAMES:
            if name in self.metrics:
                lines.append(f"  {name:<10} {self.metrics[name]:8.4f}")
            elif name in self.skipped_metrics:
                lines.append(f"  {name:<10} {'skipped':>8}  (see the note below)")
        timings = self.timings
        lines += [
            "",
            f"Captioning {timings.get('caption_seconds', 0):.1f} s ({timings.get('images_per_second', 0):.1f} images/s), "
            f"metrics {timings.get('caption_metrics_seconds', 0):.1f} s, total {timings.get('total_seconds', 0):.1f} s",
        ]
        if self.skipped_images:
            lines.append(f"{len(self.skipped_images)} images skipped (listed in the report's skipped_images)")
        lines += [_wrap(f"Note: {text}") for text in self.skipped_metrics.values()]
        lines += [_wrap(f"Warning: {text}") for text in self.warnings]
        if examples and self.predictions:
            lines += ["", "Examples:"]
            lines += [f"  {item.image_id:>12}  {item.caption}" for item in self.predictions[:examples]]
        return "\n".join(lines)


def evaluate_captioner(
    captioner: Captioner,
    dataset: EmbeddingSet | Sequence[ReferenceImage],
    options: DecodingOptions | None = None,
    *,
    batch_size: int | None = None,
    max_images: int | None = None,
    spice: bool | None = None,
    progress: bool = False,
) -> EvaluationReport:
    """Captions every image of a validation set and scores the captions.

    `dataset` is an embedding file's contents (`EmbeddingSet`, as `encode_coco` writes) or image files
    with their references; unreadable images are skipped and listed in the report. CLIPScore uses the
    image embeddings (stored or computed) and the captioner's CLIP text tower; when that CLIP cannot be
    loaded, CLIPScore is skipped with the reason.
    """
    options = captioner.decoding_options(options)
    if max_images is not None and max_images < 1:
        raise MetricInputError(f"max_images must be at least 1, got {max_images}")
    started = time.perf_counter()
    timings: dict[str, float] = {}
    warnings: list[str] = []
    skipped_images: list[dict[str, str]] = []

    if isinstance(dataset, EmbeddingSet):
        count = len(dataset) if max_images is None else min(max_images, len(dataset))
        embeddings = dataset.embeddings[:count]
        image_ids, file_names = dataset.image_ids[:count], dataset.file_names[:count]
        references_by_id = _validated_references(image_ids, dataset.captions_by_image()[:count])
        dataset_settings = {"kind": "embeddings", "clip_model": dataset.clip_model, "metadata": dataset.metadata}
        if not _same_clip(dataset.clip_model, None, captioner.config.clip_model, captioner.checkpoint_dir):
            warnings.append(
                f"the embeddings were made with CLIP {dataset.clip_model!r} but the captioner uses "
                f"{captioner.config.clip_model!r}; captions and CLIPScore assume they are the same model"
            )
    else:
        images = list(dataset)[:max_images]
        all_references = _validated_references([item.image_id for item in images], [item.captions for item in images])
        embed_started = time.perf_counter()
        embeddings, kept = _embed_image_files(captioner, images, batch_size or 32, skipped_images, progress)
        timings["embed_images_seconds"] = time.perf_counter() - embed_started
        image_ids = [item.image_id for item in kept]
        file_names = [item.path.name for item in kept]
        references_by_id = {image_id: all_references[image_id] for image_id in image_ids}
        dataset_settings = {"kind": "images", "clip_model": captioner.config.clip_model}
        if not kept:
            raise MetricInputError(f"none of the {len(images)} images could be read: {skipped_images[:3]}")

    if embeddings.shape[1] != captioner.embedding_size:
        raise EmbeddingSizeError(
            f"the dataset holds {embeddings.shape[1]}-d CLIP embeddings ({dataset_settings['clip_model']}) but "
            f"the captioner expects {captioner.embedding_size}-d ones ({captioner.config.clip_model})"
        )

    caption_started = time.perf_counter()
    results = []
    step = batch_size or 64
    with tqdm(total=len(image_ids), desc="captioning", unit="image", disable=not progress) as bar:
        for start in range(0, len(image_ids), step):
            chunk = captioner.caption_embeddings(embeddings[start : start + step], options, batch_size=batch_size)
            results.extend(chunk)
            bar.update(len(chunk))
    timings["caption_seconds"] = time.perf_counter() - caption_started
    timings["images_per_second"] = len(results) / max(timings["caption_seconds"], 1e-9)

    predictions_by_id = {image_id: result.text for image_id, result in zip(image_ids, results, strict=True)}
    metrics_started = time.perf_counter()
    scores = score_captions(predictions_by_id, references_by_id, spice)
    timings["caption_metrics_seconds"] = time.perf_counter() - metrics_started
    metrics = dict(scores.corpus)
    skipped_metrics = dict(scores.skipped)

    clip_started = time.perf_counter()
    try:
        clip_scores = caption_clip_scores(captioner, embeddings, [result.text for result in results])
        metrics["CLIPScore"] = clip_scores.mean
        for image_id, value in zip(image_ids, clip_scores.per_item, strict=True):
            scores.per_image[image_id]["CLIPScore"] = value
    except (ModelUnavailableError, CheckpointError) as error:
        skipped_metrics["CLIPScore"] = f"CLIPScore skipped: the captioner's CLIP could not be loaded ({error})"
    timings["clip_score_seconds"] = time.perf_counter() - clip_started
    timings["total_seconds"] = time.perf_counter() - started

    predictions = [
        Prediction(image_id, file_name, result.text, result.score, scores.per_image[image_id])
        for image_id, file_name, result in zip(image_ids, file_names, results, strict=True)
    ]
    settings = {
        "dataset": {
            **dataset_settings,
            "images": len(image_ids),
            "references": sum(map(len, references_by_id.values())),
        },
        "decoding": options.to_dict(),
        "batch_size": batch_size,
        "max_images": max_images,
        "device": str(captioner.device),
        "spice": {None: "auto", True: "required", False: "off"}[spice],
        "clipscore": {"weight": CLIPSCORE_WEIGHT, "prompt": CLIPSCORE_PROMPT},
    }
    return EvaluationReport(
        metrics=metrics,
        skipped_metrics=skipped_metrics,
        predictions=predictions,
        settings=settings,
        checkpoint=checkpoint_summary(captioner),
        timings=timings,
        skipped_images=skipped_images,
        warnings=warnings,
    )


def reference_images_in_folder(images: Sequence, folder: str | Path) -> tuple[list[ReferenceImage], dict[str, int]]:
    """Annotated images (anything with `image_id`, `file_name`, `captions`, like `mlcore.coco.CocoImage`)
    whose files are in `folder`, in annotation order; counts what was left out. A validation folder often
    holds only the first N images of the annotation file, so absent files are counted, not errors."""
    folder = Path(folder)
    found: list[ReferenceImage] = []
    left_out = {"not_in_folder": 0, "without_captions": 0}
    for image in images:
        path = folder / image.file_name
        if not image.captions:
            left_out["without_captions"] += 1
        elif not path.is_file():
            left_out["not_in_folder"] += 1
        else:
            found.append(ReferenceImage(image.image_id, path, list(image.captions)))
    return found, left_out


def checkpoint_summary(captioner: Captioner) -> dict:
    """The checkpoint's config without GPT-2's full hyperparameters (its size is kept)."""
    config = captioner.config.to_dict()
    gpt2_config = config.pop("gpt2_config", {})
    config["gpt2_size"] = {key: gpt2_config.get(key) for key in ("n_layer", "n_embd", "n_head", "vocab_size")}
    config["path"] = str(captioner.checkpoint_dir) if captioner.checkpoint_dir else None
    return config


def _validated_references(image_ids: Sequence[int], references: Sequence[Sequence[str]]) -> dict[int, list[str]]:
    """Checked before any captioning, so a bad dataset fails in seconds rather than after the whole run."""
    by_id: dict[int, list[str]] = {}
    for image_id, captions in zip(image_ids, references, strict=True):
        if image_id in by_id:
            raise MetricInputError(f"image id {image_id} appears twice in the dataset")
        by_id[image_id] = list(captions)
    check_caption_inputs(dict.fromkeys(by_id, ""), by_id)
    return by_id


def _embed_image_files(
    captioner: Captioner,
    images: Sequence[ReferenceImage],
    batch_size: int,
    skipped_images: list[dict[str, str]],
    progress: bool,
) -> tuple[torch.Tensor, list[ReferenceImage]]:
    chunks: list[torch.Tensor] = []
    kept: list[ReferenceImage] = []
    with tqdm(total=len(images), desc="embedding", unit="image", disable=not progress) as bar:
        for start in range(0, len(images), batch_size):
            loaded = []
            for item in images[start : start + batch_size]:
                try:
                    loaded.append((item, load_image(item.path)))
                except ImageDecodeError as error:
                    skipped_images.append(
                        {"image_id": str(item.image_id), "file": str(item.path), "reason": str(error)}
                    )
            if loaded:
                chunks.append(captioner.embed([image for _, image in loaded], batch_size=batch_size))
                kept.extend(item for item, _ in loaded)
            bar.update(min(batch_size, len(images) - start))
    embeddings = torch.cat(chunks) if chunks else torch.empty(0, captioner.embedding_size)
    return embeddings, kept


def _same_clip(first: str, first_base: Path | None, second: str, second_base: Path | None) -> bool:
    """Whether two spellings name the same CLIP (`ViT-B/32` and `ViT-B-32-quickgelu:openai` do)."""

    def identity(name: str, base_dir: Path | None) -> tuple[str, str | None]:
        try:
            source = resolve_clip_name(name, base_dir)
        except MlcoreError:
            return name, None
        return source.open_clip_model, source.pretrained

    return first == second or identity(first, first_base) == identity(second, second_base)


def _describe_decoding(decoding: dict) -> str:
    strategy = decoding.get("strategy", "beam")
    if strategy == "beam":
        return f"beam search (beam size {decoding.get('beam_size')})"
    if strategy == "sample":
        details = [f"{key} {decoding[key]}" for key in ("temperature", "top_p", "top_k", "seed") if key in decoding]
        return "sampling (" + ", ".join(details) + ")"
    return strategy


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, subsequent_indent="  ", break_long_words=False, break_on_hyphens=False)


def _without_nan(value):
    """JSON has no NaN: a metric that could not be computed for an image (SPICE can) becomes null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nan(item) for item in value]
    return value
