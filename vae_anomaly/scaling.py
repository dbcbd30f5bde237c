"""Scaling: the standardization fitted on training values, and the rows it makes for the VAE.

``StandardizedRows`` and ``ObservedRows`` are row sources for ``scoring.score_rows``: a slice of rows
at a time, so a scored X is never copied whole. ``standardized_arrays`` makes whole arrays, as
training takes them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import torch

from vae_anomaly.column_statistics import ColumnStatistics
from vae_anomaly.numpy_vae import module_input
from vae_anomaly.value_checks import read_only_tensor

# Rows standardized at a time: float64 temporaries of this many rows stay in cache.
STANDARDIZE_BLOCK_ROWS = 16_384


# Raw rows sent to a device at once by StandardizedRows.tensor: one large copy instead of one a batch,
# so the host does not wait on the device between batches.
DEVICE_CHUNK_BYTES = 256 * 2**20
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class StandardizedRows:
    """X standardized to float32 a slice of rows at a time: a DeviceRowSource for ``score_rows``.

    Scoring reads it a batch at a time, so a scored X is never copied whole (2M x 32 rows saved a
    256 MB float32 copy and its page faults). Missing values become 0, the column mean. On CUDA the raw
    values cross to the device and are standardized there (``tensor``), which takes the host's
    arithmetic out of GPU scoring.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features), float64 or float32
        Checked values; NaN where missing.
    mean, scale : ndarray of shape (n_features,)
        The fitted standardization.
    complete : bool
        True when X has no NaN, so no slice needs its NaN replaced.
    """

    def __init__(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray, complete: bool) -> None:
        self._x, self._mean, self._scale, self._complete = x, mean, scale, complete
        # (device, first row, raw rows from there, mean, scale): the chunk ``tensor`` cuts batches from.
        self._chunk: tuple[torch.device, int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self._x)

    @property
    def n_features(self) -> int:
        """Values per row."""
        return self._x.shape[1]

    def __getitem__(self, rows: slice) -> np.ndarray:
        return module_input(self._x[rows], self._mean, self._scale, self._complete)

    def tensor(self, rows: slice, device: torch.device) -> torch.Tensor:
        """``self[rows]`` made on ``device``: the same float64 arithmetic there, so the same float32 bits.

        The raw rows cross to the device ``DEVICE_CHUNK_BYTES`` at a time, and batches are cut from
        the chunk there; call it from one thread.

        Parameters
        ----------
        rows : slice
            Which rows, with step 1.
        device : torch.device
            Where the raw values go and are standardized.

        Returns
        -------
        Tensor of shape (n_rows, n_features), float32
        """
        start, stop, _ = rows.indices(len(self._x))
        chunk = self._chunk
        if chunk is None or chunk[0] != device or not chunk[1] <= start <= stop <= chunk[1] + len(chunk[2]):
            row_bytes = max(1, self._x.shape[1]) * self._x.itemsize
            end = min(len(self._x), start + max(stop - start, DEVICE_CHUNK_BYTES // row_bytes))
            chunk = self._chunk = (
                device,
                start,
                _on_device(self._x[start:end], device),
                torch.as_tensor(self._mean, dtype=torch.float64, device=device),
                torch.as_tensor(self._scale, dtype=torch.float64, device=device),
            )
        _, first, raw, mean, scale = chunk
        values = raw[start - first : stop - first].to(torch.float64) - mean
        values /= scale
        if not self._complete:
            values.masked_fill_(values.isnan(), 0.0)
        return values.to(torch.float32)


def _on_device(block: np.ndarray, device: torch.device) -> torch.Tensor:
    """``block`` copied to ``device`` as it is (its dtype, NaN kept)."""
    if block.flags.c_contiguous or block.strides[0] != block.itemsize:
        return read_only_tensor(np.ascontiguousarray(block)).to(device)
    # A column-major X (as pandas holds it) crosses a column at a time, each a contiguous run.
    columns = torch.empty((block.shape[1], len(block)), dtype=_TORCH_DTYPES[block.dtype], device=device)
    for column, values in zip(columns, block.T, strict=True):
        column.copy_(read_only_tensor(values))
    return columns.T


class ObservedRows:
    """The observed-value mask of X (1 observed, 0 missing) in float32, a slice of rows at a time."""

    def __init__(self, x: np.ndarray) -> None:
        self._x = x

    def __len__(self) -> int:
        return len(self._x)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return (~np.isnan(self._x[rows])).astype(np.float32, order="C")


def column_std(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``x.std(axis=0)`` given the column means, in blocks of rows: no temporary the size of X."""
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), STANDARDIZE_BLOCK_ROWS):
        deviations = x[start : start + STANDARDIZE_BLOCK_ROWS] - mean
        squares += np.square(deviations, out=deviations).sum(axis=0)
    return np.sqrt(squares / len(x))


