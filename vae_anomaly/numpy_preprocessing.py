"""A saved Pipeline's fitted preprocessing as numpy runs it: what its numpy scorer reads.

Loading a Pipeline's preprocessing takes scikit-learn and skops, whose imports alone took 3 s before a
small scoring run could start (benchmarks/RESULTS.md, issue 33). The pipelines vae-anomaly ships
(``tabular_pipeline``, ``timeseries_pipeline``) and most hand-built ones preprocess with a
``ColumnTransformer`` of standard scaling, one-hot encoding (after imputing the most frequent level)
and passed-through columns, or with one ``StandardScaler``. :func:`describe_preprocessing` writes
such a fitted step down as plain numbers and names (at ``save``, where scikit-learn is loaded);
:class:`NumpyPreprocessing` reads it back and transforms a DataFrame as the step would, with pandas and
numpy alone. Where it cannot be sure of doing exactly what scikit-learn does (a value type or dtype
scikit-learn treats in its own way, an infinite value it refuses, a column missing), its
:meth:`~NumpyPreprocessing.takes` says no and the caller runs the Pipeline itself, which then
answers or refuses as it always has.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

# The file of a saved Pipeline's bundle that holds its preprocessing's plan, beside the skops file.
PLAN_FILE = "preprocessing.json"
# A plan's parts: standard scaling, one-hot encoding (after an optional fill of missing values) and
# columns passed through as they are.
_SCALE, _ONE_HOT, _PASSTHROUGH = "scale", "one_hot", "passthrough"
# Numeric columns scaled as scikit-learn scales them: ``check_array`` keeps these float dtypes and
# turns numpy's bool and integer columns to float64; float16, pandas' nullable types and objects it
# converts in ways of its own, so they go to scikit-learn.
_SCALED_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))


def describe_preprocessing(preprocessing: Any, output_columns: list[str]) -> dict[str, Any] | None:
    """A fitted preprocessing Pipeline written down as :class:`NumpyPreprocessing` reads it, or None.

    Parameters
    ----------
    preprocessing : Pipeline
        The steps before a detector: one fitted ``ColumnTransformer`` (of ``StandardScaler``,
        ``OneHotEncoder`` with ``handle_unknown="ignore"`` and dense float64 output, optionally after a
        ``SimpleImputer`` filling NaN with a fixed level, ``"passthrough"`` and ``"drop"``), or one
        fitted ``StandardScaler``, fitted on a DataFrame.
    output_columns : list of str
        The detector's ``feature_names_in_``: what the step must name its output.

    Returns
    -------
    dict or None
        JSON-ready: the input columns, the parts (each with its columns and fitted numbers) and the
        output columns. None where the step is anything else (another transformer, a setting that
        changes what it computes, levels that are not all strings), or its output is not named
        ``output_columns``: such a Pipeline is scored by scikit-learn.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    if len(preprocessing.steps) != 1:
        return None
    step = preprocessing.steps[0][1]
    inputs = getattr(step, "feature_names_in_", None)
    if inputs is None or not all(isinstance(name, str) for name in inputs):
        return None
    if isinstance(step, StandardScaler):
        parts = [_scaler_part(step, list(inputs))]
    elif isinstance(step, ColumnTransformer) and step.transformer_weights is None:
        parts = [_part(transformer, columns) for _, transformer, columns in step.transformers_]
    else:
        return None
    if any(part is None for part in parts) or list(step.get_feature_names_out()) != output_columns:
        return None
    return {
        "input_columns": list(inputs),
        "parts": [part for part in parts if part["columns"]],
        "output_columns": output_columns,
    }


def _part(transformer: Any, columns: Any) -> dict[str, Any] | None:
    """One ``ColumnTransformer`` entry as a plan's part ("drop": a part of no columns), or None."""
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    if (isinstance(transformer, str) and transformer == "drop") or (
        isinstance(columns, list) and not columns
    ):
        return {"kind": _PASSTHROUGH, "columns": []}  # nothing of it in the output (left out of the plan)
    if not isinstance(columns, list) or not all(isinstance(column, str) for column in columns):
        return None
    # A fitted "passthrough" is an identity FunctionTransformer.
    identity = (
        isinstance(transformer, FunctionTransformer) and transformer.func is None and not transformer.validate
    )
    if identity or (isinstance(transformer, str) and transformer == "passthrough"):
        return {"kind": _PASSTHROUGH, "columns": columns}
    if isinstance(transformer, str):
        return None
    steps = transformer.steps if isinstance(transformer, Pipeline) else [(None, transformer)]
    *fill, last = (step for _, step in steps)
    if isinstance(last, StandardScaler) and not fill:
        return _scaler_part(last, columns)
    if isinstance(last, OneHotEncoder) and len(fill) <= 1:
        return _one_hot_part(last, fill[0] if fill else None, columns)
    return None


