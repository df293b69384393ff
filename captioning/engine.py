"""The captioning engine as a worker process holds it: loaded on first use, then kept.

Nothing here runs at import time. django-q2 forks its workers from the cluster process, and a CUDA context
created before a fork is unusable in the children; so mlcore (and torch) are imported and the model loaded
inside the worker, on its first batch, and kept for the next ones.
"""

from collections import OrderedDict
from pathlib import Path
from threading import Lock
from typing import TYPE_CHECKING

from django.conf import settings

from captioning.models import ModelVersion

if TYPE_CHECKING:
    from mlcore import Captioner

# Two models at most stay loaded: the active one and one a re-caption asked for.
MAX_LOADED = 2
_loaded: "OrderedDict[tuple[int, str], Captioner]" = OrderedDict()
_lock = Lock()


class CaptionModelMissing(Exception):
    """No model to caption with; the message says which command provides one."""


def no_active_model_message() -> str:
    return (
        "No captioning model is active. Run `python manage.py prepare_caption_model` "
        f"(installs and activates {settings.CAPTION_MODEL}, "
        f"or offline builds the demo model into {settings.CAPTION_MODEL_PATH}) or "
        "`python manage.py register_model PATH --activate`, then retry."
    )


def captioner_for(model_version: ModelVersion) -> "Captioner":
    """The loaded mlcore.Captioner for `model_version`, loading it on first use."""
    key = (model_version.pk, model_version.checkpoint_path)
    with _lock:
        if key in _loaded:
            _loaded.move_to_end(key)
            return _loaded[key]
        checkpoint = Path(model_version.checkpoint_path)
        if not (checkpoint / "config.json").is_file():  # mlcore.checkpoint.CONFIG_FILE; mlcore loads torch
            raise CaptionModelMissing(
                f"The checkpoint of model {model_version.name!r} is missing at {checkpoint}. Run "
                "`python manage.py prepare_caption_model` for the demo model, or register an existing checkpoint "
                "with `python manage.py register_model PATH --activate`, then retry."
            )
        from mlcore import Captioner
        from mlcore.devices import resolve_device

        device = resolve_device(settings.CAPTION_DEVICE)
        int8 = settings.CAPTION_INT8 and device.type == "cpu"
        captioner = Captioner.load(checkpoint, device=device, int8=int8)
        _loaded[key] = captioner
        while len(_loaded) > MAX_LOADED:
            _loaded.popitem(last=False)
        return captioner


def loaded_count() -> int:
    return len(_loaded)


def unload_all() -> None:
    with _lock:
        _loaded.clear()