def binary_columns(x: np.ndarray) -> np.ndarray:
    """Which columns hold only the values 0 and 1, both of them.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Values; NaN is missing and ignored.

    Returns
    -------
    ndarray of bool, shape (n_features,)
    """
    with warnings.catch_warnings():  # a column of NaN alone is refused by the caller, not here
        warnings.simplefilter("ignore", RuntimeWarning)
        binary = (np.nanmin(x, axis=0) == 0) & (np.nanmax(x, axis=0) == 1)
    for column in np.flatnonzero(binary):  # the few candidates only: no temporary the size of X
        values = x[:, column]
        binary[column] = bool(np.all((values == 0) | (values == 1) | np.isnan(values)))
    return binary


def no_binary_features(n_features: int) -> np.ndarray:
    """``binary_features_`` where every feature is scaled: none kept."""
    return np.zeros(n_features, dtype=bool)


def fit_scaling(
    x: np.ndarray,
    complete: bool,
    *,
    min_relative_scale: float,
    keep_binary: bool,
    empty_features: Callable[[np.ndarray], str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each feature's mean and scale from its observed values (NaN is missing), and which are 0/1 flags.

    The scale is the standard deviation, at least ``min_relative_scale`` times the absolute mean;
    1 for a constant feature, and for a 0/1 feature when ``keep_binary``.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Training values.
    complete : bool
        True when ``x`` has no NaN.
    min_relative_scale : float
    keep_binary : bool
    empty_features : callable
        Given the mask of features with an observed value, names those without, for the error.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,), float64
    binary : ndarray of shape (n_features,), bool

    Raises
    ------
    ValueError
        If a feature has no observed value.
    """
    # nanmean/nanstd copy X; without NaN the plain reductions give the same numbers 9x faster.
    seen = np.ones(x.shape[1], dtype=bool) if complete else ~np.isnan(x).all(axis=0)
    _check_observed(seen, empty_features)
    mean = x.mean(axis=0) if complete else np.nanmean(x, axis=0)
    std = column_std(x, mean) if complete else np.nanstd(x, axis=0)
    binary = binary_columns(x) if keep_binary else no_binary_features(x.shape[1])
    return mean, _scale(mean, std, binary, min_relative_scale), binary


def scaling_from_statistics(
    statistics: ColumnStatistics,
    *,
    min_relative_scale: float,
    keep_binary: bool,
    empty_features: Callable[[np.ndarray], str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`fit_scaling`'s mean, scale and 0/1 features from statistics of the training values
    gathered elsewhere (e.g. over a parquet folder a batch at a time), by the same rules.

    Parameters
    ----------
    statistics : ColumnStatistics
        In place of the training values; the other parameters, what it returns and raises are
        :func:`fit_scaling`'s.
    min_relative_scale, keep_binary, empty_features
    """
    seen = statistics.count > 0
    _check_observed(seen, empty_features)
    binary = statistics.binary.copy() if keep_binary else no_binary_features(len(seen))
    mean = statistics.mean.astype(np.float64)
    return mean, _scale(mean, np.sqrt(statistics.variance), binary, min_relative_scale), binary


def _check_observed(seen: np.ndarray, empty_features: Callable[[np.ndarray], str]) -> None:
    if not seen.all():
        raise ValueError(f"{empty_features(seen)} have no observed values in X; drop them or fill them.")


def _scale(mean: np.ndarray, std: np.ndarray, binary: np.ndarray, min_relative_scale: float) -> np.ndarray:
    """The standard deviation, at least ``min_relative_scale`` times the absolute mean; 1 for a
    constant feature and for a kept 0/1 feature."""
    floored = np.maximum(std, min_relative_scale * np.abs(mean))
    return np.where((std > 0) & ~binary, floored, 1.0)


def standardized_arrays(
    source: StandardizedRows | np.ndarray, observed: ObservedRows | np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``source`` and ``observed`` read whole, as training takes them; arrays are returned as they are.

    Parameters
    ----------
    source : StandardizedRows or ndarray
    observed : ObservedRows or None, or with an ndarray ``source`` an ndarray or None

    Returns
    -------
    rows : ndarray of shape (n_samples, n_features), float32
        Missing values at the feature mean (0).
    mask : ndarray of the same shape, float32, or None when nothing is missing
    """
    if isinstance(source, np.ndarray):  # already whole, as fit passes them: the mask is too
        return source, observed
    rows = np.empty((len(source), source.n_features), dtype=np.float32)
    # In blocks of rows, so that the float64 temporaries stay small and in cache.
    for start in range(0, len(rows), STANDARDIZE_BLOCK_ROWS):
        block = slice(start, start + STANDARDIZE_BLOCK_ROWS)
        rows[block] = source[block]
    return rows, None if observed is None else observed[:]
