from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from captioning import jobs
from captioning.models import ModelVersion, Photo


def model_version_register(
    *, name: str, checkpoint_path: Path | str, activate: bool = False, metrics: dict | None = None
) -> ModelVersion:
    """Registers a checkpoint directory (its config and what its familiarity reference holds are read and
    stored), or updates the one of that name."""
    from mlcore import MlcoreError
    from mlcore.checkpoint import read_config
    from mlcore.familiarity import describe, load_reference

    checkpoint_path = Path(checkpoint_path).expanduser().resolve()
    try:
        config = read_config(checkpoint_path).to_dict()
        familiarity_reference = describe(load_reference(checkpoint_path))
    except MlcoreError as error:
        raise ValidationError(str(error)) from None
    with transaction.atomic():
        model_version, _created = ModelVersion.objects.update_or_create(
            name=name,
            defaults={
                "checkpoint_path": str(checkpoint_path),
                "config": config,
                "familiarity_reference": familiarity_reference,
                **({"metrics": metrics} if metrics else {}),
            },
        )
        if activate:
            model_version_activate(model_version=model_version)
    return model_version


@transaction.atomic
def model_version_activate(*, model_version: ModelVersion) -> ModelVersion:
    """New photos are captioned by this model from now on. Photos that failed for want of a model are queued
    again (existing captions stay as they are: re-caption them to use the new model)."""
    ModelVersion.objects.filter(is_active=True).exclude(pk=model_version.pk).update(is_active=False)
    ModelVersion.objects.filter(pk=model_version.pk).update(is_active=True)
    model_version.is_active = True
    jobs.retry_failed(photos=Photo.objects.filter(failure_kind=Photo.FailureKind.NO_MODEL))
    return model_version


def model_version_install(
    *,
    name: str,
    checkpoint_path: Path | str,
    downloads_path: Path | str,
    activate: bool = False,
    clip_source: str | None = None,
    gpt2_source: Path | str | None = None,
    progress: bool = True,
) -> ModelVersion:
    """Downloads a catalogue model (mlcore/catalogue.json), converts it into a checkpoint and registers it.
    The size and sha256 of every file it came from are kept in the model version's metrics under "files".
    Raises mlcore's errors (unknown name, download failed, weights unreadable) with what to do about each."""
    from mlcore.pretrained import catalogue_entry, install_pretrained

    entry = catalogue_entry(name)
    files = install_pretrained(
        entry,
        Path(checkpoint_path),
        Path(downloads_path),
        clip_source=clip_source,
        gpt2_source=Path(gpt2_source) if gpt2_source else None,
        progress=progress,
    )
    return model_version_register(
        name=name,
        checkpoint_path=checkpoint_path,
        activate=activate,
        metrics={"files": [record.to_dict() for record in files]},
    )
