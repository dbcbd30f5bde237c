"""Ready-made scikit-learn pipelines ending in a VAE detector: start from these and adapt.

from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.detector_pipeline import DetectorPipeline


def tabular_pipeline(
    numeric_columns: Sequence[str] | None = None,
    categorical_columns: Sequence[str] | None = None,
    **detector_params: Any,
) -> DetectorPipeline:
    """A pipeline for mixed-type tables: scale and one-hot encode, then ``VAEAnomalyDetector``.

    Numeric columns are standard-scaled with their nulls passed through as NaN, which the detector
    (``missing="skip"``) leaves out of the score, so a row is not flagged for a missing value alone;
    categorical columns get their most frequent value for nulls, then one-hot encoding. A category
    unseen in training encodes as none of the known levels, which no training row had: the row then
    scores as anomalous and ``explain`` gives that column most of its score.

    Parameters
    ----------
    numeric_columns : sequence of str or None, default=None
        Numeric columns; None takes every numeric column.
    categorical_columns : sequence of str or None, default=None
        Categorical columns; None takes every non-numeric column.
    **detector_params
        Passed to ``VAEAnomalyDetector``, e.g. ``random_state=0``; ``missing`` defaults to "skip".

    Returns
    -------
    DetectorPipeline
        A scikit-learn Pipeline of steps ``"features"`` (a ColumnTransformer with pandas output) and
        ``"detector"``; it takes a DataFrame. Its ``explain`` gives each input column's share (the
        one-hot levels of a column added up into it; the detector's own ``explain``, on
        ``model[:-1].transform(X)``, names the encoded columns, e.g. ``numeric__cpu_pct``), and it
        has ``save`` and ``DetectorPipeline.load``.

    Examples
    --------
    >>> import pandas as pd
    >>> from vae_anomaly.pipelines import tabular_pipeline
    >>> data = pd.read_parquet("sample_data/tabular.parquet")  # doctest: +SKIP
    >>> model = tabular_pipeline(random_state=0).fit(data.drop(columns="is_anomaly"))  # doctest: +SKIP
    """
    numeric = StandardScaler()
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", sparse_output=False),
    )
    features = ColumnTransformer(
        [
            (
                "numeric",
                numeric,
                list(numeric_columns)
                if numeric_columns is not None
                else make_column_selector(dtype_include="number"),
            ),
            (
                "categorical",
                categorical,
                list(categorical_columns)
                if categorical_columns is not None
                else make_column_selector(dtype_exclude="number"),
            ),
        ]
    ).set_output(transform="pandas")
    detector = VAEAnomalyDetector(**{"missing": "skip", **detector_params})
    return DetectorPipeline([("features", features), ("detector", detector)])


def timeseries_pipeline(channels: Sequence[str] | None = None, **detector_params: Any) -> DetectorPipeline:
    """A pipeline for metric tables on a DatetimeIndex: pick the channels, then ``TimeSeriesVAEDetector``.

    The channel selection keeps the DataFrame and its index, so the detector still sees the timestamps
    (and checks their order and spacing); other columns, e.g. a host name, are dropped.

    Parameters
    ----------
    channels : sequence of str or None, default=None
        The metric columns; None takes every numeric column.
    **detector_params
        Passed to ``TimeSeriesVAEDetector``, e.g. ``window=64`` or ``time_column="timestamp"``.

    Returns
    -------
    DetectorPipeline
        Steps ``"channels"`` and ``"detector"``; it takes a DataFrame, and has ``explain`` per
        channel, ``events``, ``save`` and ``DetectorPipeline.load``.
    """
    time_column = detector_params.get("time_column")
    selected = list(channels) if channels is not None else make_column_selector(dtype_include="number")
    columns = [("channels", "passthrough", selected)]
    if time_column is not None:
        columns.append(("time", "passthrough", [time_column]))
    select = ColumnTransformer(columns, verbose_feature_names_out=False).set_output(transform="pandas")
    detector = TimeSeriesVAEDetector(**detector_params)
    return DetectorPipeline([("channels", select), ("detector", detector)])
