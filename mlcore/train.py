"""Training a captioner on an embedding file: the loop reads top to bottom.

Captions are tokenised once with the end-of-text token appended; padding is ignored by the loss
(ClipCap padded with token 0, which is "!" in GPT-2, and masked it out, so it never learnt a real "!").
Each epoch ends with a validation loss; the best and the latest checkpoints are kept, training stops
early after `patience` epochs without improvement, and metrics go to JSONL, CSV and a PNG plot.
`--resume` continues from the latest checkpoint with its optimizer, schedule and random state.
Several GPUs: run under `torchrun`; each process trains on its share of every batch (DDP).
"""

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.distributed as dist
import torch.nn.functional as F
from tqdm import tqdm

from mlcore.checkpoint import load_checkpoint, save_checkpoint
from mlcore.data import EmbeddingSet
from mlcore.devices import autocast_dtype, resolve_device
from mlcore.errors import DataError
from mlcore.familiarity import build_reference
from mlcore.mapping import MapperConfig
from mlcore.model import CaptionerConfig, ClipCaptionModel, gpt2_config_dict, load_gpt2, load_tokenizer
from mlcore.training_log import MetricsLog
from mlcore.training_state import load_training_state, save_training_state


@dataclass
class TrainingOptions:
    data: Path
    out_dir: Path
    val_data: Path | None = None
    name: str = "clip_pro"
    mapper_type: Literal["mlp", "transformer"] = "mlp"
    prefix_length: int = 10
    prefix_length_clip: int = 10
    num_layers: int = 8
    gpt2: str = "gpt2"
    tokenizer: str | None = None  # defaults to the GPT-2 source
    train_gpt2: bool = True  # ClipCap trains the whole model unless --only_prefix
    normalize_prefix: bool = False
    feature_noise_scale: float = 0.0
    epochs: int = 10
    batch_size: int = 40
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_steps: int = 5000
    schedule: Literal["linear", "cosine", "constant"] = "linear"
    grad_clip: float | None = 1.0
    max_caption_tokens: int | None = None
    eval_every_steps: int | None = None
    patience: int | None = None
    seed: int = 0
    device: str = "auto"
    mixed_precision: bool = True
    resume: bool = False
    max_steps: int | None = None
    progress: bool = True
    extra_metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data, self.out_dir = Path(self.data), Path(self.out_dir)
        self.val_data = Path(self.val_data) if self.val_data else None
        for name in ("epochs", "batch_size", "prefix_length", "prefix_length_clip", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.feature_noise_scale < 0:
            raise ValueError("feature_noise_scale cannot be negative")

    @property
    def best_dir(self) -> Path:
        return self.out_dir / f"{self.name}-best"

    @property
    def latest_dir(self) -> Path:
        return self.out_dir / f"{self.name}-latest"


@dataclass
class TrainingSummary:
    epochs_run: int
    steps: int
    best_val_loss: float | None
    last_train_loss: float
    stopped_early: bool
    seconds: float
    samples_per_second: float
    best_checkpoint: Path
    latest_checkpoint: Path
    metrics_path: Path
    plot_path: Path | None

    def as_text(self) -> str:
        best = f"{self.best_val_loss:.4f}" if self.best_val_loss is not None else "n/a (no validation data)"
        lines = [
            "Training finished" + (" early (no improvement within patience)" if self.stopped_early else ""),
            f"  epochs run        {self.epochs_run}",
            f"  optimizer steps   {self.steps}",
            f"  last train loss   {self.last_train_loss:.4f}",
            f"  best val loss     {best}",
            f"  time              {self.seconds:.1f} s ({self.samples_per_second:.1f} captions/s)",
            f"  best checkpoint   {self.best_checkpoint}",
            f"  latest checkpoint {self.latest_checkpoint}",
            f"  metrics           {self.metrics_path}" + (f", plot {self.plot_path}" if self.plot_path else ""),
        ]
        return "\n".join(lines)


@dataclass
class TokenizedCaptions:
    """Every caption as token ids (end-of-text appended), padded into one tensor, with its image row."""

    tokens: torch.Tensor  # [captions, longest]
    lengths: torch.Tensor  # [captions]
    image_rows: torch.Tensor  # [captions]
    embeddings: torch.Tensor  # [images, D]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lengths = self.lengths[indices]
        tokens = self.tokens[indices, : int(lengths.max())]
        return tokens, lengths, self.embeddings[self.image_rows[indices]]


def tokenize_captions(dataset: EmbeddingSet, tokenizer, max_tokens: int) -> TokenizedCaptions:
    if not dataset.captions:
        raise DataError("the embedding file has no captions to train on")
    encoded = tokenizer(dataset.captions, add_special_tokens=False)["input_ids"]
    sequences = [[*ids[: max_tokens - 1], tokenizer.eos_token_id] for ids in encoded]
    lengths = torch.tensor([len(ids) for ids in sequences])
    tokens = torch.full((len(sequences), int(lengths.max())), tokenizer.eos_token_id, dtype=torch.long)
    for row, ids in enumerate(sequences):
        tokens[row, : len(ids)] = torch.tensor(ids)
    return TokenizedCaptions(tokens, lengths, dataset.caption_images.clone(), dataset.embeddings.float())


def caption_loss(
    model: ClipCaptionModel,
    tokens: torch.Tensor,
    lengths: torch.Tensor,
    embeddings: torch.Tensor,
    reduction: Literal["mean", "sum"] = "mean",
) -> torch.Tensor:
    """Cross-entropy of each real caption token (end-of-text included) given the prefix and the tokens before
    it; padding after a caption's `length` tokens is left out."""
    logits = model(tokens, embeddings)  # [batch, tokens, vocab]
    mask = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)  # [batch, tokens]
    return F.cross_entropy(logits[mask].float(), tokens[mask], reduction=reduction)


