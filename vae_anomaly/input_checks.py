"""Input checks shared by both detectors (numeric columns, finiteness, observed rows, float32 range) and
the checked input they give, ``Samples``.

Each check names what it refuses (the column, its first bad row, how many rows) instead of failing on
the first bad value; none copies X whole.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import validate_data

_MAX_LISTED_PROBLEMS = 10
FLOAT32_MAX = float(np.finfo(np.float32).max)


class Samples(NamedTuple):
    """A detector's checked input: its values (float64, NaN where missing; float32 where scoring was
    given float32), the index its outputs carry, whether no value is missing, and for a series made
    of separate segments their lengths (None: one series, or a table)."""

    values: np.ndarray
    index: pd.Index
    complete: bool
    segments: tuple[int, ...] | None = None


def column_label(feature_names: np.ndarray | None, column: int) -> str:
    """How error messages name a column: its name when the input had names, else its position."""
    return repr(str(feature_names[column])) if feature_names is not None else f"{column}"


def check_numeric_columns(X: Any) -> None:
    """Name every non-numeric DataFrame column instead of failing on the first unparsable value."""
    if not isinstance(X, pd.DataFrame):
        return
    bad = [
        f"{name!r} ({dtype})"
        for name, dtype in X.dtypes.items()
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    ]
    if bad:
        raise ValueError(
            f"X has non-numeric columns: {', '.join(bad)}. Encode them first, e.g. with a "
            "OneHotEncoder in a ColumnTransformer before the detector."
        )


def arrow_numbers_as_float(X: Any) -> Any:
    """X with its Arrow-backed numeric columns (decimals, ``int64[pyarrow]``, ...) as float64, nulls as
    NaN: scikit-learn's checks cannot read them. Any other X is returned as it is.

    Parameters
    ----------
    X : object
        Input as ``fit`` or scoring takes it.

    Returns
    -------
    object
        ``X``, or a copy of the DataFrame with those columns converted.
    """
    if not isinstance(X, pd.DataFrame):
        return X
    arrow = [
        name
        for name, dtype in X.dtypes.items()
        if isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_numeric_dtype(dtype)
    ]
    if not arrow:
        return X
    converted = X.copy()
    for name in arrow:
        converted[name] = X[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return converted


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
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(x)


def surely_finite(x: np.ndarray) -> bool:
    """True when a summing pass shows no NaN or inf in ``x``: one pass, no temporary the size of X.

    False means "check exactly": a NaN, an inf, or finite values whose sum overflows. A large ``x``
    is summed on torch's intra-op threads where torch can view it (numpy's sum takes one core).
    """
    if x.size >= THREADED_SUM_MIN_VALUES and x.dtype.isnative and min(x.strides) >= 0:
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


def check_column_order(X: Any, fitted_names: np.ndarray | None, detector: str) -> None:
    """Name the columns of a DataFrame that has the fitted columns in another order.

    Parameters
    ----------
    X : object
        Input to score.
    fitted_names : ndarray or None
        ``feature_names_in_``; None when fitted without names.
    detector : str
        The detector's class name, for the message.

    Raises
    ------
    ValueError
        If X holds the fitted columns, in another order.
    """
    if fitted_names is None or not isinstance(X, pd.DataFrame):
        return
    given = [str(name) for name in X.columns]
    expected = [str(name) for name in fitted_names]
    if given != expected and sorted(given) == sorted(expected):
        moved = [name for name, want in zip(given, expected, strict=True) if name != want]
        raise ValueError(
            f"X has the columns {detector} was fitted on, but the feature names must be in "
            f"the same order as in fit: got {given}, expected {expected} ({moved} moved). Reorder "
            "them, e.g. X[detector.feature_names_in_]."
        )


def checked_values(
    detector: Any, X: Any, *, reset: bool, allow_nan: bool, advice: str
) -> tuple[np.ndarray, bool]:
    """The one place a detector's input values are checked: numeric columns, names and shape, then
    finiteness, and in training (``reset``) that values fit float32.

    Parameters
    ----------
    detector : BaseVAEDetector
        The detector X is for; ``reset`` records X's shape and names on it, as scikit-learn's
        ``validate_data`` does.
    X : array-like
        Input as ``fit`` or scoring takes it.
    reset : bool
        True in ``fit``.
    allow_nan : bool
        Whether NaN marks a missing value (else it is refused).
    advice : str
        Ends the error message about non-finite values.

    Returns
    -------
    x : ndarray of shape (n_samples, n_features)
        X as float64, or for scoring as float32 when it is float32: scoring standardizes a block of
        rows at a time in float64, so the scores are the same, and a float32 X of 2M x 32 rows is not
        copied into 512 MB first.
    complete : bool
        True when no value is missing: where NaN is refused there is none, and no pass is needed.
    """
    check_numeric_columns(X)
    X = arrow_numbers_as_float(X)
    if not reset:
        check_column_order(X, getattr(detector, "feature_names_in_", None), type(detector).__name__)
    dtype = np.float64 if reset else (np.float64, np.float32)
    x = validate_data(detector, X, reset=reset, dtype=dtype, ensure_all_finite=False)
    names = getattr(detector, "feature_names_in_", None)
    check_finite(x, names, allow_nan=allow_nan, advice=advice)
    if reset:  # scoring takes any finite value: one beyond float32 scores as the most anomalous
        check_float32_range(x, names)
    return x, not allow_nan or has_no_nan(x)
