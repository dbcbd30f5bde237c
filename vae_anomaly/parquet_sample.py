"""What training needs of parquet data of any size, from one streaming pass: a sample and exact statistics.

``sample_parquet`` reads a parquet file, folder (hive-partitioned or not) or glob once, in record
batches, and returns a ``TrainingSample``: a seeded uniform sample of at most ``max_rows`` rows (a
bottom-k reservoir, ``reservoir``), the exact statistics of every numeric column over all rows
(``column_statistics``), and every level of the other columns (``parquet_training`` fits on it).
Columns, types and nulls are checked from
the files' parquet metadata before any row is read, as the scorer does.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from vae_anomaly.batch.files import DEFAULT_BATCH_ROWS
from vae_anomaly.batch.inputs import input_files, partition_keys
from vae_anomaly.batch.schema import arrow_kind, decimals_as_float, metadata_null_count, raise_problems
from vae_anomaly.column_statistics import NonFiniteValues, StatisticsAccumulator
from vae_anomaly.input_checks import FLOAT32_MAX, check_finite, check_float32_range
from vae_anomaly.reservoir import RowReservoir
from vae_anomaly.training_sample import MAX_LEVELS, TrainingSample, sample_size

#: The kinds of column (``batch.schema.arrow_kind``) read as numbers: the statistics are of these.
NUMERIC_KINDS = ("numeric", "boolean")
_REFUSAL = "The input cannot be trained on"


def sample_parquet(
    source: str | os.PathLike[str],
    *,
    columns: Sequence[str] | None = None,
    drop_columns: Sequence[str] = (),
    max_rows: int | Literal["auto"] = "auto",
    numeric_only: bool = False,
    allow_nulls: bool = True,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    random_state: int | np.random.Generator | None = None,
    progress: bool | None = None,
) -> TrainingSample:
    """Read parquet data once, in bounded memory: a uniform sample of its rows and exact column statistics.

    Memory grows with ``max_rows`` and ``batch_rows``, not with the data. The sample depends on the
    rows, their order (files in path order) and ``random_state`` only, not on ``batch_rows``.

    Parameters
    ----------
    source : str or PathLike
        A parquet file, a folder (hive-partitioned or not; names starting with ``.`` or ``_`` are
        skipped) or a glob.
    columns : sequence of str or None, default=None
        The columns to read, in order; hive partition keys may be named. None reads every column of
        the files (not the partition keys) but ``drop_columns``.
    drop_columns : sequence of str, default=()
        Columns not to read, e.g. a label column.
    max_rows : int or "auto", default="auto"
        Rows sampled at most. "auto": 262,144, fewer for a table so wide that they would hold over
        256 MB of float64 values (at least 1,024).
    numeric_only : bool, default=False
        Refuse columns that are not numeric or boolean (a bare detector reads only numbers).
    allow_nulls : bool, default=True
        False refuses nulls and NaN, naming file, column and row (from the parquet statistics before
        reading where the files have them).
    batch_rows : int, default=65536
        Rows per record batch read.
    random_state : int, Generator or None, default=None
        Seeds the sample; None draws a fresh one.
    progress : bool or None, default=None
        Show a progress bar of rows read; None shows it on a terminal only.

    Returns
    -------
    TrainingSample

    Raises
    ------
    FileNotFoundError
        If ``source`` matches no file.
    SchemaError
        Listing every problem of every file found in the metadata: an unreadable file, a missing
        column, a column of the wrong kind, nulls where they are refused.
    ValueError
        If there are no rows; if a value is infinite, beyond float32's range, or NaN where nulls are
        refused (naming file, column and row); or if a non-numeric column has over 65,536 levels.
    """
    opened = _open(source, columns, drop_columns)
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
            )
        ],
    )
    names, kinds, footers, dataset = list(opened.kinds), opened.kinds, opened.footers, opened.dataset
    numeric = [name for name in names if kinds[name] in NUMERIC_KINDS]
    reader = _SampleReader(
        names,
        numeric,
        sample_size(max_rows, len(names)),
        np.random.default_rng(random_state),
        allow_nulls,
    )
    scanner = dataset.scanner(
        columns=names,
        batch_size=batch_rows,
        # One file and two batches ahead, each column chunk read as decoded: pre-buffering reads a
        # file's row groups whole, and the default read-ahead holds several files (4x the memory).
        batch_readahead=2,
        fragment_readahead=1,
        fragment_scan_options=ds.ParquetFragmentScanOptions(pre_buffer=False),
    )
    total = sum(footer.num_rows for footer in footers.values())
    with tqdm(
        total=total,
        unit="rows",
        unit_scale=True,
        desc="reading",
        disable=None if progress is None else not progress,
    ) as bar:
        for tagged in scanner.scan_batches():
            reader.add(tagged.record_batch, tagged.fragment.path)
            bar.update(tagged.record_batch.num_rows)
    return reader.result(source)


def column_kinds(
    source: str | os.PathLike[str], *, columns: Sequence[str] | None = None, drop_columns: Sequence[str] = ()
) -> dict[str, str]:
    """The columns ``sample_parquet`` would read and the kind of values each holds, from the metadata.

    Parameters
    ----------
    source, columns, drop_columns
        As ``sample_parquet`` takes them.

    Returns
    -------
    dict of str to str
        Each column, in order, and its kind: "numeric", "boolean", "string", "datetime" or the
        Arrow type's name.

    Raises
    ------
    FileNotFoundError, SchemaError, ValueError
        As ``sample_parquet`` raises them for what the metadata shows.
    """
    return _open(source, columns, drop_columns).kinds


class _Opened(NamedTuple):
    """An input opened for training: its root, each file's footer, the dataset, the columns' kinds."""

    base: Path
    footers: dict[Path, pq.FileMetaData]
    dataset: ds.Dataset
    kinds: dict[str, str]


def _open(
    source: str | os.PathLike[str], columns: Sequence[str] | None, drop_columns: Sequence[str]
) -> _Opened:
    """Open the input's files and choose the columns; refuse unreadable files and unknown columns."""
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
    return _Opened(
        base, footers, dataset, {name: arrow_kind(dataset.schema.field(name).type) for name in names}
    )


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
        if (numeric_only and kind not in NUMERIC_KINDS) or (kind in NUMERIC_KINDS) != (
            kinds[name] in NUMERIC_KINDS
        ):
            wanted = "numeric or boolean" if numeric_only or kinds[name] in NUMERIC_KINDS else kinds[name]
            problems.append(
                f"{file}: column {name!r} holds {kind} values ({schema.field(name).type}), expected {wanted}"
            )
        elif not allow_nulls and (nulls := metadata_null_count(footer, schema.get_field_index(name))):
            problems.append(f"{file}: column {name!r} has {nulls} null(s), which the model cannot take")
    return problems


