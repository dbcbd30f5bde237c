"""Batch scoring of parquet files and folders: streaming, bounded memory, resumable, exactly once.

Each input file is read in record batches with ``pyarrow.dataset`` and scored with ``score_frame`` (the
scoring path the MLflow model uses); its output goes to the same relative path under the output folder,
written under a hidden temporary name and renamed when complete. The output's parquet metadata records
the row count and the input file's size and modification time, so a rerun skips outputs that are
complete and redoes the rest: an interrupted job resumes with no lost and no duplicated rows.
"""

from __future__ import annotations

import glob
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import joblib
import mlflow.pyfunc
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from mlflow.exceptions import MlflowException
from tqdm.auto import tqdm

from vae_anomaly.bundle import final_detector, load_bundle
from vae_anomaly.frames import ANOMALY_SCORE, IS_ANOMALY, score_frame
from vae_anomaly.timeseries import TimeSeriesVAEDetector

DEFAULT_BATCH_ROWS = 65_536
ROWS_KEY = b"vae_anomaly.rows"
SOURCE_KEY = b"vae_anomaly.source"
PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")
# Batches read ahead of scoring and written behind it: enough to overlap IO with the forward pass,
# few enough that memory stays flat however large the input.
READ_AHEAD_BATCHES = 2
WRITE_BEHIND_BATCHES = 2
_MAX_LISTED_PROBLEMS = 20


class SchemaError(ValueError):
    """The input does not have the columns, types or values the model needs; lists every problem."""


@dataclass(frozen=True)
class ScoringModel:
    """A model ready for batch scoring and what it needs from the input.

    Attributes
    ----------
    model : detector or Pipeline ending in one
    columns : list of str
        Input columns the model reads.
    kinds : dict of str to str
        Expected kind of each column: ``"numeric"``, ``"string"``, ``"datetime"``, ``"boolean"`` or
        ``"any"``.
    allows_nulls : bool
        Whether the model takes nulls in its columns.
    whole_files : bool
        Score each file in one piece (time series: windows span batches).
    """

    model: Any
    columns: list[str]
    kinds: dict[str, str]
    allows_nulls: bool
    whole_files: bool


@dataclass
class BatchSummary:
    """What a ``score_parquet`` call did.

    Attributes
    ----------
    files : int
        Input files found.
    scored_files, skipped_files : int
        Files scored now, and files whose complete output was already there.
    rows, anomalies : int
        Rows scored now, and how many of them were flagged.
    seconds : float
        Wall time of the call.
    failed : dict of str to str
        Input files that could not be scored, with the reason.
    """

    files: int = 0
    scored_files: int = 0
    skipped_files: int = 0
    rows: int = 0
    anomalies: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        line = (
            f"{self.files} files ({self.scored_files} scored, {self.skipped_files} already complete, "
            f"{len(self.failed)} failed), {self.rows} rows, {self.anomalies} anomalies, {self.seconds:.1f} s"
        )
        return line + "".join(f"\nfailed: {path}: {reason}" for path, reason in self.failed.items())


# ------------------------------------------------------------------ the model
def _arrow_kind(data_type: pa.DataType) -> str:
    if pa.types.is_dictionary(data_type):
        return _arrow_kind(data_type.value_type)
    if pa.types.is_boolean(data_type):
        return "boolean"
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "numeric"
    if pa.types.is_string(data_type) or pa.types.is_large_string(data_type):
        return "string"
    if pa.types.is_timestamp(data_type) or pa.types.is_date(data_type):
        return "datetime"
    return str(data_type)


_SIGNATURE_KINDS = {
    "double": "numeric",
    "float": "numeric",
    "long": "numeric",
    "integer": "numeric",
    "string": "string",
    "datetime": "datetime",
    "boolean": "boolean",
}


