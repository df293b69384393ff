"""Choosing a device and the precision to run on it. The same code path serves CPU and CUDA."""

import contextlib
from collections.abc import Iterator

import torch


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """`auto` (or None) picks CUDA when present, else the CPU."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was requested but CUDA is not available on this machine")
    return resolved


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Reduced precision where the hardware runs it fast: bf16 (or fp16) on CUDA, none on the CPU.

    On CPUs without native bf16 matrix units (AVX2 machines), bf16 matmuls run ~100x slower than fp32.
    """
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@contextlib.contextmanager
def inference_context(device: torch.device, use_autocast: bool = True) -> Iterator[None]:
    dtype = autocast_dtype(device) if use_autocast else None
    with torch.inference_mode():
        if dtype is None:
            yield
        else:
            with torch.autocast(device_type=device.type, dtype=dtype):
                yield


def default_batch_size(device: torch.device, bytes_per_item: int, cpu_batch_size: int = 32) -> int:
    """A batch that fits in about half of the free accelerator memory; a fixed size on the CPU."""
    if device.type != "cuda":
        return cpu_batch_size
    free_bytes, _total = torch.cuda.mem_get_info(device)
    return max(1, min(1024, int(free_bytes * 0.5) // max(1, bytes_per_item)))