def optimizer_parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """As nanoGPT does: weight decay on the matrices (linear and embedding weights) only, never on biases and
    layer-norm gains, which it would pull towards zero for no regularising gain."""
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    groups = [
        {"params": [parameter for parameter in trainable if parameter.ndim >= 2], "weight_decay": weight_decay},
        {"params": [parameter for parameter in trainable if parameter.ndim < 2], "weight_decay": 0.0},
    ]
    return [group for group in groups if group["params"]]


def optimization_step(
    training_model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    trainable: list[torch.nn.Parameter],
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    precision: torch.dtype | None,
    grad_clip: float | None,
) -> torch.Tensor:
    """One update on one batch (tokens, lengths, embeddings, on the model's device); returns the loss.
    benchmarks/training.py times this against ClipCap's step."""
    tokens, lengths, embeddings = batch
    with torch.autocast(tokens.device.type, dtype=precision, enabled=precision is not None):
        loss = caption_loss(training_model, tokens, lengths, embeddings)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(trainable, grad_clip)
    optimizer.step()
    return loss


def add_feature_noise(embeddings: torch.Tensor, scale: float, generator: torch.Generator | None) -> torch.Tensor:
    """Gaussian noise with a standard deviation of `scale` times each embedding's RMS value."""
    if scale == 0:
        return embeddings
    rms = embeddings.pow(2).mean(dim=-1, keepdim=True).sqrt()
    noise = torch.randn(embeddings.shape, generator=generator, device=embeddings.device, dtype=embeddings.dtype)
    return embeddings + noise * rms * scale


def learning_rate_factor(schedule: str, warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 1.0 - progress if schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> "Distributed":
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world_size)


def build_model(options: TrainingOptions, clip_model: str, embedding_size: int) -> tuple[ClipCaptionModel, object]:
    gpt = load_gpt2(options.gpt2)
    tokenizer = load_tokenizer(options.tokenizer or options.gpt2)
    config = CaptionerConfig(
        clip_model=clip_model,
        clip_embedding_size=embedding_size,
        mapper=MapperConfig(
            options.mapper_type,
            embedding_size,
            gpt.config.n_embd,
            prefix_length=options.prefix_length,
            prefix_length_clip=options.prefix_length_clip,
            num_layers=options.num_layers,
        ),
        gpt2_source=str(Path(options.gpt2).resolve()) if Path(options.gpt2).is_dir() else options.gpt2,
        gpt2_config=gpt2_config_dict(gpt.config),
        gpt2_weights="checkpoint" if options.train_gpt2 else "source",
        train_gpt2=options.train_gpt2,
        normalize_prefix=options.normalize_prefix,
        stop_token=tokenizer.eos_token,
    )
    return ClipCaptionModel(config, gpt), tokenizer


