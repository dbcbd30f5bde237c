"""Which input column each feature of a fitted preprocessing is made from, read from its transformers.

A Pipeline's detector sees the features its preprocessing makes (``numeric__cpu_pct``, the one-hot
levels ``categorical__region_eu-west``, ...); to say how much an input column adds to a score, the
parts of the features made from it are added up. The owner of each feature is found from the fitted
transformers themselves: a ColumnTransformer's column lists, a OneHotEncoder's categories, and
transformers that make one feature per input feature. Names alone cannot tell a one-hot level ``b``
of a column ``a`` from a numeric column ``a_b``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder


def feature_sources(transformer: Any, columns: list[str]) -> list[str | None]:
    """The input column of each feature ``transformer`` makes from ``columns``.

    Parameters
    ----------
    transformer : fitted transformer, Pipeline, ColumnTransformer, "passthrough", "drop" or None
        The preprocessing (e.g. a Pipeline's steps before its detector).
    columns : list of str
        The columns it was fitted on, in order.

    Returns
    -------
    list of str or None
        One entry per output feature, in output order: the input column the feature is made from,
        or None where the transformer does not say (it mixes columns, or makes a number of features
        that is neither one per column nor a known encoding).
    """
    if transformer is None or (isinstance(transformer, str) and transformer == "passthrough"):
        return list(columns)
    if isinstance(transformer, str) and transformer == "drop":
        return []
    if isinstance(transformer, Pipeline):
        for _, step in transformer.steps:
            columns = feature_sources(step, columns)  # type: ignore[assignment]
            if any(column is None for column in columns):
                return [None] * _n_outputs(transformer, len(columns))
        return list(columns)
    if isinstance(transformer, ColumnTransformer):
        sources: list[str | None] = []
        for _, inner, selected in transformer.transformers_:
            picked = _selected(columns, selected)
            if picked:
                sources += feature_sources(inner, picked)
        return sources
    n_outputs = _n_outputs(transformer, len(columns))
    if isinstance(transformer, OneHotEncoder):
        counts = _one_hot_counts(transformer)
        if sum(counts) == n_outputs:
            return [column for column, count in zip(columns, counts, strict=True) for _ in range(count)]
    elif n_outputs == len(columns):  # one feature per column, in order: scalers, imputers, ...
        return list(columns)
    return [None] * n_outputs


def _n_outputs(transformer: Any, n_inputs: int) -> int:
    """How many features ``transformer`` makes; ``n_inputs`` for one that cannot say."""
    names = getattr(transformer, "get_feature_names_out", None)
    return n_inputs if names is None else len(names())


def _selected(columns: list[str], selected: Any) -> list[str]:
    """The names among ``columns`` that a ColumnTransformer's fitted column selection picks."""
    if isinstance(selected, str):
        return [selected]
    if isinstance(selected, slice):
        return columns[selected]
    picked = np.asarray(selected)
    if picked.dtype == bool:
        return [column for column, keep in zip(columns, picked, strict=True) if keep]
    if np.issubdtype(picked.dtype, np.integer):
        return [columns[index] for index in picked]
    return [str(name) for name in picked]


def _one_hot_counts(encoder: OneHotEncoder) -> list[int]:
    """Features a fitted OneHotEncoder makes from each of its columns: its categories, less a dropped
    one, with its infrequent categories as one."""
    infrequent = getattr(encoder, "infrequent_categories_", None) or [None] * len(encoder.categories_)
    dropped = encoder.drop_idx_ if encoder.drop_idx_ is not None else [None] * len(encoder.categories_)
    counts = []
    for categories, rare, drop in zip(encoder.categories_, infrequent, dropped, strict=True):
        count = len(categories) - (0 if rare is None else len(rare) - 1)
        counts.append(count - (drop is not None))
    return counts
