"""Which model `make run` captions with, prepared in the background while the site is already up.

`model_prepare` makes CAPTION_MODEL the active model: a registered model of that name is activated at once;
a catalogue name (mlcore/catalogue.json) is downloaded and installed; a checkpoint directory is registered;
"demo" is the offline demo model, built once into CAPTION_MODEL_PATH. When the requested model cannot be had
(offline, its downloads fail within seconds), the demo model is prepared instead and the reason is kept.

How far it got lives in one small JSON file in CLIPPRO_DATA_DIR, written by this module only, each time as a
whole new file (a reader never sees half of one). The preparation runs in its own process (`manage.py serve
--prepare-model`) and reports several times a second while the demo builds; a file takes no database lock
that uploads would wait for, and every page can read it for nothing.
"""

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from captioning.models import ModelVersion
from captioning.services.model_versions import model_version_activate, model_version_install, model_version_register

logger = logging.getLogger(__name__)

DEMO_MODEL_NAME = "demo"
PREPARATION_FILE = "model_preparation.json"
# Progress is written at most this often (and whenever the stage changes), for a reader refreshing a page.
PROGRESS_WRITE_SECONDS = 0.5


class PreparationState(StrEnum):
    PREPARING = "preparing"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelPreparation:
    requested: str  # CAPTION_MODEL
    state: PreparationState
    stage: str = ""  # what is being done, in words: "training the demo CLIP"
    fraction: float | None = None  # of the stage; None when unknown
    model_name: str = ""  # the model made active, once ready
    fallback_reason: str = ""  # why the model in use is not the requested one
    error: str = ""  # why no model could be prepared

    @property
    def summary(self) -> str:
        """One line for the pages: "Preparing the captioning model: training the demo CLIP, 40%"."""
        if self.state == PreparationState.PREPARING:
            done = f", {self.fraction:.0%}" if self.fraction is not None else ""
            return f"Preparing the captioning model: {self.stage}{done}. Uploads are captioned once it is ready."
        if self.state == PreparationState.FAILED:
            return f"No captioning model could be prepared: {self.error}"
        return f"Captioning with {self.model_name}."


class ModelUnobtainable(Exception):
    """The requested model cannot be had here; the message says why."""


class ModelPreparationFailed(Exception):
    """Neither the requested model nor the demo could be prepared."""


def model_preparation_path() -> Path:
    return Path(settings.DATA_DIR) / PREPARATION_FILE


def model_preparation_get() -> ModelPreparation | None:
    """The last preparation `make run` started, or None when none was (or its file is unreadable)."""
    try:
        values = json.loads(model_preparation_path().read_text())
        return ModelPreparation(**{**values, "state": PreparationState(values["state"])})
    except (OSError, ValueError, TypeError, KeyError):
        return None


def _write(preparation: ModelPreparation) -> ModelPreparation:
    path = model_preparation_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(asdict(preparation)))
    os.replace(partial, path)
    return preparation


class _ProgressWriter:
    """Writes the PREPARING state: every stage change, and progress within a stage at most twice a second."""

    def __init__(self, requested: str):
        self.current = ModelPreparation(requested=requested, state=PreparationState.PREPARING)
        self.written_at = 0.0

    def __call__(self, stage: str, fraction: float | None = None) -> None:
        now = time.monotonic()
        if stage == self.current.stage and fraction != 1.0 and now - self.written_at < PROGRESS_WRITE_SECONDS:
            return
        self.current = _write(replace(self.current, stage=stage, fraction=fraction))
        self.written_at = now

    def fall_back(self, reason: str) -> None:
        self.current = _write(replace(self.current, fallback_reason=reason))