def _scaler_part(scaler: Any, columns: list[str]) -> dict[str, Any] | None:
    """A fitted ``StandardScaler``'s part: its mean and scale (None where it does not use them); None
    where they are not finite (a column that was all NaN in fit)."""
    mean = None if scaler.mean_ is None or not scaler.with_mean else scaler.mean_
    scale = None if scaler.scale_ is None or not scaler.with_std else scaler.scale_
    if not all(numbers is None or np.isfinite(numbers).all() for numbers in (mean, scale)):
        return None
    return {
        "kind": _SCALE,
        "columns": columns,
        "mean": None if mean is None else mean.tolist(),
        "scale": None if scale is None else scale.tolist(),
    }


def _one_hot_part(encoder: Any, imputer: Any, columns: list[str]) -> dict[str, Any] | None:
    """A fitted ``OneHotEncoder``'s part, after a ``SimpleImputer`` filling NaN with fixed levels (or
    none); None for any other setting or for levels that are not all strings."""
    from sklearn.impute import SimpleImputer

    encodes_as_described = (
        encoder.handle_unknown == "ignore"
        and encoder.drop is None
        and encoder.min_frequency is None
        and encoder.max_categories is None
        and not encoder.sparse_output
        and np.dtype(encoder.dtype) == np.float64
    )
    levels = [list(categories) for categories in encoder.categories_]
    if not encodes_as_described or not all(isinstance(level, str) for each in levels for level in each):
        return None
    fill = None
    if imputer is not None:
        fills_nan = (
            isinstance(imputer, SimpleImputer)
            and imputer.strategy in ("most_frequent", "constant")
            and isinstance(imputer.missing_values, float)
            and np.isnan(imputer.missing_values)
            and not imputer.add_indicator
        )
        fill = list(imputer.statistics_) if fills_nan else None
        if fill is None or len(fill) != len(columns) or not all(isinstance(value, str) for value in fill):
            return None
    return {"kind": _ONE_HOT, "columns": columns, "fill": fill, "levels": levels}


