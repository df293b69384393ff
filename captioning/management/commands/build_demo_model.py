"""`manage.py build_demo_model`: the offline demo captioner, built from nothing (see mlcore.demo)."""

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlcore.checkpoint import CONFIG_FILE
from mlcore.demo import DEMO_SIZES, build_demo_model
from mlcore.errors import MlcoreError


class Command(BaseCommand):
    help = (
        "Builds the offline demo model: a synthetic shapes dataset, a tiny CLIP trained on it, and a captioner "
        "trained and evaluated through the same code as real models. A few minutes on a laptop CPU."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default=None, help="checkpoint directory (default: CAPTION_MODEL_PATH)")
        parser.add_argument("--if-missing", action="store_true", help="do nothing when the checkpoint exists")
        parser.add_argument("--size", choices=sorted(DEMO_SIZES), default="full")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--work-dir", help="keep the intermediate files (dataset, CLIP, runs) here")

    def handle(self, *args, **options) -> None:
        out = Path(options["out"] or settings.CAPTION_MODEL_PATH)
        if options["if_missing"] and (out / CONFIG_FILE).is_file():
            self.stdout.write(f"Demo model already at {out}")
            return
        try:
            report = build_demo_model(
                out,
                size=options["size"],
                seed=options["seed"],
                work_dir=Path(options["work_dir"]) if options["work_dir"] else None,
                progress=True,
                log=self.stdout.write,
            )
        except (MlcoreError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(report.as_text())
        self.stdout.write(self.style.SUCCESS(f"Demo model written to {out}"))
