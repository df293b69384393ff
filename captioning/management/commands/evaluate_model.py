"""`manage.py evaluate_model`: caption a validation set and score the captions.

The work is `mlcore.evaluate.evaluate_captioner`; this command reads the flags, loads the inputs,
prints the summary and writes the JSON report.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from captioning.management.decoding import add_decoding_arguments, decoding_options_from
from mlcore.captioner import Captioner
from mlcore.coco import read_caption_annotations
from mlcore.data import EmbeddingSet
from mlcore.errors import MlcoreError
from mlcore.evaluate import ReferenceImage, evaluate_captioner, reference_images_in_folder

SPICE_CHOICES = {"auto": None, "require": True, "off": False}


class Command(BaseCommand):
    help = (
        "Captions a validation set (an embedding file, or images with COCO caption annotations) and reports "
        "BLEU-1..4, METEOR, ROUGE-L, CIDEr, SPICE (when its CoreNLP jars are installed) and CLIPScore."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--weights", required=True, help="checkpoint directory to evaluate")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--data", help="embedding file (.safetensors) written by encode_coco")
        source.add_argument("--images", help="folder of images; needs --annotations")
        parser.add_argument("--annotations", help="COCO captions file (e.g. captions_val2017.json) for --images")
        parser.add_argument("--max-images", type=int, help="evaluate only the first N images")
        add_decoding_arguments(parser)
        parser.add_argument("--batch-size", type=int, help="images per captioning batch (default: fit the device)")
        parser.add_argument("--out", help="report path (default: evaluation-<data name>.json in the checkpoint)")
        parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
        parser.add_argument(
            "--spice",
            choices=sorted(SPICE_CHOICES),
            default="auto",
            help="auto: run SPICE when its CoreNLP jars are installed; require: fail without them; off",
        )

    def handle(self, *args, **options) -> None:
        decoding = decoding_options_from(options)
        if options["images"] and not options["annotations"]:
            raise CommandError("--images needs --annotations, the COCO captions file with the references")
        if options["annotations"] and not options["images"]:
            raise CommandError("--annotations goes with --images; an embedding file (--data) holds its captions")
        try:
            captioner = Captioner.load(options["weights"], device=options["device"])
            dataset, inputs, left_out = self._dataset(options)
            report = evaluate_captioner(
                captioner,
                dataset,
                decoding,
                batch_size=options["batch_size"],
                max_images=options["max_images"],
                spice=SPICE_CHOICES[options["spice"]],
                progress=True,
            )
        except (MlcoreError, RuntimeError) as error:
            raise CommandError(str(error)) from error

        report.settings["weights"] = str(options["weights"])
        report.settings["dataset"].update(inputs, **left_out)
        out = Path(
            options["out"]
            or Path(options["weights"]) / f"evaluation-{Path(options['data'] or options['annotations']).stem}.json"
        )
        report.save(out)
        self.stdout.write(report.summary())
        if left_out.get("not_in_folder"):
            self.stdout.write(f"{left_out['not_in_folder']} annotated images are not in {options['images']}")
        self.stdout.write(self.style.SUCCESS(f"Report written to {out}"))

    def _dataset(self, options: dict) -> tuple[EmbeddingSet | list[ReferenceImage], dict, dict]:
        if options["data"]:
            return EmbeddingSet.load(options["data"]), {"data": str(options["data"])}, {}
        images, left_out = reference_images_in_folder(
            read_caption_annotations(Path(options["annotations"])), options["images"]
        )
        if not images:
            raise CommandError(
                f"none of the images annotated in {options['annotations']} with captions is in {options['images']}"
            )
        inputs = {"images_folder": str(options["images"]), "annotations": str(options["annotations"])}
        return images, inputs, left_out