def prepare_model(model: Any, signature_kinds: dict[str, str] | None = None) -> ScoringModel:
    """Describe a fitted detector or Pipeline for batch scoring.

    Parameters
    ----------
    model : fitted detector or Pipeline ending in one, fitted on a DataFrame
    signature_kinds : dict or None
        Column kinds from an MLflow signature, when the model came from MLflow.

    Returns
    -------
    ScoringModel

    Raises
    ------
    ValueError
        If the model was fitted without column names, so parquet columns cannot be matched to it.
    """
    detector = final_detector(model)
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise ValueError(
            "The model was fitted on an array without column names, so parquet columns cannot be matched "
            "to its features: fit it on a DataFrame."
        )
    columns = [str(name) for name in names]
    is_series = isinstance(detector, TimeSeriesVAEDetector)
    time_column = detector.time_column if is_series else None
    if time_column is not None and time_column not in columns:
        columns.append(time_column)
    bare = model is detector
    kinds = {name: "numeric" if bare else "any" for name in columns}
    if time_column is not None:
        kinds[time_column] = "datetime"
    kinds.update({k: v for k, v in (signature_kinds or {}).items() if k in kinds})
    return ScoringModel(model, columns, kinds, allows_nulls=is_series or not bare, whole_files=is_series)


def load_scoring_model(source: str | os.PathLike[str], *, trust_pickle: bool = False) -> ScoringModel:
    """Load a model for batch scoring from a saved folder, a joblib file or an MLflow model URI.

    Parameters
    ----------
    source : str or PathLike
        A folder written by a detector's ``save`` or by ``save_bundle``; a ``.joblib``/``.pkl`` file;
        or an MLflow model URI (``models:/NAME@champion``, ``runs:/RUN_ID/model``) or model folder.
    trust_pickle : bool, default=False
        Allow loading a joblib/pickle file. Unpickling runs code from the file: only for files you trust.

    Returns
    -------
    ScoringModel

    Raises
    ------
    ValueError
        If the source is a pickle file and ``trust_pickle`` is False, or is not a model.
    """
    text = str(source)
    path = Path(text)
    if "://" in text or text.startswith(("models:/", "runs:/")) or (path / "MLmodel").is_file():
        try:
            pyfunc = mlflow.pyfunc.load_model(text)
        except (MlflowException, OSError) as error:
            raise ValueError(f"Cannot load the MLflow model {text}: {error}") from error
        schema = pyfunc.metadata.get_input_schema()
        kinds = (
            {spec.name: _SIGNATURE_KINDS.get(spec.type.name, "any") for spec in schema.inputs}
            if schema is not None and schema.has_input_names()
            else None
        )
        return prepare_model(pyfunc.unwrap_python_model().model, kinds)
    if path.is_dir():
        return prepare_model(load_bundle(path))
    if path.suffix in PICKLE_SUFFIXES:
        if not trust_pickle:
            raise ValueError(
                f"{path} is a pickle file, and unpickling runs code from it. Pass trust_pickle=True "
                "(--trust-pickle) only if you trust its origin, or save the model with its save() method."
            )
        return prepare_model(joblib.load(path))
    raise ValueError(
        f"{source} is not a model: expected a saved model folder, a .joblib/.pkl file or an MLflow URI."
    )


# ------------------------------------------------------------------ the files
@dataclass(frozen=True)
class _FileTask:
    source: Path
    target: Path
    partition: dict[str, str]


def _is_hidden(relative: Path) -> bool:
    return any(part.startswith((".", "_")) for part in relative.parts)


def _plan(input_path: str | os.PathLike[str], output: Path) -> list[_FileTask]:
    """Each input file with its output path (mirroring the input's layout) and hive partition keys."""
    text = str(input_path)
    if glob.has_magic(text):
        files = sorted(Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file())
        base = Path(os.path.commonpath([f.parent for f in files])) if files else Path(".")
    elif Path(text).is_dir():
        base = Path(text)
        files = sorted(p for p in base.rglob("*") if p.is_file() and not _is_hidden(p.relative_to(base)))
    elif Path(text).is_file():
        base, files = Path(text).parent, [Path(text)]
    else:
        raise FileNotFoundError(f"{input_path} matches no file or folder.")
    if not files:
        raise FileNotFoundError(f"{input_path} holds no input files.")
    tasks = []
    for file in files:
        relative = file.relative_to(base)
        partition = dict(
            unquote(part).split("=", 1) for part in relative.parent.parts if "=" in part and part[0] != "="
        )
        tasks.append(_FileTask(file, output / relative.with_suffix(".parquet"), partition))
    return tasks


def _source_fingerprint(path: Path) -> bytes:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}".encode()


