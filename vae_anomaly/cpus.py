"""The CPUs this process may use (its affinity mask, capped by a cgroup CPU quota: a container's or
Kubernetes' CPU limit), and how many threads a piece of work gets (``choose_threads``: torch's intra-op
threads, and the numpy scorers' BLAS threads). Torch-free, so that the numpy scorers can ask it too."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

_CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_CGROUP_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")

# A forward pass of fewer multiply-adds than this runs on one thread under n_threads="auto". The default
# time-series fit (160M a batch) ran 1.4x faster on two idle cores than on one, but 3.7x slower than on
# one beside a single busy process (benchmarks/cpu_threads.py): below this size the idle gain is not
# worth that risk.
SMALL_WORK_MACS = 1_000_000_000


def _cgroup_quota() -> float | None:
    """CPUs the cgroup's quota allows (a container's or Kubernetes' CPU limit), or None for no limit."""
    try:
        if _CGROUP_V2_MAX.is_file():
            quota, period = _CGROUP_V2_MAX.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if _CGROUP_V1_QUOTA.is_file():
            quota_us = int(_CGROUP_V1_QUOTA.read_text())
            return None if quota_us <= 0 else quota_us / int(_CGROUP_V1_PERIOD.read_text())
    except (OSError, ValueError):
        return None
    return None


def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask, capped by a cgroup CPU quota.

    Returns
    -------
    int
        At least 1.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cpus = min(cpus, max(1, math.floor(quota)))
    return max(1, cpus)


def choose_threads(n_threads: int | Literal["auto"], work_macs: float) -> int:
    """Threads (torch's intra-op threads, or numpy's BLAS threads) for work of ``work_macs`` multiply-adds
    per forward pass.

    Parameters
    ----------
    n_threads : int or "auto"
        An int is taken as it is, up to the CPUs the process may use (``available_cpus``): more
        threads than cores only wait for each other (5,000 slowed a fit 13x; 100,000 crashed torch).
        "auto": one thread for work under ``SMALL_WORK_MACS``, else every CPU the process may use.
    work_macs : float
        Multiply-adds of one forward pass (one training batch, or one scoring batch).

    Returns
    -------
    int
    """
    if n_threads != "auto":
        return min(int(n_threads), available_cpus())
    return 1 if work_macs < SMALL_WORK_MACS else available_cpus()
