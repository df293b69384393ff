"""Registers a checkpoint directory as a ModelVersion the worker can caption with."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from captioning.selectors import model_version_active
from captioning.services.model_preparation import demo_report_metrics
from captioning.services.model_versions import model_version_register


class Command(BaseCommand):
    help = "Register a captioning checkpoint (a directory with config.json) and optionally make it the active model."

    def add_arguments(self, parser):
        parser.add_argument(
            "checkpoint",
            nargs="?",
            help=f"checkpoint directory (default: CAPTION_MODEL_PATH, {settings.CAPTION_MODEL_PATH})",
        )
        parser.add_argument("--name", help="name shown in the pages (default: the directory's name)")
        parser.add_argument("--activate", action="store_true", help="caption new photos with this model from now on")
        parser.add_argument(
            "--if-none-active", action="store_true", help="do nothing when a model is active already (for `make run`)"
        )

    def handle(self, *args, checkpoint, name, activate, if_none_active, **options):
        active = model_version_active()
        if if_none_active and active is not None:
            self.stdout.write(f"Model {active.name!r} is active; nothing to do.")
            return
        path = Path(checkpoint or settings.CAPTION_MODEL_PATH)
        try:
            model_version = model_version_register(
                name=name or path.resolve().name,
                checkpoint_path=path,
                activate=activate or if_none_active,
                metrics=demo_report_metrics(path),
            )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        state = "active" if model_version.is_active else "registered, not active"
        self.stdout.write(
            self.style.SUCCESS(f"Model {model_version.name!r} ({model_version.checkpoint_path}): {state}.")
        )
