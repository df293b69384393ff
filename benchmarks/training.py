"""Training speed: mlcore.train's optimization step against ClipCap's training step, same model and batch.

Both train the real-size architecture (GPT-2 124M + ClipCap's mapper on 512-d ViT-B/32 embeddings) built
from configs with random weights: speed does not depend on the weight values. Two setups, as ClipCap
trains them:
- `mlp`: MLP mapper, prefix 10, GPT-2 fine-tuned with it;
- `transformer`: Transformer mapper, prefix 40 (8 layers), GPT-2 frozen (prefix-only).

Each side gets the same captions (random token ids of random lengths, padded with 0) and embeddings.
Ours is `mlcore.train.optimization_step` on a `ClipCaptionModel`: logits only for the caption positions,
the loss over real tokens, AdamW over the trainable parameters. The reference is ClipCap's loop body
(`train` in its train.py) on a copy of the same weights in a stock transformers GPT-2: the full model's
logits, an attention mask, cross-entropy ignoring token 0, and for prefix-only training GPT-2's weight
gradients computed too (ClipCap's `ClipCaptionPrefix` only hides them from the optimizer).
Prints samples/s for each side and the ratio.

    python benchmarks/training.py --threads 2              # CPU, both setups
    python benchmarks/training.py --device cuda --batch-size 40 --steps 20
"""

import argparse
import copy
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlcore.devices import autocast_dtype, resolve_device
from mlcore.mapping import MapperConfig
from mlcore.model import CaptionerConfig, ClipCaptionModel, build_gpt2, gpt2_config_dict
from mlcore.train import optimization_step

CLIP_EMBEDDING_SIZE = 512  # ViT-B/32
SETUPS = {
    "mlp": {"mapper_type": "mlp", "prefix_length": 10, "train_gpt2": True},
    "transformer": {"mapper_type": "transformer", "prefix_length": 40, "train_gpt2": False},
}


def build_model(mapper_type: str, prefix_length: int, train_gpt2: bool, seed: int) -> ClipCaptionModel:
    from transformers import GPT2Config

    torch.manual_seed(seed)
    gpt2_config = gpt2_config_dict(GPT2Config())
    config = CaptionerConfig(
        clip_model="ViT-B/32",
        clip_embedding_size=CLIP_EMBEDDING_SIZE,
        mapper=MapperConfig(
            mapper_type, CLIP_EMBEDDING_SIZE, 768, prefix_length, prefix_length_clip=prefix_length, num_layers=8
        ),
        gpt2_source="gpt2",
        gpt2_config=gpt2_config,
        gpt2_weights="checkpoint" if train_gpt2 else "source",
        train_gpt2=train_gpt2,
        normalize_prefix=mapper_type == "transformer",
    )
    return ClipCaptionModel(config, build_gpt2(gpt2_config))


class ReferenceModel(torch.nn.Module):
    """ClipCap's ClipCaptionModel (ClipCaptionPrefix for prefix-only): a stock transformers GPT-2 (its
    `gelu_new`) holding a copy of `model`'s weights, and the same mapper."""

    def __init__(self, model: ClipCaptionModel):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        self.prefix_length = model.config.prefix_length
        self.normalize_prefix = model.config.normalize_prefix
        self.gpt = GPT2LMHeadModel(GPT2Config.from_dict(model.config.gpt2_config))
        self.gpt.load_state_dict(model.gpt.state_dict())
        self.clip_project = copy.deepcopy(model.clip_project)
        self.prefix_only = not model.config.train_gpt2

    def forward(self, tokens, prefix, mask):
        embedding_text = self.gpt.transformer.wte(tokens)
        prefix_projections = self.clip_project(prefix).view(-1, self.prefix_length, self.gpt.config.n_embd)
        embedding_cat = torch.cat((prefix_projections, embedding_text), dim=1)
        return self.gpt(inputs_embeds=embedding_cat, attention_mask=mask)

    def optimized_parameters(self):
        return self.clip_project.parameters() if self.prefix_only else self.parameters()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.prefix_only:
            self.gpt.eval()
        return self


def reference_step(model: ReferenceModel, optimizer, tokens, lengths, embeddings) -> torch.Tensor:
    """The body of ClipCap's training loop (train.py), its dataset's mask included."""
    token_mask = torch.arange(tokens.shape[1], device=tokens.device).unsqueeze(0) < lengths.unsqueeze(1)
    prefix_mask = torch.ones(tokens.shape[0], model.prefix_length, device=tokens.device)
    mask = torch.cat((prefix_mask, token_mask.float()), dim=1)
    prefix = embeddings / embeddings.norm(2, -1, keepdim=True) if model.normalize_prefix else embeddings
    model.zero_grad()
    outputs = model(tokens, prefix, mask)
    logits = outputs.logits[:, model.prefix_length - 1 : -1]
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.flatten(), ignore_index=0)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    return loss


def make_batch(batch_size: int, max_tokens: int, vocab_size: int, device: torch.device, seed: int):
    """Captions of 8 to `max_tokens` tokens (ids from 1: ClipCap pads with 0 and ignores it), padded with 0."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min(8, max_tokens), max_tokens + 1, (batch_size,), generator=generator)
    tokens = torch.randint(1, vocab_size, (batch_size, int(lengths.max())), generator=generator)
    tokens[torch.arange(tokens.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    embeddings = torch.randn(batch_size, CLIP_EMBEDDING_SIZE, generator=generator)
    return tokens.to(device), lengths.to(device), embeddings.to(device)


def samples_per_second(step, batch_size: int, steps: int, device: torch.device) -> float:
    step()  # warm-up: allocations, optimizer state
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return batch_size * steps / (time.perf_counter() - started)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(setup: str, args, device: torch.device) -> None:
    model = build_model(**SETUPS[setup], seed=args.seed).to(device).train()
    reference = ReferenceModel(model).to(device).train()
    if reference.prefix_only:
        reference.gpt.requires_grad_(True)  # ClipCap never freezes them: their gradients are computed
    batch = make_batch(args.batch_size, args.max_tokens, model.gpt.config.vocab_size, device, args.seed)
    precision = autocast_dtype(device)

    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-5)
    ours = samples_per_second(
        lambda: optimization_step(model, optimizer, trainable, batch, precision, 1.0),
        args.batch_size,
        args.steps,
        device,
    )
    reference_optimizer = torch.optim.AdamW(reference.optimized_parameters(), lr=2e-5)
    theirs = samples_per_second(
        lambda: reference_step(reference, reference_optimizer, *batch), args.batch_size, args.steps, device
    )
    print(
        f"{setup:<12} prefix {model.config.prefix_length:>2}, GPT-2 {'fine-tuned' if model.config.train_gpt2 else 'frozen'}: "
        f"reference {theirs:7.2f} samples/s, ours {ours:7.2f} samples/s, ratio {ours / theirs:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--setup", choices=[*SETUPS, "both"], default="both")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=24, help="longest caption in the batch, in tokens")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per side, after one warm-up step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = autocast_dtype(device)
    print(
        f"device: {device}, threads: {torch.get_num_threads()}, batch {args.batch_size}, captions up to "
        f"{args.max_tokens} tokens; ours in {'fp32' if precision is None else str(precision).removeprefix('torch.')} "
        "(autocast where the device has it), reference in fp32"
    )
    for setup in SETUPS if args.setup == "both" else [args.setup]:
        compare(setup, args, device)


if __name__ == "__main__":
    main()
