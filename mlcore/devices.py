"""Choosing a device and the precision to run on it. The same code path serves CPU and CUDA."""

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import torch

T = TypeVar("T")


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


def across_cores(function: Callable[[torch.Tensor], T], inputs: torch.Tensor) -> list[T]:
    """`function` of consecutive slices of `inputs` (its first dimension), one slice per intra-op thread, each
    running on its own thread with one core, in the order of the slices. For work whose rows are independent (int8
    captioning: a row's result never depends on its batch-mates): two-thread OpenMP regions meet at a barrier
    after every operation, thousands per batch, where threads that each own whole rows run through without
    waiting. Captioning 64 images' prefixes in int8 on 2 cores, the same captions: 4.2-4.4 s in two halves
    against 4.5-5.2 s in one call with 2 OpenMP threads nearly quiet (load 1-1.5), 4.0-9.1 s against 34-107 s
    under load 3.5 (a thread another process deschedules stalls its partner at every barrier).

    While it runs, torch's intra-op thread count is 1 for the whole process (`torch.set_num_threads` is global);
    it is restored afterwards. Grad and inference modes, which are per thread, follow the caller's."""
    threads = torch.get_num_threads()
    parts = inputs.tensor_split(min(threads, inputs.shape[0])) if inputs.shape[0] > 1 else (inputs,)
    if threads <= 1 or len(parts) == 1:
        return [function(inputs)]
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run(part: torch.Tensor) -> T:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return function(part)

    torch.set_num_threads(1)
    try:
        futures = [_pool(threads - 1, os.getpid()).submit(run, part) for part in parts[1:]]
        try:
            first = run(parts[0])
        finally:
            wait(futures)
        return [first, *(future.result() for future in futures)]
    finally:
        torch.set_num_threads(threads)


@functools.cache
def _pool(workers: int, process_id: int) -> ThreadPoolExecutor:
    """A pool per process: a forked child inherits its parent's pool but none of its threads, and work handed to it
    would wait forever."""
    return ThreadPoolExecutor(
        workers, thread_name_prefix="mlcore-core", initializer=torch.set_num_threads, initargs=(1,)
    )
