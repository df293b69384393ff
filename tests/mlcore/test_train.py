import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from mlcore.captioner import Captioner
from mlcore.checkpoint import WEIGHTS_FILE
from mlcore.data import EmbeddingSet
from mlcore.model import load_gpt2, load_tokenizer
from mlcore.train import (
    TrainingOptions,
    build_model,
    caption_loss,
    optimizer_parameter_groups,
    tokenize_captions,
    train,
)

SCENES = [
    "a red circle on black!",
    "a blue square on grey",
    "a green star to the left",
    "a small yellow triangle near the top",
]


def scene_set(path: Path, images_per_scene: int = 6, seed: int = 0, size: int = 24) -> Path:
    """Images of four scenes: each scene's embeddings cluster around its own centre."""
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(len(SCENES), size, generator=generator) * 3
    rows = [(scene, centres[scene] + 0.1 * torch.randn(size, generator=generator)) for scene in range(len(SCENES))]
    rows = [row for row in rows for _ in range(images_per_scene)]
    dataset = EmbeddingSet.from_images(
        embeddings=torch.stack([embedding for _, embedding in rows]),
        image_ids=list(range(len(rows))),
        file_names=[f"{index}.png" for index in range(len(rows))],
        captions_per_image=[[SCENES[scene]] * 2 for scene, _ in rows],
        clip_model="local-dir:clip",
    )
    return dataset.save(path)


def options(tmp_path, tiny_gpt2_dir, **overrides) -> TrainingOptions:
    values = {
        "data": scene_set(tmp_path / "train.safetensors"),
        "val_data": scene_set(tmp_path / "val.safetensors", images_per_scene=2, seed=0),
        "out_dir": tmp_path / "run",
        "gpt2": str(tiny_gpt2_dir),
        "prefix_length": 4,
        "epochs": 6,
        "batch_size": 8,
        "lr": 1e-2,
        "warmup_steps": 5,
        "progress": False,
        "device": "cpu",
    }
    return TrainingOptions(**(values | overrides))


