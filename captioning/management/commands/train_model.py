"""`manage.py train_model`: the seed's 02_Train_Plus.py, over mlcore.train.

Several GPUs: `torchrun --nproc_per_node=N manage.py train_model ...` (DistributedDataParallel).
"""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from mlcore.errors import MlcoreError
from mlcore.train import TrainingOptions, train


class Command(BaseCommand):
    help = "Trains a ClipCap captioner on an embedding file written by encode_coco."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--data", required=True, help="training embedding file (.safetensors)")
        parser.add_argument("--val_data", "--val-data", help="validation embedding file")
        parser.add_argument("--out-dir", "--out_dir", default="models", help="where checkpoints and metrics go")
        parser.add_argument("--name", default="clip_pro", help="checkpoint name prefix (NAME-best, NAME-latest)")
        parser.add_argument("--mapping_type", "--mapping-type", choices=["mlp", "transformer"], default="mlp")
        parser.add_argument("--prefix_length", "--prefix-length", type=int, default=10)
        parser.add_argument("--prefix_length_clip", "--prefix-length-clip", type=int, default=10)
        parser.add_argument("--num_layers", "--num-layers", type=int, default=8)
        parser.add_argument("--gpt2", default="gpt2", help="GPT-2 hub name or local directory (default gpt2)")
        parser.add_argument("--tokenizer", help="tokenizer hub name or directory (default: the GPT-2 source)")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--only_prefix", "--only-prefix", action="store_true", help="freeze GPT-2, train the mapper")
        mode.add_argument("--train_gpt", "--train-gpt", action="store_true", help="fine-tune GPT-2 too (default)")
        parser.add_argument("--normalize_prefix", "--normalize-prefix", action="store_true")
        parser.add_argument("--feature_noise_scale", "--feature-noise-scale", type=float, default=0.0)
        parser.add_argument("--epochs", type=int, default=10)
        parser.add_argument("--bs", "--batch-size", dest="bs", type=int, default=40)
        parser.add_argument("--lr", type=float, default=2e-5)
        parser.add_argument("--weight_decay", "--weight-decay", type=float, default=0.0)
        parser.add_argument("--warmup", type=int, default=5000, help="warm-up steps (default 5000)")
        parser.add_argument("--schedule", choices=["linear", "cosine", "constant"], default="linear")
        parser.add_argument("--grad_clip", "--grad-clip", type=float, default=1.0, help="0 turns clipping off")
        parser.add_argument("--max_caption_tokens", "--max-caption-tokens", type=int)
        parser.add_argument("--eval_every", "--eval-every", type=int, help="also validate every N steps")
        parser.add_argument("--patience", type=int, help="stop after N epochs without a better validation loss")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda")
        parser.add_argument("--no-mixed-precision", action="store_true", help="train in fp32 on the GPU too")
        parser.add_argument("--resume", action="store_true", help="continue from OUT_DIR/NAME-latest")
        parser.add_argument("--max-steps", type=int, help="stop after N optimizer steps (smoke tests)")

    def handle(self, *args, **options) -> None:
        try:
            training = TrainingOptions(
                data=options["data"],
                val_data=options["val_data"],
                out_dir=options["out_dir"],
                name=options["name"],
                mapper_type=options["mapping_type"],
                prefix_length=options["prefix_length"],
                prefix_length_clip=options["prefix_length_clip"],
                num_layers=options["num_layers"],
                gpt2=options["gpt2"],
                tokenizer=options["tokenizer"],
                train_gpt2=not options["only_prefix"],
                normalize_prefix=options["normalize_prefix"],
                feature_noise_scale=options["feature_noise_scale"],
                epochs=options["epochs"],
                batch_size=options["bs"],
                lr=options["lr"],
                weight_decay=options["weight_decay"],
                warmup_steps=options["warmup"],
                schedule=options["schedule"],
                grad_clip=options["grad_clip"] or None,
                max_caption_tokens=options["max_caption_tokens"],
                eval_every_steps=options["eval_every"],
                patience=options["patience"],
                seed=options["seed"],
                device=options["device"],
                mixed_precision=not options["no_mixed_precision"],
                resume=options["resume"],
                max_steps=options["max_steps"],
            )
            summary = train(training, log=self.stdout.write)
        except (MlcoreError, ValueError) as error:
            raise CommandError(str(error)) from error
        self.stdout.write(summary.as_text())
