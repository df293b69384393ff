"""How well a demo checkpoint tells photos it knows from photos it does not (mlcore.familiarity).

Draws shape images the build never drew (a split of their own), embeds them and the real photos in
tests/fixtures/photos (and random crops of those, for more real-photo variety), and prints for each signal
(familiarity, the model's own beam score, the CLIPScore of its caption in its own CLIP, and familiarity's sum with
each of those in standard units):
- the share of held-out shapes above the threshold and how many real photos fall below it;
- AUROC: the chance that a random held-out shape scores above a random real photo (1.0: perfect separation);
- the margin between the least familiar shape and the most familiar photo.
The beam-score threshold is calibrated the way familiarity's is (the 1% quantile of held-out shapes).

    python manage.py build_demo_model --out /tmp/demo --size small
    python benchmarks/familiarity.py --checkpoint /tmp/demo
"""

import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlcore import Captioner, DecodingOptions, load_image
from mlcore.clipscore import caption_clip_scores
from mlcore.familiarity import DEFAULT_CALIBRATION_QUANTILE
from mlcore.shapes import make_shape_samples

PHOTOS = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "photos"


def auroc(known: torch.Tensor, unknown: torch.Tensor) -> float:
    """P(a known item scores above an unknown one), ties counting half."""
    above = (known[:, None] > unknown[None, :]).float().mean()
    ties = (known[:, None] == unknown[None, :]).float().mean()
    return float(above + ties / 2)


def photo_crops(photos: list, count_per_photo: int, seed: int) -> list:
    """Square crops of a quarter to all of each photo, anywhere in it: more real-photo content than 8 files."""
    rng = random.Random(seed)
    crops = []
    for photo in photos:
        width, height = photo.size
        for _ in range(count_per_photo):
            side = int(min(width, height) * rng.uniform(0.25, 1.0))
            left, top = rng.randint(0, width - side), rng.randint(0, height - side)
            crops.append(photo.crop((left, top, left + side, top + side)))
    return crops


def report(name: str, known: torch.Tensor, photos: torch.Tensor, crops: torch.Tensor, threshold: float) -> None:
    print(
        f"{name:<22} threshold {threshold:8.4f}  shapes confident {(known >= threshold).float().mean():7.2%}  "
        f"photos unsure {int((photos < threshold).sum())}/{len(photos)}  "
        f"crops unsure {int((crops < threshold).sum())}/{len(crops)}  "
        f"AUROC photos {auroc(known, photos):.4f} crops {auroc(known, crops):.4f}  "
        f"margin {float(known.min() - torch.cat([photos, crops]).max()):+.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="a demo checkpoint (build_demo_model)")
    parser.add_argument("--shapes", type=int, default=1000, help="held-out shape images to draw")
    parser.add_argument("--crops-per-photo", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    captioner = Captioner.load(args.checkpoint, device="cpu")
    reference = captioner.familiarity_reference
    if reference is None:
        sys.exit(f"{args.checkpoint} has no familiarity reference; rebuild it with build_demo_model")
    samples = make_shape_samples(args.shapes, seed=args.seed, split="familiarity-check")
    photo_files = sorted(path for path in PHOTOS.iterdir() if path.suffix == ".jpg")
    photos = [load_image(path) for path in photo_files]
    crops = photo_crops(photos, args.crops_per_photo, args.seed)

    groups = {"shapes": [sample.render() for sample in samples], "photos": photos, "crops": crops}
    familiarity, beam, clip = {}, {}, {}
    for name, images in groups.items():
        embeddings = captioner.embed(images)
        familiarity[name] = reference.familiarity(embeddings)
        results = captioner.caption_embeddings(embeddings, DecodingOptions())
        beam[name] = torch.tensor([result.score for result in results])
        clip[name] = torch.tensor(
            caption_clip_scores(captioner, embeddings, [result.text for result in results]).per_item
        )
        if name == "photos":
            for path, value, result, clip_value in zip(
                photo_files, familiarity[name].tolist(), results, clip[name].tolist(), strict=True
            ):
                print(
                    f"  {path.name:<34} familiarity {value:.4f}  score {result.score:7.3f}  "
                    f"CLIPScore {clip_value:.3f}  {result.text!r}"
                )

    # Sums in standard units of the held-out shapes: do the model's own scores add anything to familiarity?
    def standard(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mean, spread = values["shapes"].mean(), values["shapes"].std()
        return {name: (value - mean) / spread for name, value in values.items()}

    familiarity_units = standard(familiarity)
    with_beam = {name: familiarity_units[name] + standard(beam)[name] for name in groups}
    with_clip = {name: familiarity_units[name] + standard(clip)[name] for name in groups}

    print(f"\n{len(samples)} held-out shapes, {len(photos)} photos, {len(crops)} crops of them")
    print(
        f"familiarity of shapes: min {familiarity['shapes'].min():.4f}  "
        f"1% {torch.quantile(familiarity['shapes'], 0.01):.4f}  median {familiarity['shapes'].median():.4f}; "
        f"photos: max {familiarity['photos'].max():.4f}  median {familiarity['photos'].median():.4f}; "
        f"crops: max {familiarity['crops'].max():.4f}"
    )
    report(
        "familiarity (stored)", familiarity["shapes"], familiarity["photos"], familiarity["crops"], reference.threshold
    )
    signals = (
        ("beam score", beam),
        ("familiarity + beam", with_beam),
        ("CLIPScore", clip),
        ("familiarity + CLIPScore", with_clip),
    )
    for name, values in signals:
        threshold = float(torch.quantile(values["shapes"], DEFAULT_CALIBRATION_QUANTILE))
        report(name, values["shapes"], values["photos"], values["crops"], threshold)
    print(f"stored calibration: {reference.calibration}")


if __name__ == "__main__":
    main()
