"""The training run's metrics: one JSON line and one CSV row per measurement, and the loss curves as a PNG."""

import csv
import json
from pathlib import Path


class MetricsLog:
    """Appends one JSON line (and one CSV row) per measurement; draws the loss curves."""

    FIELDS = ("epoch", "step", "train_loss", "val_loss", "lr", "samples_per_second")

    def __init__(self, out_dir: Path, enabled: bool = True):
        self.enabled = enabled
        self.jsonl_path = out_dir / "metrics.jsonl"
        self.csv_path = out_dir / "metrics.csv"
        self.plot_path = out_dir / "loss.png"
        if enabled:
            out_dir.mkdir(parents=True, exist_ok=True)

    def write(self, **values) -> None:
        if not self.enabled:
            return
        row = {name: values.get(name) for name in self.FIELDS}
        with self.jsonl_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        new_file = not self.csv_path.exists()
        with self.csv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.FIELDS)
            if new_file:
                writer.writeheader()
            writer.writerow(row)

    def rows(self) -> list[dict]:
        if not self.jsonl_path.exists():
            return []
        return [json.loads(line) for line in self.jsonl_path.read_text().splitlines() if line.strip()]

    def plot(self) -> None:
        if not self.enabled:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        rows = self.rows()
        figure, axis = plt.subplots(figsize=(7, 4))
        axis.plot([r["step"] for r in rows], [r["train_loss"] for r in rows], marker="o", label="train")
        validated = [r for r in rows if r["val_loss"] is not None]
        if validated:
            axis.plot(
                [r["step"] for r in validated], [r["val_loss"] for r in validated], marker="o", label="validation"
            )
        axis.set_xlabel("optimizer step")
        axis.set_ylabel("cross-entropy per token")
        axis.grid(alpha=0.3)
        axis.legend()
        figure.tight_layout()
        figure.savefig(self.plot_path, dpi=100)
        plt.close(figure)
