"""Contrastive training of a tiny CLIP (open_clip's model and loss) on image-caption pairs.

The offline demo trains one on the synthetic shapes world (`mlcore.shapes`): a randomly initialised
CLIP's image embedding keeps colour but barely shape. Two measures tell what a trained embedding keeps:
`linear_probe_accuracy` (can a linear read-out recover an attribute?) and `caption_ranking_accuracy`
(does the model prefer the true caption to a foil made of the same words?).

The recipe, as the demo uses it (mlcore.demo sets the sizes):

    samples = make_shape_samples(32000, seed, contrast_group_size=4)
    model, history = train_clip([s.render() for s in samples], [s.description for s in samples],
                                replace(DEMO_CLIP_SPEC, embed_dim=128), epochs=3, group_size=4)

Train on `description` (one fixed template), not the varied `captions`: with the varied ones the model
learns every attribute of a single object as well, but tells "a red circle left of a blue square" from
"a blue circle left of a red square" 68% of the time instead of 98%.
"""

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterator, Sequence

import open_clip
import torch
from open_clip.loss import ClipLoss
from open_clip.model import CLIP
from PIL import Image
from tqdm import tqdm

from mlcore.encoder import prepare_image
from mlcore.tiny import OPENAI_MEAN, OPENAI_STD, TinyClipSpec, create_clip
from mlcore.train import learning_rate_factor

TOKENIZER_NAME = "ViT-B-32"  # its BPE vocabulary ships inside open_clip, so this works offline

# Measured on the shapes world (2 CPU cores): a timm ResNet trunk learns shape in a few hundred steps
# where open_clip's ModifiedResNet and ViT of the same cost need thousands; 48 px keeps small shapes
# legible at half the cost of 64 px; the longest shapes caption is 18 tokens.
DEMO_CLIP_SPEC = TinyClipSpec(
    embed_dim=64, image_size=48, vision="timm", timm_model="test_resnet", timm_pool="avg", context_length=24
)

EpochCallback = Callable[[CLIP, dict[str, float]], None]
StepCallback = Callable[[int, int], None]  # (steps done, steps in all)


def clip_preprocess(spec: TinyClipSpec) -> Callable[[Image.Image], torch.Tensor]:
    """The transform `ClipEncoder.load` builds for a CLIP saved by `save_clip`."""
    return open_clip.image_transform(
        spec.image_size, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD, interpolation="bicubic"
    )


def preprocess_images(images: Sequence[Image.Image], spec: TinyClipSpec) -> torch.Tensor:
    preprocess = clip_preprocess(spec)
    return torch.stack([preprocess(prepare_image(image)) for image in images])


@functools.cache
def _tokenizer():
    return open_clip.get_tokenizer(TOKENIZER_NAME)


def tokenize_captions(captions: Sequence[str], spec: TinyClipSpec) -> torch.Tensor:
    return _tokenizer()(list(captions), context_length=spec.context_length)