@dataclass(frozen=True)
class _Job:
    """A readable input file to score: its task, its dataset and its row count."""

    task: _FileTask
    dataset: ds.Dataset
    n_rows: int

    @property
    def partial(self) -> Path:
        """The hidden name the output is written under until it is complete."""
        return self.task.target.with_name(f".{self.task.target.name}.partial")

    def output_metadata(self) -> dict[bytes, bytes]:
        """What a complete output of this very input records: its row count and the input's fingerprint."""
        return {ROWS_KEY: str(self.n_rows).encode(), SOURCE_KEY: _source_fingerprint(self.task.source)}


def _is_complete(job: _Job) -> bool:
    """Whether the output exists, says it holds all rows of this very input, and does."""
    if not job.task.target.is_file():
        return False
    try:
        metadata = pq.read_metadata(job.task.target)
    except (OSError, pa.ArrowException):
        return False
    recorded = metadata.metadata or {}
    expected = job.output_metadata()
    return metadata.num_rows == job.n_rows and all(
        recorded.get(key) == value for key, value in expected.items()
    )


def _schema_problems(
    task: _FileTask, dataset: ds.Dataset, scoring: ScoringModel, keep: Sequence[str] | None
) -> list[str]:
    schema = dataset.schema
    problems = []
    for column in scoring.columns:
        if column in task.partition:
            continue
        if column not in schema.names:
            problems.append(f"{task.source}: missing column {column!r}")
            continue
        expected, found = scoring.kinds[column], _arrow_kind(schema.field(column).type)
        if expected != "any" and found != expected:
            problems.append(
                f"{task.source}: column {column!r} holds {found} values ({schema.field(column).type}), "
                f"expected {expected}"
            )
    for column in keep or []:
        if column not in schema.names and column not in task.partition:
            problems.append(f"{task.source}: keep column {column!r} is not in the file")
    clashes = {ANOMALY_SCORE, IS_ANOMALY} & set(keep if keep is not None else schema.names)
    if clashes:
        problems.append(
            f"{task.source}: already has column(s) {sorted(clashes)}, which the output adds; "
            "leave them out with keep_columns (--keep-columns)"
        )
    if not scoring.allows_nulls:
        problems += _null_problems(task, dataset, scoring)
    return problems


def _null_problems(task: _FileTask, dataset: ds.Dataset, scoring: ScoringModel) -> list[str]:
    """Columns whose parquet statistics show nulls (files without statistics are checked while read)."""
    metadata = next(iter(dataset.get_fragments())).metadata
    stored = metadata.schema.to_arrow_schema()
    problems = []
    for column in scoring.columns:
        index = stored.get_field_index(column)
        if index < 0:
            continue
        nulls = 0
        for group in range(metadata.num_row_groups):
            statistics = metadata.row_group(group).column(index).statistics
            if statistics is not None and statistics.has_null_count:
                nulls += statistics.null_count
        if nulls:
            problems.append(
                f"{task.source}: column {column!r} has {nulls} null(s), which the model cannot take"
            )
    return problems


# ---------------------------------------------------------------- the scoring
def _read_ahead(batches: Iterator[pa.RecordBatch], depth: int) -> Iterator[pa.RecordBatch]:
    """Iterate ``batches`` on a background thread, at most ``depth`` ahead of the consumer."""
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                if stop.is_set():
                    return
                buffer.put(batch)
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(error)
        buffer.put(done)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                buffer.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.01)


def _scored_table(
    batch: pa.RecordBatch, task: _FileTask, scoring: ScoringModel, keep: Sequence[str] | None
) -> tuple[pa.Table, int]:
    table = pa.Table.from_batches([batch])
    for key, value in task.partition.items():
        if key not in table.column_names:
            table = table.append_column(key, pa.array([value] * len(table), pa.string()))
    frame = table.select(scoring.columns).to_pandas()
    scores = score_frame(scoring.model, frame)
    output = table.select(list(keep) if keep is not None else batch.schema.names)
    output = output.append_column(ANOMALY_SCORE, pa.array(scores[ANOMALY_SCORE].to_numpy(), pa.float64()))
    output = output.append_column(IS_ANOMALY, pa.array(scores[IS_ANOMALY].to_numpy(), pa.bool_()))
    return output, int(scores[IS_ANOMALY].sum())


