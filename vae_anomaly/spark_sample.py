"""A ``TrainingSample`` of a Spark DataFrame: Spark computes the statistics and the sample, the driver
holds only the sample.

For data already in Spark, past what one machine reads in reasonable time: one aggregation gives the
exact per-column statistics (``var_pop`` is Spark's numerically stable central-moment aggregate), a
Bernoulli sample a little larger than ``max_rows`` put in random order and cut to ``max_rows`` gives a
uniform sample of exactly that many rows, and one grouping per non-numeric column gives its levels
and a row of each. ``fit_sample`` then fits on the driver, and the logged model scores back through
``mlflow.pyfunc.spark_udf``. Needs ``pyspark`` (``pip install -e ".[spark]"``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import pandas as pd

try:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql import functions as F
    from pyspark.sql.types import BooleanType, NumericType
except ModuleNotFoundError as error:  # an optional dependency: say which extra brings it
    raise ModuleNotFoundError(
        f"vae_anomaly.sample_spark needs pyspark, which is not installed ({error}); install it with "
        "pip install 'vae-anomaly[spark]'.",
        name=error.name,
    ) from error

from vae_anomaly.column_statistics import ColumnStatistics
from vae_anomaly.training_sample import MAX_LEVELS, TrainingSample, sample_size
from vae_anomaly.value_checks import FLOAT32_MAX

# The Bernoulli sample's expected size is max_rows plus this many standard deviations: it falls short
# of max_rows with a probability under 1e-20.
_MARGIN_SIGMAS = 10


def sample_spark(
    frame: DataFrame,
    *,
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
    max_rows: int | Literal["auto"] = "auto",
    random_state: int | None = None,
) -> TrainingSample:
    """A uniform sample of a Spark DataFrame's rows and exact statistics of all of them, on the driver.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
    columns : sequence of str or None, default=None
        The columns to take, in order; None takes all but ``drop_columns``.
    drop_columns : sequence of str, default=()
        Columns not to take, e.g. a label column.
    max_rows : int or "auto", default="auto"
        Rows sampled at most, as ``sample_parquet`` takes it.
    random_state : int or None, default=None
        Seeds Spark's sample; None draws a fresh seed. Spark's sample also depends on the
        DataFrame's partitioning.

    Returns
    -------
    TrainingSample
        NaN counts as missing in the statistics, as in ``sample_parquet``; levels are sorted.

    Raises
    ------
    ValueError
        If a column is unknown, there are no rows, a numeric column holds inf or values beyond
        float32's range, or a non-numeric column has over 65,536 levels.
    """
    names = list(columns) if columns is not None else list(frame.columns)
    unknown = [name for name in [*names, *drop_columns] if name not in frame.columns]
    if unknown:
        raise ValueError(f"The DataFrame has no column(s) {unknown}; its columns are {frame.columns}.")
    names = [name for name in names if name not in set(drop_columns)]
    frame = frame.select(*names)
    numeric = [name for name in names if isinstance(frame.schema[name].dataType, NumericType | BooleanType)]
    statistics = _statistics(frame, numeric)
    if statistics.n_rows == 0:
        raise ValueError("The DataFrame holds no rows to train on.")
    capacity = sample_size(max_rows, len(names))
    seed = int(np.random.default_rng().integers(2**31)) if random_state is None else random_state
    sampled = frame
    if statistics.n_rows > capacity:
        fraction = min(1.0, (capacity + _MARGIN_SIGMAS * math.sqrt(capacity)) / statistics.n_rows)
        sampled = frame.sample(fraction=fraction, seed=seed).orderBy(F.rand(seed)).limit(capacity)
    with _without_conversion_notices():
        sample = sampled.toPandas()
    levels: dict[str, list[Any]] = {}
    for name in names:
        if name not in numeric:
            levels[name], sample = _levels(frame, name, sample)
    return TrainingSample(sample.reset_index(drop=True), statistics, levels, statistics.n_rows)


def _observed(name: str) -> Column:
    """A numeric column as double, null where it is null or NaN."""
    value = F.col(name).cast("double")
    return F.when(~F.isnan(value), value)


def _statistics(frame: DataFrame, numeric: list[str]) -> ColumnStatistics:
    """Every numeric column's statistics, in one aggregation."""
    aggregates = [F.count(F.lit(1))]
    for name in numeric:
        value = _observed(name)
        aggregates += [
            F.count(value),
            F.mean(value),
            F.var_pop(value),
            F.min(value),
            F.max(value),
            F.sum(F.when((value != 0) & (value != 1), 1).otherwise(0)),
        ]
    row = list(frame.agg(*aggregates).first())
    n_rows, parts = int(row[0]), np.array(row[1:], dtype=float).reshape(len(numeric), 6).T
    count, mean, variance, minimum, maximum, not_01 = parts
    for name, low, high in zip(numeric, minimum, maximum, strict=True):
        if math.isinf(low) or math.isinf(high):
            raise ValueError(f"Column {name!r} holds infinite values, which the VAE cannot score.")
        if max(abs(low), abs(high)) > FLOAT32_MAX:
            raise ValueError(f"Column {name!r} holds values beyond float32's range, which the VAE trains in.")
    seen = count > 0
    return ColumnStatistics(
        names=tuple(numeric),
        n_rows=n_rows,
        count=count.astype(np.int64),
        mean=mean,
        variance=np.where(seen, variance, np.nan),
        minimum=minimum,
        maximum=maximum,
        binary=seen & (not_01 == 0) & (minimum == 0) & (maximum == 1),
    )


@contextmanager
def _without_conversion_notices() -> Iterator[None]:
    """Silence what pyspark says of itself on every conversion to pandas: pyspark 4, that it "does not
    yet fully support pandas >= 3.0.0" (a FutureWarning) and its own use of pandas' deprecated ``copy``
    keyword (a Pandas4Warning); pyspark 3.5, its version checks' use of ``distutils`` (a
    DeprecationWarning). ``sample_spark``'s one conversion, of numeric and string columns, is tested
    under pandas 3 with both (``tests/test_spark.py``), so they say nothing about it; warnings from
    anything else, and these from the user's own Spark calls, are left as they are."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        warnings.filterwarnings("ignore", "The copy keyword is deprecated", module=r"pyspark\.")
        warnings.filterwarnings(
            "ignore", "distutils Version classes are deprecated", DeprecationWarning, module=r"pyspark\."
        )
        yield


def _levels(frame: DataFrame, name: str, sample: pd.DataFrame) -> tuple[list[Any], pd.DataFrame]:
    """A column's levels, sorted, and the sample with a row of each level it lacks."""
    firsts = (
        frame.where(F.col(name).isNotNull())
        .groupBy(name)
        .agg(F.first(F.struct(*frame.columns)).alias("row"))
        .limit(MAX_LEVELS + 1)
        .collect()
    )
    if len(firsts) > MAX_LEVELS:
        raise ValueError(
            f"Column {name!r} has over {MAX_LEVELS:,} distinct values; a column with so many levels "
            "(an identifier?) is no feature to encode: drop it (drop_columns)."
        )
    present = set(sample[name].dropna())
    lacking = [first["row"].asDict() for first in firsts if first[name] not in present]
    if lacking:
        sample = pd.concat([sample, pd.DataFrame(lacking, columns=sample.columns)], ignore_index=True)
    return sorted(first[name] for first in firsts), sample
