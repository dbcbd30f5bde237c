"""Exact per-column statistics of numeric data seen a batch at a time: what scaling needs of all the rows.

``ColumnStatistics`` holds them (count, mean, variance, min/max, nulls, and whether a column holds only
0 and 1); ``StatisticsAccumulator`` gathers them over batches, merging each batch's mean and sum of
squared deviations into the running ones (Chan, Golub and LeVeque's pairwise update), in float64, so
the result does not depend on how the rows were cut into batches beyond rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ColumnStatistics:
    """Per-column statistics of every row of a training set, for scaling fitted without holding it.

    Parameters
    ----------
    names : tuple of str
        The columns, in the order the detector reads them.
    n_rows : int
        Rows seen.
    count : ndarray of shape (n_columns,), int64
        Observed (non-null, non-NaN) values per column.
    mean, variance : ndarray of shape (n_columns,), float64
        Of the observed values; the variance is the population variance (divided by ``count``), as
        ``numpy.var`` gives it. NaN where a column has no observed value.
    minimum, maximum : ndarray of shape (n_columns,), float64
        Of the observed values; NaN where there is none.
    binary : ndarray of shape (n_columns,), bool
        Whether the observed values are only 0 and 1, both of them.
    """

    names: tuple[str, ...]
    n_rows: int
    count: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    minimum: np.ndarray
    maximum: np.ndarray
    binary: np.ndarray

    @property
    def nulls(self) -> np.ndarray:
        """Missing values (null or NaN) per column."""
        return self.n_rows - self.count

    @classmethod
    def of(cls, values: np.ndarray, names: Sequence[str]) -> ColumnStatistics:
        """The statistics of one array held whole (NaN is missing).

        Parameters
        ----------
        values : ndarray of shape (n_rows, n_columns)
        names : sequence of str

        Returns
        -------
        ColumnStatistics
        """
        accumulator = StatisticsAccumulator(names)
        accumulator.add([np.ascontiguousarray(column, dtype=np.float64) for column in values.T], len(values))
        return accumulator.result()


class NonFiniteValues(ValueError):
    """A batch's column holds inf (or values whose sum overflows).

    Parameters
    ----------
    column : int
        The column's position.
    """

    def __init__(self, column: int) -> None:
        super().__init__(f"column {column} holds non-finite values")
        self.column = column


class StatisticsAccumulator:
    """Exact column statistics of float64 batches, added one at a time.

    Parameters
    ----------
    names : sequence of str
        The columns of every batch, in order.
    """

    def __init__(self, names: Sequence[str]) -> None:
        width = len(names)
        self._names = tuple(names)
        self._rows = 0
        self._count = np.zeros(width, dtype=np.int64)
        self._mean = np.zeros(width)
        self._squares = np.zeros(width)  # the sum of squared deviations from the mean
        self._minimum = np.full(width, np.inf)
        self._maximum = np.full(width, -np.inf)
        self._only_01 = np.ones(width, dtype=bool)
        self._scratch = np.empty(0)

    def add(self, columns: Sequence[np.ndarray], n_rows: int) -> np.ndarray:
        """Merge a batch into the statistics, a column at a time (each small enough to stay in cache).

        Parameters
        ----------
        columns : sequence of ndarray of shape (n_rows,), float64
            The batch's columns, in order: NaN where missing.
        n_rows : int
            The batch's rows (there may be no column).

        Returns
        -------
        ndarray of shape (n_columns,), int64
            The batch's missing values per column.

        Raises
        ------
        NonFiniteValues
            If a column holds inf, or finite values whose sum overflows; the statistics are then of
            no use.
        """
        self._rows += n_rows
        missing = np.zeros(len(columns), dtype=np.int64)
        for j, values in enumerate(columns):
            total, observed = np.add.reduce(values), values
            if not np.isfinite(total):  # some missing, or an inf: the same numbers over observed values
                observed = values[~np.isnan(values)]
                missing[j], total = len(values) - len(observed), np.add.reduce(observed)
                if not np.isfinite(total):
                    raise NonFiniteValues(j)
            if len(observed):
                self._merge(j, observed, total)
        return missing

    def _merge(self, j: int, observed: np.ndarray, total: float) -> None:
        """Merge one column's observed values of a batch (their sum ``total``) into column ``j``."""
        count = len(observed)
        mean = total / count
        if len(self._scratch) < count:
            self._scratch = np.empty(count)
        deviations = np.subtract(observed, mean, out=self._scratch[:count])  # no fresh pages a column
        merged = self._count[j] + count
        delta = mean - self._mean[j]
        # einsum, not np.dot: BLAS threads would spin against the threads decoding the next batch.
        squares = np.einsum("i,i->", deviations, deviations)
        self._squares[j] += squares + delta**2 * self._count[j] * count / merged
        self._mean[j] += delta * count / merged
        self._count[j] = merged
        low, high = observed.min(), observed.max()
        self._minimum[j], self._maximum[j] = min(self._minimum[j], low), max(self._maximum[j], high)
        if self._only_01[j] and (low < 0 or high > 1 or not ((observed == 0) | (observed == 1)).all()):
            self._only_01[j] = False

    def extremes(self) -> tuple[np.ndarray, np.ndarray]:
        """The smallest and largest value of each column so far (inf and -inf where none is seen).

        Returns
        -------
        minimum, maximum : ndarray of shape (n_columns,), float64
        """
        return self._minimum.copy(), self._maximum.copy()

    def result(self) -> ColumnStatistics:
        """The statistics of every batch added so far.

        Returns
        -------
        ColumnStatistics
        """
        seen = self._count > 0
        return ColumnStatistics(
            names=self._names,
            n_rows=self._rows,
            count=self._count.copy(),
            mean=np.where(seen, self._mean, np.nan),
            variance=np.divide(self._squares, self._count, out=np.full(len(seen), np.nan), where=seen),
            minimum=np.where(seen, self._minimum, np.nan),
            maximum=np.where(seen, self._maximum, np.nan),
            binary=self._only_01 & seen & (self._minimum == 0) & (self._maximum == 1),
        )