class NumpyPreprocessing:
    """A plan written by :func:`describe_preprocessing`, transforming DataFrames as the step did.

    Parameters
    ----------
    plan : dict
        As :func:`describe_preprocessing` returns it (read back from JSON).

    Attributes
    ----------
    input_columns : list of str
        The columns the step reads (its ``feature_names_in_``).
    output_columns : list of str
        The columns it makes, in order (the detector's ``feature_names_in_``).

    Raises
    ------
    ValueError
        If the plan is not one :func:`describe_preprocessing` writes (a part of another kind, numbers
        that do not match its columns, outputs that do not add up).
    """

    def __init__(self, plan: dict[str, Any]) -> None:
        self.input_columns = [str(name) for name in plan["input_columns"]]
        self.output_columns = [str(name) for name in plan["output_columns"]]
        self._parts = [dict(part) for part in plan["parts"]]
        widths = 0
        for part in self._parts:
            columns, kind = part["columns"], part["kind"]
            if not set(columns) <= set(self.input_columns):
                raise ValueError(f"a part reads columns the step does not take: {columns}")
            if kind == _SCALE:
                for name in ("mean", "scale"):
                    if part[name] is not None:
                        part[name] = np.asarray(part[name], dtype=np.float64).reshape(len(columns))
                widths += len(columns)
            elif kind == _ONE_HOT:
                if len(part["levels"]) != len(columns) or (
                    part["fill"] and len(part["fill"]) != len(columns)
                ):
                    raise ValueError("the one-hot levels or fills do not match the columns")
                widths += sum(len(levels) for levels in part["levels"])
            elif kind == _PASSTHROUGH:
                widths += len(columns)
            else:
                raise ValueError(f"unknown part {kind!r}")
        if widths != len(self.output_columns):
            raise ValueError("the parts do not make the output columns")

    def takes(self, frame: pd.DataFrame) -> bool:
        """Whether :meth:`transform` gives ``frame`` exactly what the fitted step gives it.

        True when ``frame`` has every input column, each scaled column is of a numpy numeric dtype
        with no infinite value (scikit-learn refuses those, in its own words), and each encoded
        column holds strings and missing values (NaN, or None, which scikit-learn's imputer leaves
        as an unknown level) only. Anything else is the Pipeline's to transform, or to refuse.

        Parameters
        ----------
        frame : DataFrame

        Returns
        -------
        bool
        """
        if not set(self.input_columns) <= set(frame.columns):
            return False
        for part in self._parts:
            for column in part["columns"]:
                values = frame[column]
                if part["kind"] == _SCALE and not _plain_finite_numbers(values):
                    return False
                if part["kind"] == _ONE_HOT and not _strings_or_missing(values):
                    return False
        return True

    def transform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` through the step: the output columns, indexed like ``frame``.

        Parameters
        ----------
        frame : DataFrame
            Input that :meth:`takes`.

        Returns
        -------
        DataFrame
            Scaled columns in float64 (float32 where every column a scaler takes is float32, or
            float32 with bool or small integer columns, as scikit-learn's ``check_array`` keeps that
            block), NaN passed through; one-hot levels in float64 (an unknown level, or a None,
            encodes as none of them); passed-through columns as they are.
        """
        columns: list[np.ndarray] = []
        for part in self._parts:
            if part["kind"] == _SCALE:
                columns.extend(_scaled(frame[part["columns"]], part).T)
            elif part["kind"] == _ONE_HOT:
                for position, column in enumerate(part["columns"]):
                    fill = None if part["fill"] is None else part["fill"][position]
                    columns.extend(_one_hot(frame[column], fill, part["levels"][position]).T)
            else:
                columns.extend(frame[column].to_numpy() for column in part["columns"])
        return pd.DataFrame(dict(zip(self.output_columns, columns, strict=True)), index=frame.index)


def _plain_finite_numbers(values: pd.Series) -> bool:
    """A column scikit-learn's scaler converts plainly: a numpy numeric dtype, no infinite value."""
    if values.dtype not in _SCALED_DTYPES and not (
        isinstance(values.dtype, np.dtype) and values.dtype.kind in "biu"
    ):
        return False
    return values.dtype.kind != "f" or not np.isinf(values.to_numpy()).any()


def _strings_or_missing(values: pd.Series) -> bool:
    """A column of strings, NaN and None: what the one-hot part encodes as scikit-learn does."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object)
    elif not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
        return False
    if isinstance(values.dtype, pd.StringDtype) and not isinstance(values.dtype.na_value, float):
        return False  # pd.NA, which scikit-learn's imputer cannot compare
    return all(
        isinstance(value, str) or value is None or (isinstance(value, float) and np.isnan(value))
        for value in values.to_numpy(dtype=object)
    )


def _scaled(block: pd.DataFrame, part: dict[str, Any]) -> np.ndarray:
    """A scaler's columns standard-scaled as ``StandardScaler.transform`` does: converted as one block
    to their common dtype (kept if float32, else float64), then centred and scaled in place in it,
    the mean and scale cast to it first."""
    dtype = np.float32 if np.result_type(*block.dtypes) == np.float32 else np.float64
    scaled = block.to_numpy(dtype=dtype, copy=True)
    if part["mean"] is not None:
        scaled -= part["mean"].astype(dtype)
    if part["scale"] is not None:
        scaled /= part["scale"].astype(dtype)
    return scaled


def _one_hot(values: pd.Series, fill: str | None, levels: list[str]) -> np.ndarray:
    """One column's one-hot levels, (n_rows, n_levels) float64: NaN filled with ``fill`` first (a None
    is not NaN to scikit-learn's imputer: it stays, and matches no level)."""
    objects = values.to_numpy(dtype=object, copy=True)
    if fill is not None:
        objects[[isinstance(value, float) for value in objects]] = fill  # the NaN: nothing else is a float
    codes = pd.Index(levels).get_indexer(objects)  # -1 for a level not among them
    return (codes[:, None] == np.arange(len(levels))).astype(np.float64)