def model_prepare(*, requested: str, log: Callable[[str], None] = logger.info) -> ModelPreparation:
    """Makes `requested` (CAPTION_MODEL) the active model, or the demo model when it cannot be had here.
    Records each step for the pages; raises ModelPreparationFailed (also recorded) when no model could be made."""
    progress = _ProgressWriter(requested)
    progress(f"looking for {requested}")
    fallback_reason = ""
    try:
        try:
            model_version = _requested_model(requested, progress, log)
        except ModelUnobtainable as error:
            fallback_reason = str(error)
            log(f"{fallback_reason}. Using the offline demo model instead.")
            progress.fall_back(fallback_reason)
            model_version = _demo_model(progress, log)
    except ModelPreparationFailed as error:
        _write(replace(progress.current, state=PreparationState.FAILED, error=str(error)))
        raise
    return _write(
        ModelPreparation(
            requested=requested,
            state=PreparationState.READY,
            model_name=model_version.name,
            fallback_reason=fallback_reason,
        )
    )


def model_preparation_interrupted(*, reason: str) -> None:
    """A preparation whose process died records that it stopped, so the pages stop showing it as under way."""
    preparation = model_preparation_get()
    if preparation is not None and preparation.state == PreparationState.PREPARING:
        _write(replace(preparation, state=PreparationState.FAILED, error=reason))


def _requested_model(requested: str, progress: _ProgressWriter, log: Callable[[str], None]) -> ModelVersion:
    from mlcore import MlcoreError
    from mlcore.pretrained import read_catalogue

    registered = ModelVersion.objects.filter(name=requested).first()
    if registered is not None and _is_checkpoint(Path(registered.checkpoint_path)):
        return model_version_activate(model_version=registered)
    if requested == DEMO_MODEL_NAME:
        return _demo_model(progress, log)
    if requested in read_catalogue():
        progress(f"downloading {requested}")
        models_dir = Path(settings.DATA_DIR) / "models"
        try:
            return model_version_install(
                name=requested,
                checkpoint_path=models_dir / requested,
                downloads_path=models_dir / "downloads",
                activate=True,
            )
        except (MlcoreError, ValidationError) as error:
            raise ModelUnobtainable(f"{requested} could not be installed: {_message(error)}") from None
    path = Path(requested).expanduser()
    if _is_checkpoint(path):
        return _register(path.resolve().name, path)
    raise ModelUnobtainable(
        f"CAPTION_MODEL={requested!r} is not a model in the catalogue ({', '.join(read_catalogue())}), "
        f"{DEMO_MODEL_NAME!r}, a registered model, nor a checkpoint directory"
    )


def _demo_model(progress: _ProgressWriter, log: Callable[[str], None]) -> ModelVersion:
    from mlcore import MlcoreError
    from mlcore.demo import build_demo_model

    path = Path(settings.CAPTION_MODEL_PATH)
    if not _is_checkpoint(path):
        log(f"Building the demo captioning model into {path} (a few minutes, once).")
        try:
            build_demo_model(path, log=log, on_progress=progress)
        except (MlcoreError, ValueError, OSError) as error:
            raise ModelPreparationFailed(f"the demo model could not be built: {error}") from error
    return _register(DEMO_MODEL_NAME, path)


def _register(name: str, path: Path) -> ModelVersion:
    try:
        return model_version_register(name=name, checkpoint_path=path, activate=True, metrics=demo_report_metrics(path))
    except ValidationError as error:
        raise ModelPreparationFailed(f"{path} could not be registered: {_message(error)}") from None


def demo_report_metrics(checkpoint: Path) -> dict | None:
    """The evaluation `build_demo_model` stores next to the demo checkpoint, shown with the model version."""
    from mlcore.demo import DEMO_REPORT_FILE

    report_path = Path(checkpoint) / DEMO_REPORT_FILE
    if not report_path.is_file():
        return None
    report = json.loads(report_path.read_text())
    return {"object_accuracy": report["object_accuracy"], **report["metrics"]}


def _is_checkpoint(path: Path) -> bool:
    return (path / "config.json").is_file()  # mlcore.checkpoint.CONFIG_FILE; importing mlcore loads torch


def _message(error: Exception) -> str:
    return " ".join(error.messages) if isinstance(error, ValidationError) else str(error)