def _read_columns(job: _Job, scoring: ScoringModel, keep: Sequence[str] | None) -> list[str]:
    names = job.dataset.schema.names
    wanted = {*scoring.columns, *(keep if keep is not None else names)}
    return [name for name in names if name in wanted]


def _job_batches(
    jobs: Sequence[_Job], scoring: ScoringModel, keep: Sequence[str] | None, batch_rows: int
) -> Iterator[tuple[int, pa.RecordBatch | Exception]]:
    """Every job's record batches in order, tagged with the job's index; a read error ends its job."""
    for index, job in enumerate(jobs):
        columns = _read_columns(job, scoring, keep)
        try:
            if scoring.whole_files:  # a series' windows span batches: score the file in one piece
                batches = job.dataset.to_table(columns=columns).combine_chunks().to_batches()
            else:
                batches = job.dataset.to_batches(columns=columns, batch_size=batch_rows)
            for batch in batches:
                yield index, batch
        except (OSError, pa.ArrowException) as error:
            yield index, error


class _OutputFile:
    """One output being written: batches go to a hidden partial file on the write-behind thread, and
    ``commit`` renames it into place once it holds every input row."""

    def __init__(self, job: _Job, write_behind: ThreadPoolExecutor) -> None:
        self.job = job
        self.write_behind = write_behind
        self.writer: pq.ParquetWriter | None = None
        self.pending: list[Future[None]] = []
        self.rows = self.anomalies = 0

    def write(self, table: pa.Table, anomalies: int) -> None:
        if self.writer is None:
            self.job.partial.parent.mkdir(parents=True, exist_ok=True)
            metadata = self.job.output_metadata()
            # Dictionary encoding costs more than the forward pass on float columns and saves nothing
            # there; it stays on for the rest (e.g. strings).
            encoded = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
            self.writer = pq.ParquetWriter(
                self.job.partial, table.schema.with_metadata(metadata), use_dictionary=encoded
            )
        self.pending.append(self.write_behind.submit(self.writer.write_table, table))
        if len(self.pending) > WRITE_BEHIND_BATCHES:
            self.pending.pop(0).result()
        self.rows += len(table)
        self.anomalies += anomalies

    def commit(self) -> None:
        try:
            for future in self.pending:
                future.result()
            if self.writer is None:
                raise ValueError("no rows were read")
            self.writer.close()
            self.writer = None
            if self.rows != self.job.n_rows:
                raise ValueError(f"read {self.rows} rows, but the file's metadata says {self.job.n_rows}")
            os.replace(self.job.partial, self.job.task.target)
        finally:
            self.discard()

    def discard(self) -> None:
        wait(self.pending)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.job.partial.unlink(missing_ok=True)


def _write_empty(job: _Job, keep: Sequence[str] | None) -> None:
    """The output of an input file with no rows: no rows, the output's columns."""
    source = job.dataset.schema
    kept = [source.field(name) for name in (keep if keep is not None else source.names)]
    schema = pa.schema([*kept, pa.field(ANOMALY_SCORE, pa.float64()), pa.field(IS_ANOMALY, pa.bool_())])
    job.task.target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(schema.with_metadata(job.output_metadata()).empty_table(), job.partial)
    os.replace(job.partial, job.task.target)


def _score_jobs(
    jobs: Sequence[_Job],
    scoring: ScoringModel,
    keep: Sequence[str] | None,
    batch_rows: int,
    summary: BatchSummary,
    on_rows: Callable[[int], None],
) -> None:
    """Score every job's file; reading runs ahead across file boundaries, writing behind."""
    current: _OutputFile | None = None
    failed: set[int] = set()  # jobs whose remaining batches are skipped

    def fail(job: _Job, error: BaseException) -> None:
        summary.failed[str(job.task.source)] = str(error)

    def finish(output: _OutputFile) -> None:
        try:
            output.commit()
        except (OSError, ValueError, pa.ArrowException) as error:
            fail(output.job, error)
            return
        summary.scored_files += 1
        summary.rows += output.rows
        summary.anomalies += output.anomalies

    with ThreadPoolExecutor(max_workers=1) as write_behind:
        try:
            for index, item in _read_ahead(_job_batches(jobs, scoring, keep, batch_rows), READ_AHEAD_BATCHES):
                if current is not None and current.job is not jobs[index]:
                    finish(current)
                    current = None
                if index in failed:
                    continue
                try:
                    if isinstance(item, Exception):
                        raise item
                    if current is None:
                        current = _OutputFile(jobs[index], write_behind)
                    current.write(*_scored_table(item, jobs[index].task, scoring, keep))
                except (OSError, ValueError, pa.ArrowException) as error:
                    fail(jobs[index], error)
                    failed.add(index)
                    if current is not None:
                        current.discard()
                        current = None
                    continue
                on_rows(len(item))
            if current is not None:
                finish(current)
                current = None
        finally:
            if current is not None:  # interrupted: leave no partial file behind
                current.discard()


