"""One streaming pass over parquet training data: the input opened and checked from its metadata,
its record batches read in order, and each batch checked and added to exact column statistics.

``parquet_sample`` samples a table's rows on such a pass, ``series_sample`` a long series' segments.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from vae_anomaly.batch.inputs import input_files, partition_keys
from vae_anomaly.batch.schema import arrow_kind, metadata_null_count, raise_problems
from vae_anomaly.column_statistics import ColumnStatistics, NonFiniteValues, StatisticsAccumulator
from vae_anomaly.value_checks import FLOAT32_MAX, check_finite, check_float32_range

#: The kinds of column (``batch.schema.arrow_kind``) read as numbers: the statistics are of these.
NUMERIC_KINDS = ("numeric", "boolean")
_REFUSAL = "The input cannot be trained on"


class OpenedInput(NamedTuple):
    """An input opened for training: its root, each file's footer, the dataset, the columns' kinds."""

    base: Path
    footers: dict[Path, pq.FileMetaData]
    dataset: ds.Dataset
    kinds: dict[str, str]

    @property
    def n_rows(self) -> int:
        """Rows in all the files, from their footers."""
        return sum(footer.num_rows for footer in self.footers.values())


def open_input(
    source: str | os.PathLike[str], columns: Sequence[str] | None, drop_columns: Sequence[str]
) -> OpenedInput:
    """Open the input's files and choose the columns; refuse unreadable files and unknown columns.

    Parameters
    ----------
    source : str or PathLike
        A parquet file, folder (hive-partitioned or not) or glob.
    columns : sequence of str or None
        The columns to read, in order; None: every column of the first file.
    drop_columns : sequence of str
        Columns not to read.

    Returns
    -------
    OpenedInput

    Raises
    ------
    FileNotFoundError
        If ``source`` matches no file.
    SchemaError
        Listing every unreadable file.
    ValueError
        If a named column is in no file, or no column is left.
    """
    base, files = input_files(source)
    footers, problems = {}, []
    for file in files:
        try:
            footers[file] = pq.read_metadata(file)
        except (OSError, pa.ArrowException) as error:
            problems.append(f"{file}: unreadable parquet: {error}")
    raise_problems(_REFUSAL, problems)
    dataset = ds.dataset(
        [str(file) for file in files], format="parquet", partitioning="hive", partition_base_dir=str(base)
    )
    names = _chosen_columns(dataset, footers, columns, drop_columns)
    return OpenedInput(
        base, footers, dataset, {name: arrow_kind(dataset.schema.field(name).type) for name in names}
    )


def check_metadata(
    opened: OpenedInput, *, numeric_only: bool, allow_nulls: bool, time_column: str | None = None
) -> None:
    """Refuse, listing every problem of every file, what the metadata shows: missing columns, columns
    of the wrong kind, nulls where they are refused.

    Parameters
    ----------
    opened : OpenedInput
    numeric_only : bool
        Refuse columns that are not numeric or boolean (but ``time_column``).
    allow_nulls : bool
        False refuses the nulls the files' statistics count.
    time_column : str or None, default=None
        A column that must hold timestamps, none of them null.

    Raises
    ------
    SchemaError
    """
    raise_problems(
        _REFUSAL,
        [
            problem
            for file, footer in opened.footers.items()
            for problem in _file_problems(
                file,
                footer,
                partition_keys(file.relative_to(opened.base)),
                opened.kinds,
                numeric_only,
                allow_nulls,
                time_column,
            )
        ],
    )


def scan_options() -> dict[str, Any]:
    """The read-ahead of the passes over parquet input, as ``Dataset.scanner`` keywords: one file and
    four batches ahead, each column chunk read as decoded. Pre-buffering reads a file's row groups
    whole, and the default read-ahead holds several files (4x the memory); two batches ahead kept the
    reads from storage waiting on the statistics (a folder out of the page cache: the pass took 16-19 s
    against 11-12 s with four, benchmarks/RESULTS.md).

    Returns
    -------
    dict
        ``batch_readahead``, ``fragment_readahead`` and ``fragment_scan_options``.
    """
    return {
        "batch_readahead": 4,
        "fragment_readahead": 1,
        "fragment_scan_options": ds.ParquetFragmentScanOptions(pre_buffer=False),
    }


def record_batches(
    opened: OpenedInput, batch_rows: int, progress: bool | None
) -> Iterator[tuple[pa.RecordBatch, str]]:
    """The input's chosen columns in record batches of at most ``batch_rows`` rows, files in path
    order and rows in file order, each with its file's path; a progress bar of rows read.

    Parameters
    ----------
    opened : OpenedInput
    batch_rows : int
    progress : bool or None
        Show the bar; None shows it on a terminal only.

    Yields
    ------
    (RecordBatch, str)
    """
    scanner = opened.dataset.scanner(
        columns=list(opened.kinds),
        batch_size=batch_rows,
        **scan_options(),
    )
    with tqdm(
        total=opened.n_rows,
        unit="rows",
        unit_scale=True,
        desc="reading",
        disable=None if progress is None else not progress,
    ) as bar:
        for tagged in scanner.scan_batches():
            yield tagged.record_batch, tagged.fragment.path
            bar.update(tagged.record_batch.num_rows)


def _chosen_columns(
    dataset: ds.Dataset,
    footers: dict[Path, pq.FileMetaData],
    columns: Sequence[str] | None,
    drop_columns: Sequence[str],
) -> list[str]:
    """The columns to read: ``columns``, or every column of the first file; less ``drop_columns``."""
    available = dataset.schema.names
    named = (
        list(columns) if columns is not None else next(iter(footers.values())).schema.to_arrow_schema().names
    )
    unknown = [name for name in [*named, *drop_columns] if name not in available]
    if unknown:
        raise ValueError(f"The input has no column(s) {unknown}; its columns are {available}.")
    chosen = [name for name in named if name not in set(drop_columns)]
    if not chosen:
        raise ValueError("No column is left to train on: drop_columns drops them all.")
    return chosen


def _file_problems(
    file: Path,
    footer: pq.FileMetaData,
    partition: dict[str, str],
    kinds: dict[str, str],
    numeric_only: bool,
    allow_nulls: bool,
    time_column: str | None,
) -> list[str]:
    """What the parquet metadata shows is wrong with one file: missing columns, wrong kinds, nulls."""
    schema = footer.schema.to_arrow_schema()
    problems = []
    for name in kinds:
        if name not in schema.names:
            if name not in partition:
                problems.append(f"{file}: missing column {name!r}")
            continue
        kind = arrow_kind(schema.field(name).type)
        nulls = metadata_null_count(footer, schema.get_field_index(name))
        if name == time_column:
            if kind != "datetime":
                problems.append(
                    f"{file}: column {name!r} holds {kind} values ({schema.field(name).type}), "
                    "expected timestamps"
                )
            elif nulls:
                problems.append(f"{file}: column {name!r} has {nulls} missing timestamp(s)")
            continue
        if (numeric_only and kind not in NUMERIC_KINDS) or (kind in NUMERIC_KINDS) != (
            kinds[name] in NUMERIC_KINDS
        ):
            wanted = "numeric or boolean" if numeric_only or kinds[name] in NUMERIC_KINDS else kinds[name]
            problems.append(
                f"{file}: column {name!r} holds {kind} values ({schema.field(name).type}), expected {wanted}"
            )
        elif not allow_nulls and nulls:
            problems.append(f"{file}: column {name!r} has {nulls} null(s), which the model cannot take")
    return problems


class CheckedStatistics:
    """Exact statistics of numeric columns over a pass, each batch checked first: an infinite value,
    one beyond float32's range, or (without ``allow_nulls``) a null or NaN is refused, naming the file,
    the column and the row in the file.

    Parameters
    ----------
    names : list of str
        The numeric columns.
    allow_nulls : bool
        Whether nulls and NaN are taken (as missing values).
    """

    def __init__(self, names: list[str], allow_nulls: bool) -> None:
        self._names, self._allow_nulls = names, allow_nulls
        self._statistics = StatisticsAccumulator(names)
        self._file, self._file_row = "", 0

    def add(self, table: pa.Table, file: str) -> list[np.ndarray]:
        """Check one batch of ``file`` (batches come in file order) and add it.

        Parameters
        ----------
        table : Table
            The batch; it holds the numeric columns.
        file : str
            The file it comes from.

        Returns
        -------
        list of ndarray
            The numeric columns as float64, NaN for nulls.
        """
        if file != self._file:
            self._file, self._file_row = file, 0
        columns = [float_column(table, name) for name in self._names]
        try:
            missing = self._statistics.add(columns, table.num_rows)
        except NonFiniteValues as bad:
            self._refuse(check_finite, columns[bad.column], bad.column, allow_nan=True, advice=self._advice)
            self._refuse(check_float32_range, columns[bad.column], bad.column)  # a sum that overflowed
            raise
        for j in np.flatnonzero(missing) if not self._allow_nulls else ():
            self._refuse(check_finite, columns[j], j, allow_nan=False, advice=self._advice)
        low, high = self._statistics.extremes()
        for j in np.flatnonzero((high > FLOAT32_MAX) | (low < -FLOAT32_MAX)):  # this batch has the first
            self._refuse(check_float32_range, columns[j], j)
        self._file_row += table.num_rows
        return columns

    def result(self) -> ColumnStatistics:
        """The statistics of every row added."""
        return self._statistics.result()

    @property
    def _advice(self) -> str:
        return "Drop or fix those rows first." if self._allow_nulls else "Drop or fill missing values first."

    def _refuse(self, check: Callable[..., None], values: np.ndarray, j: int, **options: Any) -> None:
        """Run an input check on numeric column ``j``, its error naming the file and the row in it."""
        try:
            check(values[:, None], np.asarray([self._names[j]]), first_row=self._file_row, **options)
        except ValueError as error:
            raise ValueError(f"{self._file}: {error}") from None


def float_column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric or boolean column as float64, NaN for nulls (a view of the file's buffer where it can).

    Parameters
    ----------
    table : Table
    name : str

    Returns
    -------
    ndarray of shape (n_rows,), float64
    """
    column = table.column(name).cast(pa.float64())
    return column.fill_null(np.nan).to_numpy() if column.null_count else column.to_numpy()
