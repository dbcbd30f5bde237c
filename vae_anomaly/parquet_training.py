"""Fitting from parquet data of any size: ``fit_parquet`` reads it once (``parquet_sample``), then fits.

``fit_sample`` fits an estimator on a ``TrainingSample``: a VAE detector's standardization comes from
the sample's exact statistics of every row, so it is the one an in-memory fit of all the rows would
have, and its threshold is set on rows of the sample held out of training, a uniform sample of the
whole data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline
from sklearn.utils import get_tags

from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.batch.files import DEFAULT_BATCH_ROWS
from vae_anomaly.parquet_sample import sample_parquet
from vae_anomaly.training_sample import TrainingSample

Estimator = TypeVar("Estimator", bound=BaseEstimator)


def fit_sample(estimator: Estimator, sample: TrainingSample) -> Estimator:
    """Fit an estimator on a training sample: a VAE detector with the sample's exact statistics.

    A ``VAEAnomalyDetector`` takes its standardization from ``sample.statistics``
    (``fit(..., feature_statistics=)``), the one a fit on every row would find, and trains and sets
    its threshold on the sample. Any other estimator, a Pipeline included, fits
    on ``sample.frame`` as it is: the detector at the end of a Pipeline sees transformed features,
    whose statistics the pass did not gather, so they come from the sample (for 262,144 rows a mean
    is within a 500th of a standard deviation of the data's, as a rule).

    Parameters
    ----------
    estimator : estimator
        Unfitted, or to be refitted.
    sample : TrainingSample
        From ``sample_parquet``, or made so elsewhere (e.g. from Spark).

    Returns
    -------
    estimator
        Fitted.

    Raises
    ------
    ValueError
        For a time-series detector (or a Pipeline ending in one): a sample of rows is no series.
    """
    _refuse_series(estimator)
    if isinstance(estimator, BaseVAEDetector):
        return estimator.fit(sample.frame, feature_statistics=sample.statistics)
    return estimator.fit(sample.frame)


def fit_parquet(
    estimator: Estimator,
    source: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
    max_rows: int | Literal["auto"] = "auto",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    random_state: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> Estimator:
    """Fit an estimator on parquet data of any size, in bounded memory (``sample_parquet``, ``fit_sample``).

    Use it where the training data does not fit in memory, or is a folder or glob of parquet files
    that would otherwise have to be read whole: the fitted estimator is the same kind of object, and
    saves and logs as an in-memory fit does. A bare detector reads numeric and boolean columns only,
    and nulls only with ``missing="skip"``; a Pipeline reads any columns.

    Parameters
    ----------
    estimator : estimator
        A ``VAEAnomalyDetector``, a Pipeline ending in one (e.g. ``pipelines.tabular_pipeline()``),
        or any scikit-learn estimator.
    source : str or PathLike
        A parquet file, folder (hive-partitioned or not) or glob.
    columns, drop_columns, max_rows, batch_rows, progress
        As :func:`~vae_anomaly.sample_parquet` takes them.
    random_state : int, Generator or None, default=None
        Seeds the sample; None takes the estimator's ``random_state`` (a Pipeline's last step's)
        when it is an int, else draws a fresh one.

    Returns
    -------
    estimator
        Fitted.

    Examples
    --------
    >>> from vae_anomaly import VAEAnomalyDetector, fit_parquet
    >>> detector = fit_parquet(
    ...     VAEAnomalyDetector(random_state=0), "lake/day=2026-12-01/", drop_columns=["is_anomaly"]
    ... )  # doctest: +SKIP
    """
    _refuse_series(estimator)  # before the pass, which may take long
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if random_state is None and isinstance(seed := final.get_params().get("random_state"), int):
        random_state = seed
    bare = isinstance(estimator, BaseVAEDetector)
    sample = sample_parquet(
        source,
        columns=columns,
        drop_columns=drop_columns,
        max_rows=max_rows,
        numeric_only=bare,
        allow_nulls=not bare or get_tags(estimator).input_tags.allow_nan,
        batch_rows=batch_rows,
        random_state=random_state,
        progress=progress,
    )
    return fit_sample(estimator, sample)


def _refuse_series(estimator: BaseEstimator) -> None:
    final = estimator[-1] if isinstance(estimator, Pipeline) else estimator
    if getattr(final, "scores_whole_series", False):
        raise ValueError(
            f"{type(final).__name__} needs its series whole and in order, but a training sample is rows "
            "drawn at random: read the series (pandas.read_parquet) and call fit. Training a series "
            "from parquet in bounded memory is not supported yet."
        )