class _SampleReader:
    """The streaming pass: checks each batch, adds it to the statistics and offers it to the sample."""

    def __init__(
        self, names: list[str], numeric: list[str], capacity: int, rng: np.random.Generator, allow_nulls: bool
    ) -> None:
        self._names, self._numeric, self._allow_nulls = names, numeric, allow_nulls
        self._statistics = StatisticsAccumulator(numeric)
        self._reservoir = RowReservoir(capacity, rng)
        self._levels: dict[str, dict[Any, int]] = {name: {} for name in names if name not in numeric}
        self._level_rows: list[tuple[np.ndarray, pa.Table]] = []  # stream positions, rows
        self._rows = 0
        self._file, self._file_row = "", 0

    def add(self, batch: pa.RecordBatch, file: str) -> None:
        if file != self._file:
            self._file, self._file_row = file, 0
        table = pa.Table.from_batches([batch]).select(self._names)
        columns = [_float_column(table, name) for name in self._numeric]
        try:
            missing = self._statistics.add(columns, table.num_rows)
        except NonFiniteValues as bad:
            self._refuse(check_finite, columns[bad.column], bad.column, allow_nan=True, advice=self._advice)
            self._refuse(check_float32_range, columns[bad.column], bad.column)  # a sum that overflowed
            raise
        for j in np.flatnonzero(missing) if not self._allow_nulls else ():
            self._refuse(check_finite, columns[j], j, allow_nan=False, advice=self._advice)
        self._check_range(columns)
        self._add_levels(table)
        self._reservoir.add(table)
        self._rows += table.num_rows
        self._file_row += table.num_rows

    @property
    def _advice(self) -> str:
        return "Drop or fix those rows first." if self._allow_nulls else "Drop or fill missing values first."

    def _check_range(self, columns: list[np.ndarray]) -> None:
        """Refuse values beyond float32's range, which the VAE trains in; this batch has the first."""
        low, high = self._statistics.extremes()
        for j in np.flatnonzero((high > FLOAT32_MAX) | (low < -FLOAT32_MAX)):
            self._refuse(check_float32_range, columns[j], j)

    def _refuse(self, check: Callable[..., None], values: np.ndarray, j: int, **options: Any) -> None:
        """Run an input check on numeric column ``j``, its error naming the file and the row in it."""
        try:
            check(values[:, None], np.asarray([self._numeric[j]]), first_row=self._file_row, **options)
        except ValueError as error:
            raise ValueError(f"{self._file}: {error}") from None

    def _add_levels(self, table: pa.Table) -> None:
        """Record the batch's new levels of each non-numeric column and keep the first row of each."""
        first_rows = []
        for name, levels in self._levels.items():
            column = table.column(name)
            new = [value for value in pc.unique(column.drop_null()).to_pylist() if value not in levels]
            if len(levels) + len(new) > MAX_LEVELS:
                raise ValueError(
                    f"{self._file}: column {name!r} has over {MAX_LEVELS:,} distinct values; a column with "
                    "so many levels (an identifier?) is no feature to encode: drop it (drop_columns)."
                )
            for value in new:
                levels[value] = self._rows + (position := pc.index(column, value).as_py())
                first_rows.append(position)
        if first_rows:
            positions = np.unique(first_rows)
            self._level_rows.append((self._rows + positions, table.take(pa.array(positions))))

    def result(self, source: str | os.PathLike[str]) -> TrainingSample:
        sampled = self._reservoir.sample()
        if sampled is None:  # no row was added
            raise ValueError(f"{source} holds no rows to train on.")
        table = _with_level_rows(*sampled, self._levels, self._level_rows)
        return TrainingSample(
            frame=decimals_as_float(table).to_pandas(),
            statistics=self._statistics.result(),
            levels={name: list(levels) for name, levels in self._levels.items()},
            n_rows=self._rows,
        )


def _float_column(table: pa.Table, name: str) -> np.ndarray:
    """A numeric or boolean column as float64, NaN for nulls (a view of the file's buffer where it can)."""
    column = table.column(name).cast(pa.float64())
    return column.fill_null(np.nan).to_numpy() if column.null_count else column.to_numpy()


def _with_level_rows(
    table: pa.Table,
    positions: np.ndarray,
    levels: dict[str, dict[Any, int]],
    level_rows: list[tuple[np.ndarray, pa.Table]],
) -> pa.Table:
    """The sample with the first row of each level it lacks added, all in stream order."""
    wanted = set()
    for name, first in levels.items():
        sampled = set(pc.unique(table.column(name)).to_pylist())
        wanted |= {position for value, position in first.items() if value not in sampled}
    if not wanted:
        return table
    pieces, extra = [table], [positions]
    for stream_positions, rows in level_rows:
        keep = np.flatnonzero(np.isin(stream_positions, list(wanted)))
        if len(keep):
            pieces.append(rows.take(pa.array(keep)))
            extra.append(stream_positions[keep])
    table, positions = pa.concat_tables(pieces), np.concatenate(extra)
    return table.take(pa.array(np.argsort(positions, kind="stable"))).combine_chunks()
