"""A seeded uniform sample of at most k rows of a stream of Arrow tables, in bounded memory.

Each row draws a random key from one generator, in stream order; the sample is the k rows of smallest
key (a bottom-k reservoir), so every k-subset of the rows is equally likely, and the sample depends on
the seed and the rows alone, not on how the stream was cut into batches. Rows whose key cannot make the
sample are never copied: once k rows are held, a batch adds only those with a key below the largest
held, about k/n of an n-th row's batch.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


class RowReservoir:
    """A bottom-k sample of the rows of the tables added, in their stream order.

    Parameters
    ----------
    capacity : int
        Rows kept at most.
    rng : numpy.random.Generator
        Draws the rows' keys, one per row in stream order.
    """

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self._capacity = capacity
        self._rng = rng
        self._rows_seen = 0
        self._bound = np.inf  # a key at or above it cannot make the sample
        self._pending: list[tuple[np.ndarray, np.ndarray, pa.Table]] = []  # keys, positions, rows
        self._pending_rows = 0
        self._refreshed_at = 0  # rows held when the bound was last lowered

    def add(self, table: pa.Table) -> None:
        """Offer the next rows of the stream to the sample.

        Parameters
        ----------
        table : pyarrow.Table
            The rows, all with the schema of the first table added.
        """
        keys = self._rng.random(table.num_rows)
        chosen = np.flatnonzero(keys < self._bound)
        if len(chosen):
            rows = table if len(chosen) == table.num_rows else table.take(pa.array(chosen))
            self._pending.append((keys[chosen], self._rows_seen + chosen, rows))
            self._pending_rows += len(chosen)
        self._rows_seen += table.num_rows
        if self._pending_rows > 2 * self._capacity:
            self._compact()
        elif (
            self._pending_rows >= self._capacity
            and self._pending_rows > self._refreshed_at + self._capacity // 4
        ):
            self._refresh_bound()

    def _refresh_bound(self) -> None:
        """Lower the bound to the ``capacity``-th smallest key held, from the keys alone: later batches
        then copy fewer rows that the next compaction would drop."""
        keys = np.concatenate([keys for keys, _, _ in self._pending])
        self._bound = float(np.partition(keys, self._capacity - 1)[self._capacity - 1])
        self._refreshed_at = self._pending_rows

    def _compact(self) -> None:
        """Keep the ``capacity`` rows of smallest key among those held, and lower the bound to them."""
        keys = np.concatenate([keys for keys, _, _ in self._pending])
        positions = np.concatenate([positions for _, positions, _ in self._pending])
        rows = pa.concat_tables([rows for _, _, rows in self._pending])
        if len(keys) > self._capacity:
            kept = np.argpartition(keys, self._capacity - 1)[: self._capacity]
            keys, positions, rows = keys[kept], positions[kept], rows.take(pa.array(kept))
            self._bound = float(keys.max())
        self._pending, self._pending_rows = [(keys, positions, rows)], len(keys)
        self._refreshed_at = self._pending_rows

    def sample(self) -> tuple[pa.Table, np.ndarray] | None:
        """The sample in stream order, and each row's position in the stream; None when nothing was added.

        Returns
        -------
        rows : pyarrow.Table
        positions : ndarray of int64
        """
        if not self._pending:
            return None
        self._compact()
        _, positions, rows = self._pending[0]
        order = np.argsort(positions, kind="stable")
        return rows.take(pa.array(order)).combine_chunks(), positions[order]
