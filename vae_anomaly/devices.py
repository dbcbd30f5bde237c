"""Where the VAE runs: the training and scoring device, the fitted module's copy on it, and how many
CPU threads torch may use for a fit or a scoring pass.

Devices: ``"auto"`` picks CUDA, then MPS, then CPU; small training sets stay on the CPU. The fitted
module stays on the CPU; a copy is made on a scoring device once and kept as long as the module.

Threads: torch's intra-op threads spin while they wait for each other. On cores shared with other
processes (Spark executors, ``n_jobs`` workers, a Kubernetes CPU limit) a spinning thread waits for a
core the others hold, and a small model's step, which splits into slivers of microseconds, slows many
times over. One thread has nothing to wait for, and for a small model it is as fast on idle cores too
(``benchmarks/cpu_threads.py``), so small work runs on one thread and larger work on as many threads
as the process may use.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import torch

from vae_anomaly.cpus import SMALL_WORK_MACS, available_cpus
from vae_anomaly.model import GaussianVAE

# At most this many scoring batches run at once (scoring_workers): each holds a batch's temporaries (about
# 16 MiB), and the part of a batch that holds the GIL (about a tenth of it on 2 cores) caps the gain of
# more workers near 5x at 8.
MAX_SCORING_WORKERS = 8


# device="auto" trains sets of fewer rows than this on the CPU: an epoch of one small batch costs a GPU
# more in launches and synchronisations than in arithmetic (ADBench sets of 150-350 rows trained up to
# 2x slower on an H200 than on its CPU; see benchmarks/RESULTS.md).
AUTO_GPU_MIN_ROWS = 1000


def scoring_workers(n_threads: int | Literal["auto"], work_macs: float) -> int:
    """Scoring batches to run at once, each on a Python thread of its own, for ``work_macs`` per batch.

    Torch runs an operation without holding the GIL, so batches on separate Python threads run in
    parallel, each on one torch thread. Unlike torch's intra-op threads they never wait for each
    other inside an operation, so a core taken by another process slows them down by its share, not
    many times over.

    Parameters
    ----------
    n_threads : int or "auto"
        "auto": every CPU the process may use (``available_cpus``), at most ``MAX_SCORING_WORKERS``,
        for work that ``choose_threads`` gives one torch thread; otherwise 1 (torch's own threads
        then split each batch).
    work_macs : float
        Multiply-adds of one scoring batch's forward pass.

    Returns
    -------
    int
    """
    if n_threads == "auto" and work_macs < SMALL_WORK_MACS:
        return min(available_cpus(), MAX_SCORING_WORKERS)
    return 1


@contextmanager
def torch_threads(n_threads: int) -> Iterator[None]:
    """Run the body with torch's intra-op thread count set to ``n_threads``, then restore it.

    Parameters
    ----------
    n_threads : int
        Threads for the body.
    """
    previous = torch.get_num_threads()
    if n_threads == previous:
        yield
        return
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def resolve_device(device: str) -> torch.device:
    """Turn ``"auto"`` into CUDA, else MPS, else CPU; check that an explicit device exists.

    Parameters
    ----------
    device : str
        ``"auto"`` or a torch device string such as ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"mps"``.

    Returns
    -------
    torch.device
    """
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"device={device!r} is not a device torch knows: use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'."
        ) from None
    if resolved.type == "cpu":
        return resolved
    backend = torch.backends.mps if resolved.type == "mps" else getattr(torch, resolved.type, None)
    available = getattr(backend, "is_available", None)
    if available is None or not available():
        raise ValueError(
            f"device={device!r} was asked for, but torch sees no {resolved.type.upper()} device."
        )
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was asked for, but torch sees {torch.cuda.device_count()} CUDA device(s)."
        )
    return resolved


def training_device(device: str, n_rows: int) -> torch.device:
    """The device that trains ``n_rows`` rows: :func:`resolve_device`, but the CPU for ``"auto"`` and
    fewer than ``AUTO_GPU_MIN_ROWS`` rows."""
    if device == "auto" and n_rows < AUTO_GPU_MIN_ROWS:
        return torch.device("cpu")
    return resolve_device(device)


# Copies of fitted modules on a scoring device, kept as long as the module lives. They are kept outside
# the detector, so that scoring leaves it unchanged and a pickle of it never holds a GPU tensor.
_DEVICE_COPIES: weakref.WeakKeyDictionary[GaussianVAE, dict[torch.device, GaussianVAE]] = (
    weakref.WeakKeyDictionary()
)


def device_copy(module: GaussianVAE, device: torch.device) -> GaussianVAE:
    """A copy of the fitted ``module`` on ``device``, made once."""
    copies = _DEVICE_COPIES.setdefault(module, {})
    if device not in copies:
        copies[device] = copy.deepcopy(module).to(device).eval()
    return copies[device]
