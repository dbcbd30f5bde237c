"""Checks of input values that need numpy alone: finiteness, observed rows, float32 range.

Each check names what it refuses (the column, its first bad row, how many rows) instead of failing on
the first bad value; none copies X whole. The detectors reach them through ``input_checks``; the numpy
scorer, which loads neither torch nor scikit-learn, calls them directly.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

_MAX_LISTED_PROBLEMS = 10
FLOAT32_MAX = float(np.finfo(np.float32).max)
# What a series' inf values should become: a NaN is a missing point, which the series detector takes.
SERIES_NON_FINITE_ADVICE = "Replace them with NaN to mark missing points."
# How a table's error about non-finite values ends, by whether NaN marks a missing value there.
TABLE_NON_FINITE_ADVICE = {
    True: "Replace them with NaN to mark them missing.",
    False: "Impute or drop them first, or pass missing='skip' to leave missing values out of the score.",
}


def column_label(feature_names: np.ndarray | None, column: int) -> str:
    """How error messages name a column: its name when the input had names, else its position."""
    return repr(str(feature_names[column])) if feature_names is not None else f"{column}"


def _listed_columns(
    bad: np.ndarray, feature_names: np.ndarray | None, describe: Callable[[int], str], first_row: int = 0
) -> str:
    """Each column with a bad value: what is wrong in it, in how many rows, and the first row (counted
    from ``first_row``, the number of ``bad``'s first row)."""
    problems = []
    for column in np.flatnonzero(bad.any(axis=0))[:_MAX_LISTED_PROBLEMS]:
        rows = np.flatnonzero(bad[:, column])
        problems.append(
            f"column {column_label(feature_names, column)}: {describe(column)} in {len(rows)} row(s), "
            f"first at row {first_row + rows[0]}"
        )
    return "; ".join(problems)


# From this many values the finiteness pass is worth starting torch's threads for.
THREADED_SUM_MIN_VALUES = 2**20


def read_only_tensor(x: np.ndarray) -> torch.Tensor:
    """``x`` as a CPU tensor sharing its memory, for reading: torch's warning that a read-only array
    (pandas may hand its values out so) could be written through the tensor does not apply."""
    import torch  # only callers that run torch get here

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(x)


def surely_finite(x: np.ndarray) -> bool:
    """True when a summing pass shows no NaN or inf in ``x``: one pass, no temporary the size of X.

    False means "check exactly": a NaN, an inf, or finite values whose sum overflows. A large ``x``
    is summed on torch's intra-op threads where torch can view it (numpy's sum takes one core), once
    torch is loaded: the numpy scorer sums with numpy rather than import torch for it.
    """
    threaded = "torch" in sys.modules and x.size >= THREADED_SUM_MIN_VALUES
    if threaded and x.dtype.isnative and min(x.strides) >= 0:
        return bool(read_only_tensor(x).sum().isfinite())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(x, axis=None)))


def has_no_nan(x: np.ndarray) -> bool:
    """True when ``x`` (already refused if it holds inf) has no missing value: the summing pass of
    :func:`surely_finite` first, the exact scan only when that is inconclusive."""
    return surely_finite(x) or not np.isnan(x).any()


def check_finite(
    x: np.ndarray, feature_names: np.ndarray | None, *, allow_nan: bool, advice: str, first_row: int = 0
) -> None:
    """Raise a ValueError naming each column with inf (and, unless allowed, NaN) values and its first
    row, counted from ``first_row`` (the number of ``x``'s first row, where it is part of a file)."""
    if surely_finite(x):
        return
    bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
    if not bad.any():
        return

    def kinds(column: int) -> str:
        values = x[:, column]
        found = [("NaN", np.isnan(values)), ("inf", np.isinf(values))]
        return " and ".join(k for k, f in found if f.any() and not (allow_nan and k == "NaN"))

    what = "infinite values" if allow_nan else "NaN or inf values"
    problems = _listed_columns(bad, feature_names, kinds, first_row)
    raise ValueError(f"X contains {what}, which the VAE cannot score: {problems}. {advice}")


def check_rows_observed(x: np.ndarray) -> None:
    """Raise a ValueError naming the rows of ``x`` in which every value is missing (NaN).

    Such a row holds no evidence either way: scored, it would come out as the most normal row there
    is, since nothing in it can be badly reconstructed.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Checked values, NaN where missing.

    Raises
    ------
    ValueError
        If a row has no observed value.
    """
    empty = np.flatnonzero(np.isnan(x).all(axis=1))
    if empty.size:
        listed = ", ".join(str(row) for row in empty[:_MAX_LISTED_PROBLEMS])
        more = f" and {empty.size - _MAX_LISTED_PROBLEMS} more" if empty.size > _MAX_LISTED_PROBLEMS else ""
        raise ValueError(
            f"X has {empty.size} row(s) with no observed value, every feature missing (row {listed}{more}): "
            "there is nothing in them to score. Drop them, or fill what is known."
        )


def check_float32_range(x: np.ndarray, feature_names: np.ndarray | None, *, first_row: int = 0) -> None:
    """Raise a ValueError naming each column with values the float32 VAE cannot hold, and its first row
    (counted from ``first_row``).

    Such a value would make its column's scale infinite or its standardized values overflow, so
    training refuses it rather than learn a column it cannot see.
    """
    # Column extremes first (reductions, no temporary the size of X); the mask only when one is out.
    if len(x) == 0 or max(np.fmax.reduce(x, axis=0).max(), -np.fmin.reduce(x, axis=0).min()) <= FLOAT32_MAX:
        return
    with np.errstate(invalid="ignore"):
        bad = np.abs(x) > FLOAT32_MAX
    if bad.any():
        problems = _listed_columns(
            bad, feature_names, lambda column: f"|value| > {FLOAT32_MAX:.3g}", first_row
        )
        raise ValueError(
            f"X contains values beyond float32's range, which the VAE trains in: {problems}. Rescale "
            "those columns first (e.g. other units or a log transform) or drop the rows."
        )
