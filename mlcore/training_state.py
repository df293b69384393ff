"""What `--resume` needs besides the checkpoint: optimizer moments, the schedule's position, the counters and
the random state. Tensors go to safetensors and the rest to JSON: nothing is pickled."""

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mlcore.errors import DataError

TRAINING_STATE_FILE = "training_state.safetensors"
TRAINING_PROGRESS_FILE = "training_state.json"


def save_training_state(directory: Path, optimizer, scheduler, progress: dict, noise_generator) -> None:
    """Optimizer moments as safetensors, counters and random state as JSON: nothing is pickled."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.ndim > 0:
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = float(value)
    tensors["cpu_rng_state"] = torch.get_rng_state()
    tensors["noise_rng_state"] = noise_generator.get_state()
    save_file(tensors, directory / TRAINING_STATE_FILE)
    document = {"progress": progress, "scalars": scalars, "scheduler": scheduler.state_dict()}
    document["scheduler"].pop("lr_lambdas", None)
    (directory / TRAINING_PROGRESS_FILE).write_text(json.dumps(document, indent=2))


def load_training_state(directory: Path, optimizer, scheduler, noise_generator) -> dict:
    state_path, progress_path = directory / TRAINING_STATE_FILE, directory / TRAINING_PROGRESS_FILE
    if not state_path.is_file() or not progress_path.is_file():
        raise DataError(f"{directory} has no training state to resume from")
    tensors = load_file(state_path)
    document = json.loads(progress_path.read_text())
    optimizer_state = optimizer.state_dict()
    for index in (index for group in optimizer_state["param_groups"] for index in group["params"]):
        entry = {key.split(".", 1)[1]: value for key, value in tensors.items() if key.split(".", 1)[0] == str(index)}
        for key, value in document["scalars"].get(str(index), {}).items():
            entry[key] = torch.tensor(value)
        if entry:
            optimizer_state["state"][index] = entry
    optimizer.load_state_dict(optimizer_state)
    scheduler_state = document["scheduler"]
    scheduler.last_epoch = scheduler_state["last_epoch"]
    scheduler._step_count = scheduler_state["_step_count"]
    for group, lr in zip(optimizer.param_groups, scheduler_state["_last_lr"], strict=True):
        group["lr"] = lr
    scheduler._last_lr = scheduler_state["_last_lr"]
    torch.set_rng_state(tensors["cpu_rng_state"])
    noise_generator.set_state(tensors["noise_rng_state"])
    return document["progress"]