@torch.no_grad()
def encode_pixels(model: CLIP, pixels: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Image embeddings (not normalised) of preprocessed images, as `ClipEncoder` returns them."""
    model.eval()
    return torch.cat(
        [model.encode_image(pixels[start : start + batch_size]) for start in range(0, len(pixels), batch_size)]
    )


def train_clip(
    images: Sequence[Image.Image],
    captions: Sequence[str | Sequence[str]],
    spec: TinyClipSpec,
    epochs: int = 8,
    batch_size: int = 64,
    lr: float = 4e-3,
    seed: int = 0,
    progress: bool = False,
    weight_decay: float = 0.05,
    warmup_fraction: float = 0.1,
    text_frozen_fraction: float = 0.4,
    group_size: int = 1,
    on_epoch_end: EpochCallback | None = None,
    on_step: StepCallback | None = None,
) -> tuple[CLIP, list[dict[str, float]]]:
    """Trains a CLIP from random initialisation with open_clip's contrastive loss.

    `captions[i]` is one caption or several for `images[i]`; each epoch pairs every image with one of
    its captions, drawn at random. Runs of `group_size` consecutive images are shuffled as units and
    never split across batches, so hard negatives made together (`make_shape_samples`'s contrast
    groups) meet in the loss. AdamW, linear warmup then cosine decay; deterministic for a seed on a
    given machine and thread count. Returns the model in eval mode and one history row per epoch.

    For the first `text_frozen_fraction` of the steps the text tower keeps its random weights. A
    random text tower already tells every word apart; trained from the first step, it soon learns to
    ignore the words whose meaning the young image tower cannot see yet (here: shape, which random
    image features barely carry), and after that neither tower learns them.
    """
    if len(images) != len(captions):
        raise ValueError(f"{len(images)} images but {len(captions)} caption lists; give one list per image")
    caption_lists = [[item] if isinstance(item, str) else list(item) for item in captions]
    if not caption_lists or any(not texts for texts in caption_lists):
        raise ValueError("training needs images, and every image needs at least one caption")
    if batch_size % group_size:
        raise ValueError(f"batch size {batch_size} must be a multiple of the group size {group_size}")

    with _deterministic():
        # Channels-last convolutions run about a fifth faster on CPUs.
        model = create_clip(spec, seed=seed).to(memory_format=torch.channels_last)
        pixels = preprocess_images(images, spec).contiguous(memory_format=torch.channels_last)
        unique_texts = sorted({text for texts in caption_lists for text in texts})
        tokens = tokenize_captions(unique_texts, spec)
        text_row = {text: row for row, text in enumerate(unique_texts)}
        caption_counts = torch.tensor([len(texts) for texts in caption_lists])
        caption_rows = torch.zeros(len(caption_lists), int(caption_counts.max()), dtype=torch.long)
        for index, texts in enumerate(caption_lists):
            caption_rows[index, : len(texts)] = torch.tensor([text_row[text] for text in texts])

        # As open_clip does: no weight decay on gains, biases and the temperature.
        decayed = [p for name, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in name]
        kept = [p for name, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in name]
        optimizer = torch.optim.AdamW(
            [{"params": decayed, "weight_decay": weight_decay}, {"params": kept, "weight_decay": 0.0}],
            lr=lr,
            betas=(0.9, 0.98),
            eps=1e-6,
        )
        images_count = len(caption_lists)
        total_steps = epochs * math.ceil(images_count / batch_size)
        warmup_steps = max(1, int(total_steps * warmup_fraction))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, learning_rate_factor("cosine", warmup_steps, total_steps)
        )
        text_parameters = [p for name, p in model.named_parameters() if not name.startswith(("visual.", "logit_"))]
        text_frozen_steps = int(total_steps * text_frozen_fraction)
        for parameter in text_parameters:
            parameter.requires_grad_(text_frozen_steps == 0)
        loss_fn = ClipLoss()
        generator = torch.Generator().manual_seed(seed)
        history: list[dict[str, float]] = []
        bar = tqdm(total=total_steps, desc="training CLIP", unit="step", disable=not progress)
        step = 0
        model.train()
        for epoch in range(epochs):
            started = time.perf_counter()
            group_order = torch.randperm(math.ceil(images_count / group_size), generator=generator)
            order = (group_order[:, None] * group_size + torch.arange(group_size)).flatten()
            order = order[order < images_count]
            choice = (torch.rand(images_count, generator=generator) * caption_counts).long()
            chosen_rows = caption_rows[torch.arange(images_count), choice]
            losses = []
            for start in range(0, images_count, batch_size):
                if step == text_frozen_steps:
                    for parameter in text_parameters:
                        parameter.requires_grad_(True)
                batch = order[start : start + batch_size]
                image_features, text_features, logit_scale = model(pixels[batch], tokens[chosen_rows[batch]])
                loss = loss_fn(image_features, text_features, logit_scale)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                with torch.no_grad():
                    # CLIP's clamp: a temperature below 1/100 makes training unstable.
                    model.logit_scale.clamp_(0, math.log(100))
                losses.append(loss.item())
                step += 1
                bar.update(1)
                if on_step is not None:
                    on_step(step, total_steps)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": sum(losses) / len(losses),
                    "seconds": time.perf_counter() - started,
                    "lr": scheduler.get_last_lr()[0],
                }
            )
            if on_epoch_end is not None:
                on_epoch_end(model, history[-1])
                model.train()
        bar.close()
    return model.to(memory_format=torch.contiguous_format).eval(), history


@contextlib.contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic kernels for the duration only, so the caller's setting is left as it was."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def linear_probe_accuracy(
    embeddings: torch.Tensor,
    labels: Sequence[int] | torch.Tensor,
    train_fraction: float = 0.7,
    seed: int = 0,
    steps: int = 300,
    weight_decay: float = 1e-3,
) -> float:
    """Test accuracy of a logistic regression on standardised embeddings (random train/test split).

    Rows labelled -1 are left out (an attribute the image does not have).
    """
    labels = torch.as_tensor(labels, dtype=torch.long)
    keep = labels >= 0
    features, labels = embeddings[keep].float(), labels[keep]
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    split = int(len(labels) * train_fraction)
    if split == 0 or split == len(labels):
        raise ValueError(f"{len(labels)} labelled rows cannot be split into probe train and test sets")
    train, test = order[:split], order[split:]
    mean, std = features[train].mean(0), features[train].std(0) + 1e-6
    features = (features - mean) / std
    classes = int(labels.max()) + 1
    with torch.enable_grad():
        weights = torch.zeros(features.shape[1], classes, requires_grad=True)
        bias = torch.zeros(classes, requires_grad=True)
        optimizer = torch.optim.Adam([weights, bias], lr=0.05)
        for _ in range(steps):
            logits = features[train] @ weights + bias
            loss = torch.nn.functional.cross_entropy(logits, labels[train]) + weight_decay * weights.square().sum()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        predictions = (features[test] @ weights + bias).argmax(1)
    return (predictions == labels[test]).float().mean().item()


@torch.no_grad()
def caption_ranking_accuracy(
    model: CLIP,
    spec: TinyClipSpec,
    images: Sequence[Image.Image],
    true_captions: Sequence[str],
    foils: Sequence[Sequence[str]],
) -> float:
    """How often the model scores an image's true caption above a foil (a tie is a loss), over all foils."""
    if not any(foils):
        raise ValueError("no foils to rank against; give at least one foil caption")
    model.eval()
    texts = sorted({*true_captions, *(foil for image_foils in foils for foil in image_foils)})
    text_features = torch.cat(
        [model.encode_text(tokenize_captions(texts[start : start + 256], spec)) for start in range(0, len(texts), 256)]
    )
    text_row = {text: row for row, text in enumerate(texts)}
    scores = (
        torch.nn.functional.normalize(encode_pixels(model, preprocess_images(images, spec)), dim=-1)
        @ torch.nn.functional.normalize(text_features, dim=-1).T
    )
    wins = total = 0
    for index, (true_caption, image_foils) in enumerate(zip(true_captions, foils, strict=True)):
        for foil in image_foils:
            wins += int(scores[index, text_row[true_caption]] > scores[index, text_row[foil]])
            total += 1
    return wins / total
