"""`manage.py caption_images`: the seed's 03_predict.py — caption every image in a folder."""

import json
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from captioning.management.decoding import add_decoding_arguments, decoding_options_from
from mlcore.batch import caption_folder
from mlcore.captioner import Captioner
from mlcore.errors import MlcoreError


class Command(BaseCommand):
    help = "Captions every image in a folder and writes the captions (file, caption, score) as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--img_dir", "--img-dir", required=True, help="folder of images (searched recursively)")
        parser.add_argument("--weights", required=True, help="checkpoint directory (ours or an imported ClipCap)")
        parser.add_argument("--clip_model", "--clip-model", help="override the checkpoint's CLIP model")
        parser.add_argument("--batch-size", type=int, default=32, help="images per batch (default 32)")
        parser.add_argument("--out", default="results.json", help="output JSON file (default results.json)")
        parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
        add_decoding_arguments(parser)

    def handle(self, *args, **options) -> None:
        folder = Path(options["img_dir"])
        if not folder.is_dir():
            raise CommandError(f"--img_dir {folder} is not a folder")
        decoding = decoding_options_from(options)
        started = time.perf_counter()
        try:
            captioner = Captioner.load(options["weights"], device=options["device"], clip_model=options["clip_model"])
            outcome = caption_folder(captioner, folder, decoding, batch_size=options["batch_size"], progress=True)
        except MlcoreError as error:
            raise CommandError(str(error)) from error
        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "weights": str(options["weights"]),
            "decoding": decoding.to_dict(),
            "captions": [{"file": c.file, "caption": c.caption, "score": c.score} for c in outcome.captions],
            "skipped": [{"file": s.file, "reason": s.reason} for s in outcome.skipped],
        }
        out.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        seconds = time.perf_counter() - started
        self.stdout.write(f"Captioned {len(outcome.captions)} images in {seconds:.1f} s")
        for item in outcome.captions[:5]:
            self.stdout.write(f"  {item.file}: {item.caption}")
        if outcome.skipped:
            self.stdout.write(f"Skipped {len(outcome.skipped)} files:")
            for item in outcome.skipped[:10]:
                self.stdout.write(f"  {item.file}: {item.reason}")
        self.stdout.write(self.style.SUCCESS(f"Wrote {out}"))
