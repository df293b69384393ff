"""`manage.py encode_coco`: COCO images -> CLIP embeddings + captions, one file for training (the seed's
`01_Database_to_Clip.py`). The work is `mlcore.coco.encode_coco`; this parses flags and prints the summary."""

import argparse
import os
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlcore.coco import CocoEncodeOptions, encode_coco
from mlcore.download import DownloadPolicy
from mlcore.errors import MlcoreError
from mlcore.shards import merge_shards, shard_directory


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def default_out_path(coco_root: Path, dataset: str, karpathy: bool) -> Path:
    prefix = "CLIP_Pro_karpathy" if karpathy else "CLIP_Pro"
    return coco_root / f"{prefix}_{dataset}_merged.safetensors"


class Command(BaseCommand):
    help = (
        "Downloads a COCO 2017 captions split (annotations and images, resumable), encodes each image once "
        "with CLIP, and writes embeddings + captions to one safetensors file for train_model."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dataset",
            choices=["train", "val", "test"],
            default="train",
            help="COCO split; 'test' only with --karpathy-split (default: train)",
        )
        parser.add_argument(
            "--max-images",
            type=_positive_int,
            default=None,
            help="encode only the first N images of the split (default: all)",
        )
        parser.add_argument(
            "--batch-size", type=_positive_int, default=2000, help="images per CLIP batch and per shard (default: 2000)"
        )
        parser.add_argument(
            "--clip-model",
            default="ViT-B/32",
            help="CLIP model: ViT-B/32, RN50x4, MODEL:PRETRAINED, hf-hub:..., local-dir:PATH",
        )
        parser.add_argument(
            "--coco-root",
            type=Path,
            default=Path("coco_data"),
            help="folder for annotations/ and images/ (default: coco_data)",
        )
        parser.add_argument(
            "--out",
            type=Path,
            default=None,
            help="merged file (default: <coco-root>/CLIP_Pro_<dataset>_merged.safetensors); shards go to <out>.shards/",
        )
        parser.add_argument(
            "--workers",
            type=_positive_int,
            default=min(8, os.cpu_count() or 1),
            help="threads decoding and preprocessing images (default: CPU cores, at most 8)",
        )
        parser.add_argument(
            "--download-workers", type=_positive_int, default=16, help="parallel image downloads (default: 16)"
        )
        parser.add_argument(
            "--karpathy-split",
            type=Path,
            default=None,
            help="Karpathy's dataset_coco.json: take images and captions of its --dataset split",
        )
        parser.add_argument(
            "--merge",
            action="store_true",
            help="only merge the shards already in <out>.shards/ into --out, encoding nothing",
        )
        parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds per download request (default: 30)")
        parser.add_argument("--retries", type=int, default=4, help="retries per download, backing off 1, 2, 4... s")

    def handle(self, *args, **options) -> None:
        coco_root: Path = options["coco_root"]
        karpathy: Path | None = options["karpathy_split"]
        out = options["out"] or default_out_path(coco_root, options["dataset"], karpathy is not None)
        try:
            if options["merge"]:
                merged = merge_shards(shard_directory(out), out)
                self.stdout.write(
                    f"merged {shard_directory(out)}: {len(merged)} embeddings, {len(merged.captions)} captions -> {out}"
                )
                return
            summary = encode_coco(
                CocoEncodeOptions(
                    dataset=options["dataset"],
                    coco_root=coco_root,
                    out=out,
                    clip_model=options["clip_model"],
                    annotations_url=settings.COCO_ANNOTATIONS_URL,
                    images_base_url=settings.COCO_IMAGES_BASE_URL,
                    max_images=options["max_images"],
                    batch_size=options["batch_size"],
                    workers=options["workers"],
                    download_workers=options["download_workers"],
                    karpathy_split=karpathy,
                    device=options["device"],
                    download=DownloadPolicy(timeout_seconds=options["timeout"], retries=max(0, options["retries"])),
                )
            )
        except (MlcoreError, RuntimeError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.as_text())
        if summary.output_path is None:
            raise CommandError(
                f"no image could be encoded; images come from COCO_IMAGES_BASE_URL={settings.COCO_IMAGES_BASE_URL} "
                f"(set it to a reachable mirror) or can be placed in {coco_root / 'images'}/"
            )
