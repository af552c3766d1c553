"""Where torch runs: CUDA with mixed precision when there is a GPU, otherwise the CPU cores this process may use."""

from __future__ import annotations

import contextlib
import os

_thread_limit: int | None = None


def threads_limit(threads: int) -> None:
    """Cap torch's CPU threads in this process (a web process: many requests share the cores, none trains).

    Call it before torch is imported: the OpenMP and MKL pools are sized from the environment then.
    """
    global _thread_limit
    _thread_limit = max(1, threads)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = str(_thread_limit)


def loaded_objects_freeze() -> None:
    """Move everything loaded so far (Django at start-up; torch and a model when first used) out of the garbage
    collector's reach. Never-freed objects are otherwise walked by every full collection, and a save that
    parses a thousand shapes triggers several: torch and one model made re-saving 1,000 polygons take 3x
    longer (bench/annotations.py, 83 ms at f63ad2e, 259 ms once uploads embedded in the same process)."""
    import gc

    gc.collect()
    gc.freeze()


def cpu_count() -> int:
    """The cores this process may run on (a container's affinity, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def device_choose(preference: str = "auto"):
    """CUDA when asked for or available, else the CPU, with torch's threads set to our cores (or the cap)."""
    import torch

    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    torch.set_num_threads(_thread_limit or cpu_count())
    return torch.device("cpu")


def describe(device) -> str:
    import torch

    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def autocast(device):
    """Mixed precision on a GPU (fp16 with a scaler, or bf16 where supported); full precision on the CPU."""
    import torch

    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def grad_scaler(device):
    import torch

    enabled = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=enabled)
