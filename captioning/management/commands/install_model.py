"""Installs a published pretrained captioner from the catalogue (mlcore/catalogue.json) in one command."""

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from captioning.services.model_versions import model_version_install
from mlcore import MlcoreError
from mlcore.pretrained import read_catalogue


class Command(BaseCommand):
    help = (
        "Download a pretrained captioner from the catalogue (weights, GPT-2 tokenizer, CLIP), convert it into a "
        "checkpoint and register it. Interrupted downloads resume. --list shows the catalogue."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="catalogue name, e.g. clipcap-coco (see --list)")
        parser.add_argument("--list", action="store_true", dest="list_catalogue", help="show the catalogue and exit")
        parser.add_argument("--activate", action="store_true", help="caption new photos with this model from now on")
        parser.add_argument("--out", type=Path, help="checkpoint directory (default: CLIPPRO_DATA_DIR/models/NAME)")
        parser.add_argument(
            "--downloads",
            type=Path,
            help="where downloaded files are kept and resumed (default: CLIPPRO_DATA_DIR/models/downloads)",
        )
        parser.add_argument(
            "--clip-source", help="use this CLIP instead of the catalogue's (e.g. local-dir:/path), without download"
        )
        parser.add_argument(
            "--gpt2-source", type=Path, help="a local GPT-2 folder (config and tokenizer) instead of downloading one"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")

    def handle(
        self, *args, name, list_catalogue, activate, out, downloads, clip_source, gpt2_source, no_progress, **options
    ):
        if list_catalogue or not name:
            for entry in read_catalogue().values():
                self.stdout.write(f"{entry.name:28} {entry.description}")
            if not list_catalogue:
                raise CommandError("name a model to install (the catalogue is above)")
            return
        models_dir = settings.DATA_DIR / "models"
        checkpoint = out or models_dir / name
        try:
            model_version = model_version_install(
                name=name,
                checkpoint_path=checkpoint,
                downloads_path=downloads or models_dir / "downloads",
                activate=activate,
                clip_source=clip_source,
                gpt2_source=gpt2_source,
                progress=not no_progress,
            )
        except (MlcoreError, ValidationError) as error:
            raise CommandError(" ".join(error.messages) if isinstance(error, ValidationError) else str(error)) from None
        state = "active" if model_version.is_active else "registered, not active"
        for record in model_version.metrics["files"]:
            self.stdout.write(f"  {record['name']}: {record['size']} bytes, sha256 {record['sha256']}")
        self.stdout.write(self.style.SUCCESS(f"Model {name!r} ({model_version.checkpoint_path}): {state}."))