def score_parquet(
    model: Any,
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    keep_columns: Sequence[str] | None = None,
    trust_pickle: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
) -> BatchSummary:
    """Score parquet files in bounded memory, each to a parquet output of the same relative path.

    Parameters
    ----------
    model : str, PathLike, ScoringModel, or fitted detector or Pipeline
        A model, or where to load one from (see :func:`load_scoring_model`).
    input_path : str or PathLike
        A parquet file, a folder of them (hive-partitioned or not; names starting with ``.`` or ``_``
        are skipped), or a glob such as ``"data/2026-*/*.parquet"``.
    output_path : str or PathLike
        Output folder. ``IN/a/b.parquet`` is written to ``OUT/a/b.parquet``.
    batch_rows : int, default=65536
        Rows per record batch: peak memory grows with it, not with the input.
    keep_columns : sequence of str or None, default=None
        Input columns copied to the output before ``anomaly_score`` and ``is_anomaly``; None keeps all.
    trust_pickle : bool, default=False
        Allow a joblib/pickle model file (unpickling runs code).
    overwrite : bool, default=False
        Rescore files whose complete output exists (e.g. after changing the model).
    progress : bool or None, default=None
        Show a progress bar; None shows it on a terminal only.

    Returns
    -------
    BatchSummary
        Files and rows scored, skipped and failed. A corrupt or unreadable file is reported there by
        name; the other files still complete.

    Raises
    ------
    SchemaError
        Before any file is scored, if any readable file lacks a column the model needs, has one of the
        wrong type, or has nulls the model cannot take; the message lists every problem.
    FileNotFoundError
        If ``input_path`` matches nothing.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}.")
    started = time.perf_counter()
    if isinstance(model, ScoringModel):
        scoring = model
    elif isinstance(model, str | os.PathLike):
        scoring = load_scoring_model(model, trust_pickle=trust_pickle)
    else:
        scoring = prepare_model(model)
    keep = list(keep_columns) if keep_columns is not None else None
    tasks = _plan(input_path, Path(output_path))
    summary = BatchSummary(files=len(tasks))
    opened: list[_Job] = []
    problems: list[str] = []
    for task in tasks:
        try:
            dataset = ds.dataset(task.source, format="parquet")
            n_rows = dataset.count_rows()
        except (OSError, pa.ArrowException) as error:
            summary.failed[str(task.source)] = f"unreadable parquet: {error}"
            continue
        problems += _schema_problems(task, dataset, scoring, keep)
        opened.append(_Job(task, dataset, n_rows))
    if problems:
        listed = problems[:_MAX_LISTED_PROBLEMS]
        more = f"\n... and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
        raise SchemaError(
            f"The input does not fit the model ({len(problems)} problems):\n" + "\n".join(listed) + more
        )
    todo = []
    for job in opened:
        if not overwrite and _is_complete(job):
            summary.skipped_files += 1
        elif job.n_rows == 0:
            _write_empty(job, keep)
            summary.scored_files += 1
        else:
            todo.append(job)
    disable = None if progress is None else not progress  # None: tqdm shows the bar on a terminal only
    total = sum(job.n_rows for job in todo)
    with tqdm(total=total, unit="rows", unit_scale=True, desc="scoring", disable=disable) as bar:
        _score_jobs(todo, scoring, keep, batch_rows, summary, bar.update)
    summary.seconds = time.perf_counter() - started
    return summary
