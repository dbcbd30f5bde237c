"""A seeded uniform sample of at most k rows of a stream of Arrow tables whose length is known before
it is read (a parquet input's footers say how many rows it holds).

The k stream positions are drawn first, all k-subsets of the n positions equally likely, from the seed
and n alone; the pass then copies each batch's rows at those positions and nothing else, so the sample
depends neither on how the stream is cut into batches nor on the order the rows' values come in, and
a pass copies k rows in all. (A bottom-k reservoir, which does not need n, copied about
k (1 + ln(n / k)) rows and compacted them every 2k: a third of a 50M-row pass's time went to it.)
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class RowSample:
    """The rows of a stream at ``capacity`` positions drawn uniformly before it is read.

    Parameters
    ----------
    n_rows : int
        Rows the stream will hold.
    capacity : int
        Rows kept at most (all of them where the stream holds fewer).
    rng : numpy.random.Generator
        Draws the positions.
    """

    def __init__(self, n_rows: int, capacity: int, rng: np.random.Generator) -> None:
        self._n_rows = n_rows
        kept = min(capacity, n_rows)
        self._positions = (
            np.arange(n_rows) if kept == n_rows else np.sort(rng.choice(n_rows, size=kept, replace=False))
        )
        self._rows_seen = 0
        self._taken = 0  # positions whose rows are held
        self._parts: list[pa.Table] = []

    def add(self, table: pa.Table) -> None:
        """Take the next rows of the stream that are at drawn positions.

        Parameters
        ----------
        table : pyarrow.Table
            The rows, all with the schema of the first table added.
        """
        end = self._rows_seen + table.num_rows
        stop = int(np.searchsorted(self._positions, end))
        chosen = self._positions[self._taken : stop] - self._rows_seen
        if len(chosen):
            self._parts.append(table if len(chosen) == table.num_rows else table.take(pa.array(chosen)))
        self._taken, self._rows_seen = stop, end

    def sample(self) -> tuple[pa.Table, np.ndarray] | None:
        """The sample in stream order, and each row's position in the stream; None when no row was
        added.

        Returns
        -------
        rows : pyarrow.Table
        positions : ndarray of int64

        Raises
        ------
        ValueError
            If the stream did not hold the rows it was said to (its files changed while it was read).
        """
        if self._rows_seen != self._n_rows:
            raise ValueError(
                f"The input's footers counted {self._n_rows:,} rows, but {self._rows_seen:,} were read: "
                "did its files change while it was read? Read it again."
            )
        if not self._parts:
            return None
        return pa.concat_tables(self._parts).combine_chunks(), self._positions