def test_captions_are_tokenised_with_end_of_text_and_keep_exclamation_marks(tmp_path, tiny_gpt2_dir):
    tokenizer = load_tokenizer(tiny_gpt2_dir)
    captions = tokenize_captions(EmbeddingSet.load(scene_set(tmp_path / "s.safetensors")), tokenizer, max_tokens=40)
    first = captions.tokens[0, : captions.lengths[0]].tolist()
    assert first[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(first[:-1]) == "a red circle on black!"
    assert "!" in tokenizer.convert_ids_to_tokens(first)


def test_loss_ignores_padding(tmp_path, tiny_gpt2_dir):
    tokenizer = load_tokenizer(tiny_gpt2_dir)
    captions = tokenize_captions(EmbeddingSet.load(scene_set(tmp_path / "s.safetensors")), tokenizer, max_tokens=40)
    from tests.conftest import make_captioner_config, make_random_model

    model = make_random_model(make_captioner_config(Path("clip"), tiny_gpt2_dir, train_gpt2=True), tiny_gpt2_dir, 0)
    short, long = 0, 6 * 2 * 3  # "a red circle on black!" and "a small yellow triangle near the top"
    indices = torch.tensor([short, long])
    tokens, lengths, embeddings = captions.batch(indices)
    assert lengths[0] < lengths[1]
    with torch.no_grad():
        together = caption_loss(model, tokens, lengths, embeddings)
        alone = [caption_loss(model, *captions.batch(torch.tensor([i]))) for i in (short, long)]
        padded_differently = tokens.clone()
        padded_differently[0, lengths[0] :] = 7
        assert caption_loss(model, padded_differently, lengths, embeddings) == pytest.approx(float(together))
    weights = lengths.float() / lengths.sum()
    assert float(together) == pytest.approx(float(weights[0] * alone[0] + weights[1] * alone[1]), rel=1e-5)


def test_weight_decay_shrinks_weight_matrices_but_never_biases_or_layer_norm_gains(tmp_path, tiny_gpt2_dir):
    model, _ = build_model(options(tmp_path, tiny_gpt2_dir, train_gpt2=True), "local-dir:clip", 24)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    optimizer = torch.optim.AdamW(optimizer_parameter_groups(model, weight_decay=0.5), lr=0.1)
    for parameter in model.parameters():
        parameter.grad = torch.zeros_like(parameter)  # with no gradient, AdamW moves a parameter by its decay alone

    optimizer.step()

    changed = {name for name, parameter in model.named_parameters() if not torch.equal(parameter, before[name])}
    matrices = {name for name, parameter in model.named_parameters() if parameter.ndim >= 2}
    assert changed == matrices
    assert any(name.endswith("ln_1.weight") for name in before) and any(name.endswith(".bias") for name in before)


def test_training_learns_to_caption_each_scene(tmp_path, tiny_gpt2_dir):
    summary = train(options(tmp_path, tiny_gpt2_dir, epochs=12))

    history = [json.loads(line) for line in summary.metrics_path.read_text().splitlines()]
    assert history[-1]["val_loss"] < 0.25 * history[0]["val_loss"]
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("epoch,step,train_loss,val_loss")
    assert summary.plot_path is not None and summary.plot_path.stat().st_size > 1000
    captioner = Captioner.load(summary.best_checkpoint, device="cpu")
    validation = EmbeddingSet.load(tmp_path / "val.safetensors")
    results = captioner.caption_embeddings(validation.embeddings, strategy="greedy")
    expected = [captions[0] for captions in validation.captions_by_image()]
    assert [result.text for result in results] == expected
    config = captioner.config
    assert config.training["epochs"] == 12 and config.training["val_loss"] == pytest.approx(history[-1]["val_loss"])


def test_prefix_only_training_leaves_gpt2_untouched_and_stores_the_mapper(tmp_path, tiny_gpt2_dir):
    summary = train(options(tmp_path, tiny_gpt2_dir, train_gpt2=False, epochs=2))
    captioner = Captioner.load(summary.latest_checkpoint, device="cpu")
    original = load_gpt2(tiny_gpt2_dir)
    for (name, trained), untouched in zip(
        captioner.model.gpt.state_dict().items(), original.state_dict().values(), strict=True
    ):
        assert torch.equal(trained, untouched), name
    with safe_open(summary.latest_checkpoint / WEIGHTS_FILE, framework="pt") as handle:
        assert all(name.startswith("clip_project.") for name in handle.keys())  # noqa: SIM118


def test_early_stopping_ends_training_when_validation_stops_improving(tmp_path, tiny_gpt2_dir):
    # Validation captions swap scenes: the better the model fits training, the worse validation gets.
    swapped = EmbeddingSet.load(scene_set(tmp_path / "v.safetensors", images_per_scene=2))
    captions = swapped.captions_by_image()
    swapped = EmbeddingSet.from_images(
        swapped.embeddings, swapped.image_ids, swapped.file_names, captions[::-1], swapped.clip_model
    )
    summary = train(
        options(tmp_path, tiny_gpt2_dir, val_data=swapped.save(tmp_path / "swapped.safetensors"), epochs=20, patience=2)
    )
    assert summary.stopped_early
    assert summary.epochs_run < 20
    assert summary.best_checkpoint.is_dir() and summary.latest_checkpoint.is_dir()


def test_resuming_continues_where_training_stopped(tmp_path, tiny_gpt2_dir):
    straight = train(options(tmp_path / "a", tiny_gpt2_dir, epochs=4, feature_noise_scale=0.1))
    # The same run, interrupted after two of its four epochs (6 steps each), then resumed.
    interrupted = train(options(tmp_path / "b", tiny_gpt2_dir, epochs=4, feature_noise_scale=0.1, max_steps=12))
    assert interrupted.epochs_run == 2
    resumed = train(options(tmp_path / "b", tiny_gpt2_dir, epochs=4, feature_noise_scale=0.1, resume=True))
    assert resumed.steps == straight.steps
    a = Captioner.load(straight.latest_checkpoint, device="cpu").model.state_dict()
    b = Captioner.load(resumed.latest_checkpoint, device="cpu").model.state_dict()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=1e-4, atol=1e-5, msg=name)


def test_each_optimisation_step_is_reported_with_the_steps_in_all(tmp_path, tiny_gpt2_dir):
    steps: list[tuple[int, int]] = []
    train(options(tmp_path, tiny_gpt2_dir, epochs=2), on_step=lambda done, total: steps.append((done, total)))
    assert steps == [(step, 12) for step in range(1, 13)]  # 48 captions in batches of 8, twice


def test_resume_without_a_previous_run_is_a_clear_error(tmp_path, tiny_gpt2_dir):
    from mlcore.errors import DataError

    with pytest.raises(DataError, match="nothing to resume"):
        train(options(tmp_path, tiny_gpt2_dir, resume=True))


def test_training_runs_under_torchrun_with_two_processes(tmp_path, tiny_gpt2_dir):
    data = scene_set(tmp_path / "train.safetensors")
    script = (
        "from mlcore.train import TrainingOptions, train\n"
        f"train(TrainingOptions(data={str(data)!r}, out_dir={str(tmp_path / 'run')!r}, gpt2={str(tiny_gpt2_dir)!r},"
        " prefix_length=4, epochs=2, batch_size=8, lr=1e-2, warmup_steps=2, progress=False, device='cpu'))\n"
    )
    (tmp_path / "train_ddp.py").write_text(script)
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(tmp_path / "train_ddp.py"),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2  # one process writes the metrics, once per epoch
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    Captioner.load(tmp_path / "run" / "clip_pro-latest", device="cpu")
