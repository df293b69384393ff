"""What a model's page says about it: where it comes from, what it was trained on, how it scored, how many
captions it wrote and how it judges whether a photo is like its training images."""

from dataclasses import dataclass

from captioning.models import Caption, ModelVersion

# mlcore's own names for these (mlcore.model.CLIPCAP_ORIGIN, mlcore.encoder.LOCAL_DIR_PREFIX): importing mlcore
# from the web or before a worker forks would load torch (tests/test_model_facts.py checks they agree).
CLIPCAP_ORIGIN = "clipcap-import:"
LOCAL_CLIP_PREFIX = "local-dir:"  # a CLIP trained here, kept in a folder
DEMO_NOTE = (
    "This is the offline demo model. It knows only coloured shapes (circles, squares, triangles and stars) on plain "
    "backgrounds: it was built on this machine from drawn pictures, never from photos. For an ordinary photo it "
    "can only guess at shapes that are not there, so such captions are marked as guesses. A model trained on "
    "photos is one command away: python manage.py install_model clipcap-coco --activate"
)
# Labels for the figures build_demo_model and evaluate_model report; other names are shown as they are.
METRIC_LABELS = {
    "object_accuracy": "Held-out captions naming every object correctly",
    "CLIPScore": "CLIPScore (caption against its image, 0 to 2.5)",
}
PERCENT_METRICS = {"object_accuracy"}


@dataclass(frozen=True)
class ModelFacts:
    model_version: ModelVersion
    source: str
    downloaded_files: list[dict]  # name, url, size, sha256 of what install_model downloaded
    trained_on: str
    metrics: list[tuple[str, str]]  # label, formatted value
    caption_count: int
    familiarity: str
    demo_note: str | None


def model_version_facts(model_version: ModelVersion) -> ModelFacts:
    metrics = model_version.metrics or {}
    return ModelFacts(
        model_version=model_version,
        source=_source(model_version),
        downloaded_files=list(metrics.get("files", [])),
        trained_on=model_version.trained_on or "not recorded in its checkpoint",
        metrics=_metric_rows(metrics.get("metrics", metrics)),
        caption_count=Caption.objects.filter(model_version=model_version, source=Caption.Source.MODEL).count(),
        familiarity=_familiarity(model_version.familiarity_reference),
        demo_note=DEMO_NOTE if model_version.is_demo else None,
    )


def _source(model_version: ModelVersion) -> str:
    origin = str(model_version.config.get("origin", ""))
    if origin.startswith(CLIPCAP_ORIGIN):
        return (
            f"ClipCap's released weights ({origin.removeprefix(CLIPCAP_ORIGIN)}, by the authors of ClipCap), "
            "converted into a CLIP-Pro checkpoint"
        )
    if model_version.is_demo:
        return "Built on this machine by manage.py build_demo_model, from nothing (no downloads)"
    return "Trained with CLIP-Pro (manage.py train_model)"


def _metric_rows(metrics: dict) -> list[tuple[str, str]]:
    rows = []
    for name, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        shown = f"{value:.1%}" if name in PERCENT_METRICS else f"{value:.3f}"
        rows.append((METRIC_LABELS.get(name, name), shown))
    return rows


def _familiarity(reference: dict) -> str:
    if not reference:
        return (
            "Unknown. Its checkpoint holds no sample of its training images (imported weights), so a photo cannot "
            "be compared with what it has seen: its captions are shown as they are, with familiarity unknown."
        )
    return (
        f"Each photo's CLIP embedding is compared with {reference['reference_images']:,} of its training images "
        "(how far it lies from their distribution, as a familiarity from 0 to 1). Below "
        f"{reference['threshold']:.3f} the caption is shown as a guess; {reference['held_out_confident']:.1%} of "
        f"{reference['held_out_images']:,} held-out images like its training images are above it."
    )
