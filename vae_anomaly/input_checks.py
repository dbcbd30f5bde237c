"""Input checks shared by both detectors (numeric columns, names and shape, then the value checks of
``value_checks``) and the checked input they give, ``Samples``.

Each check names what it refuses (the column, its first bad row, how many rows) instead of failing on
the first bad value; none copies X whole.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.utils.validation import validate_data

from vae_anomaly.score_columns import check_not_output_named, unprefixed
from vae_anomaly.value_checks import check_finite, check_float32_range, has_no_nan


class Samples(NamedTuple):
    """A detector's checked input: its values (float64, NaN where missing; float32 where scoring was
    given float32), the index its outputs carry, whether no value is missing, and for a series made
    of separate segments their lengths (None: one series, or a table)."""

    values: np.ndarray
    index: pd.Index
    complete: bool
    segments: tuple[int, ...] | None = None


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


def _drop_advice(clashes: list[str]) -> str:
    """How to leave out training columns named as the scores; a Pipeline's input has them without
    its ColumnTransformer's ``step__`` prefix."""
    inputs = [unprefixed(name) for name in clashes]
    return f"leave them out of the data, e.g. data.drop(columns={inputs})"


def checked_values(
    detector: Any, X: Any, *, reset: bool, allow_nan: bool, advice: str
) -> tuple[np.ndarray, bool]:
    """The one place a detector's input values are checked: numeric columns, names and shape, then
    finiteness, and in training (``reset``) that values fit float32 and that no column is named as
    the scores (``check_not_output_named``).

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
    if reset and isinstance(X, pd.DataFrame):
        check_not_output_named(X.columns, _drop_advice)
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