def train(
    options: TrainingOptions,
    log: Callable[[str], None] = print,
    on_step: Callable[[int, int], None] | None = None,
) -> TrainingSummary:
    device = resolve_device(options.device)
    distributed = Distributed.from_environment(device)
    if distributed.world_size > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(options.seed)

    train_set = EmbeddingSet.load(options.data)
    val_set = EmbeddingSet.load(options.val_data) if options.val_data else None
    if val_set is not None and val_set.embedding_size != train_set.embedding_size:
        raise DataError(
            f"validation embeddings are {val_set.embedding_size}-d but training ones {train_set.embedding_size}-d"
        )

    if options.resume:
        if not options.latest_dir.is_dir():
            raise DataError(f"nothing to resume: {options.latest_dir} does not exist")
        config, model, tokenizer = load_checkpoint(options.latest_dir)
    else:
        model, tokenizer = build_model(options, train_set.clip_model, train_set.embedding_size)
        config = model.config
    # Stored in every checkpoint saved below, so the captioner can tell photos unlike its training images.
    familiarity = build_reference(train_set.embeddings, val_set.embeddings if val_set else None, seed=options.seed)
    trained_on = describe_training_data(train_set, options.data)
    max_tokens = options.max_caption_tokens or (model.gpt.config.n_positions - config.prefix_length)
    train_captions = tokenize_captions(train_set, tokenizer, max_tokens)
    val_captions = tokenize_captions(val_set, tokenizer, max_tokens) if val_set else None

    model.to(device)
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    training_model = model
    if distributed.world_size > 1:
        training_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(model, options.weight_decay), lr=options.lr)
    steps_per_epoch = math.ceil(len(train_captions) / options.batch_size)
    # max_steps only stops the run early: the schedule stays the one of the full run, so a run stopped
    # this way and resumed follows the same learning rates as one that never stopped.
    total_steps = steps_per_epoch * options.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, learning_rate_factor(options.schedule, options.warmup_steps, total_steps)
    )
    precision = autocast_dtype(device) if options.mixed_precision else None

    progress = {"epoch": 0, "step": 0, "best_val_loss": None, "epochs_without_improvement": 0}
    noise_generator = torch.Generator(device=device).manual_seed(options.seed + 1)
    if options.resume:
        progress = load_training_state(options.latest_dir, optimizer, scheduler, noise_generator)
        log(f"Resuming from {options.latest_dir}: epoch {progress['epoch']}, step {progress['step']}")

    metrics = MetricsLog(options.out_dir, enabled=distributed.is_main)
    started = time.perf_counter()
    samples_seen = 0
    last_train_loss = float("nan")
    stopped_early = False

    for epoch in range(progress["epoch"], options.epochs):
        model.train()
        order = torch.randperm(len(train_captions), generator=torch.Generator().manual_seed(options.seed + epoch))
        batches = order.split(options.batch_size)
        bar = tqdm(
            batches,
            desc=f"epoch {epoch + 1}/{options.epochs}",
            disable=not (options.progress and distributed.is_main),
            unit="batch",
        )
        running_loss, running_count = 0.0, 0
        for indices in bar:
            if len(indices) < distributed.world_size:
                continue  # a last batch too small to give every process a caption
            own_indices = indices[distributed.rank :: distributed.world_size]
            tokens, lengths, embeddings = (t.to(device) for t in train_captions.batch(own_indices))
            embeddings = add_feature_noise(embeddings, options.feature_noise_scale, noise_generator)
            loss = optimization_step(
                training_model, optimizer, trainable, (tokens, lengths, embeddings), precision, options.grad_clip
            )
            scheduler.step()
            progress["step"] += 1
            if on_step is not None:
                on_step(progress["step"], total_steps)
            samples_seen += len(indices)
            running_loss += loss.item() * len(own_indices)
            running_count += len(own_indices)
            last_train_loss = running_loss / running_count
            bar.set_postfix(loss=f"{last_train_loss:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if options.eval_every_steps and progress["step"] % options.eval_every_steps == 0:
                metrics.write(
                    epoch=epoch + 1,
                    step=progress["step"],
                    train_loss=last_train_loss,
                    val_loss=validation_loss(model, val_captions, options.batch_size, device, precision),
                    lr=scheduler.get_last_lr()[0],
                )
                model.train()
            if options.max_steps and progress["step"] >= options.max_steps:
                break

        val_loss = validation_loss(model, val_captions, options.batch_size, device, precision)
        elapsed = time.perf_counter() - started
        metrics.write(
            epoch=epoch + 1,
            step=progress["step"],
            train_loss=last_train_loss,
            val_loss=val_loss,
            lr=scheduler.get_last_lr()[0],
            samples_per_second=samples_seen / elapsed,
        )
        progress["epoch"] = epoch + 1
        score = val_loss if val_loss is not None else last_train_loss
        improved = progress["best_val_loss"] is None or score < progress["best_val_loss"]
        if improved:
            progress["best_val_loss"], progress["epochs_without_improvement"] = score, 0
        else:
            progress["epochs_without_improvement"] += 1
        if distributed.is_main:
            config = config.with_training(
                epochs=progress["epoch"],
                steps=progress["step"],
                train_loss=last_train_loss,
                val_loss=val_loss,
                data=str(options.data),
                options=_json_ready(asdict(options)),
                **{"trained_on": trained_on, **options.extra_metadata},
            )
            save_checkpoint(model, tokenizer, options.latest_dir, config, familiarity=familiarity)
            save_training_state(options.latest_dir, optimizer, scheduler, progress, noise_generator)
            if improved:
                save_checkpoint(model, tokenizer, options.best_dir, config, familiarity=familiarity)
            metrics.plot()
        if options.max_steps and progress["step"] >= options.max_steps:
            break
        if options.patience is not None and progress["epochs_without_improvement"] >= options.patience:
            stopped_early = True
            break

    if distributed.world_size > 1:
        dist.barrier()
    seconds = time.perf_counter() - started
    return TrainingSummary(
        epochs_run=progress["epoch"],
        steps=progress["step"],
        best_val_loss=progress["best_val_loss"] if val_captions is not None else None,
        last_train_loss=last_train_loss,
        stopped_early=stopped_early,
        seconds=seconds,
        samples_per_second=samples_seen / seconds if seconds else 0.0,
        best_checkpoint=options.best_dir,
        latest_checkpoint=options.latest_dir,
        metrics_path=metrics.jsonl_path,
        plot_path=metrics.plot_path if metrics.plot_path.exists() else None,
    )


def validation_loss(
    model: ClipCaptionModel,
    captions: TokenizedCaptions | None,
    batch_size: int,
    device: torch.device,
    precision: torch.dtype | None,
) -> float | None:
    if captions is None:
        return None
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=precision, enabled=precision is not None):
        for indices in torch.arange(len(captions)).split(batch_size):
            tokens, lengths, embeddings = (t.to(device) for t in captions.batch(indices))
            total += float(caption_loss(model, tokens, lengths, embeddings, reduction="sum"))
            count += int(lengths.sum())
    return total / count


def describe_training_data(dataset: EmbeddingSet, path: Path) -> str:
    """What a model was trained on, in words for its page: images, captions, and the file they came from."""
    details = ", ".join(value for key in ("dataset", "captions") if (value := dataset.metadata.get(key)))
    return f"{len(dataset):,} images with {len(dataset.captions):,} captions from {path.name}" + (
        f" ({details})" if details else ""
    )


def _json_ready(values: dict) -> dict:
    return {key: str(value) if isinstance(value, Path) else value for key, value in values.items()}
