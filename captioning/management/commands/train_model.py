"""`manage.py train_model`: the seed's 02_Train_Plus.py, over mlcore.train.

Each flag stores straight into the `TrainingOptions` field of the same meaning (its `dest`) and takes that
field's default, so an option is spelled once here and once in mlcore.train.
Several GPUs: `torchrun --nproc_per_node=N manage.py train_model ...` (DistributedDataParallel).
"""

from dataclasses import MISSING, fields

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlcore.errors import MlcoreError
from mlcore.train import TrainingOptions, train

TRAINING_FIELDS = {field.name for field in fields(TrainingOptions)}
TRAINING_DEFAULTS = {field.name: field.default for field in fields(TrainingOptions) if field.default is not MISSING}


class Command(BaseCommand):
    help = "Trains a ClipCap captioner on an embedding file written by encode_coco."

    def add_arguments(self, parser: CommandParser) -> None:
        def option(field_name: str, *flags: str, **settings) -> None:
            if "action" not in settings:
                settings.setdefault("default", TRAINING_DEFAULTS.get(field_name))
            parser.add_argument(*flags, dest=field_name, **settings)

        option("data", "--data", required=True, help="training embedding file (.safetensors)")
        option("val_data", "--val_data", "--val-data", help="validation embedding file")
        option(
            "out_dir",
            "--out-dir",
            "--out_dir",
            default="models",
            help="where checkpoints and metrics go (default %(default)s)",
        )
        option("name", "--name", help="checkpoint name prefix (NAME-best, NAME-latest; default %(default)s)")
        option("mapper_type", "--mapping_type", "--mapping-type", choices=["mlp", "transformer"])
        option("prefix_length", "--prefix_length", "--prefix-length", type=int)
        option("prefix_length_clip", "--prefix_length_clip", "--prefix-length-clip", type=int)
        option("num_layers", "--num_layers", "--num-layers", type=int)
        option("gpt2", "--gpt2", help="GPT-2 hub name or local directory (default %(default)s)")
        option("tokenizer", "--tokenizer", help="tokenizer hub name or directory (default: the GPT-2 source)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--only_prefix", "--only-prefix", dest="train_gpt2", action="store_false", help="freeze GPT-2"
        )
        mode.add_argument(
            "--train_gpt", "--train-gpt", dest="train_gpt2", action="store_true", help="fine-tune GPT-2 (default)"
        )
        parser.set_defaults(train_gpt2=TRAINING_DEFAULTS["train_gpt2"])
        option("normalize_prefix", "--normalize_prefix", "--normalize-prefix", action="store_true")
        option("feature_noise_scale", "--feature_noise_scale", "--feature-noise-scale", type=float)
        option("epochs", "--epochs", type=int)
        option("batch_size", "--bs", "--batch-size", type=int)
        option("lr", "--lr", type=float)
        option("weight_decay", "--weight_decay", "--weight-decay", type=float, help="on weight matrices only")
        option("warmup_steps", "--warmup", type=int, help="warm-up steps (default %(default)s)")
        option("schedule", "--schedule", choices=["linear", "cosine", "constant"])
        option("grad_clip", "--grad_clip", "--grad-clip", type=float, help="0 turns clipping off")
        option("max_caption_tokens", "--max_caption_tokens", "--max-caption-tokens", type=int)
        option("eval_every_steps", "--eval_every", "--eval-every", type=int, help="also validate every N steps")
        option("patience", "--patience", type=int, help="stop after N epochs without a better validation loss")
        option("seed", "--seed", type=int)
        option("device", "--device", help="auto (CUDA when present), cpu, cuda")
        option("mixed_precision", "--no-mixed-precision", action="store_false", help="train in fp32 on the GPU too")
        option("resume", "--resume", action="store_true", help="continue from OUT_DIR/NAME-latest")
        option("max_steps", "--max-steps", type=int, help="stop after N optimizer steps (smoke tests)")

    def handle(self, *args, **options) -> None:
        values = {name: options[name] for name in TRAINING_FIELDS if name in options}
        values["grad_clip"] = values["grad_clip"] or None
        try:
            summary = train(TrainingOptions(**values), log=self.stdout.write)
        except (MlcoreError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.as_text())
