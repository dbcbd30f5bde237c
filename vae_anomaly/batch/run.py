"""The batch scoring loop: ``score_parquet`` plans the files, checks them, then scores each in turn."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from vae_anomaly.batch.files import (
    DEFAULT_BATCH_ROWS,
    FileJob,
    clear_stale_partials,
    locked_output,
    plan_jobs,
)
from vae_anomaly.batch.io import READ_AHEAD_BATCHES, OutputFile, job_batches, read_ahead, write_empty
from vae_anomaly.batch.model import BatchModel, resolve_model
from vae_anomaly.batch.schema import check_schemas, decimals_as_float, partition_number
from vae_anomaly.score_columns import ANOMALY_SCORE, IS_ANOMALY


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
    outputs : dict of str to str
        Each input file scored now, with the output file its scores went to (for ``write_events``'
        ``scores_from``).
    """

    files: int = 0
    scored_files: int = 0
    skipped_files: int = 0
    rows: int = 0
    anomalies: int = 0
    seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        line = (
            f"{self.files} files ({self.scored_files} scored, {self.skipped_files} already complete, "
            f"{len(self.failed)} failed), {self.rows} rows, {self.anomalies} anomalies, {self.seconds:.1f} s"
        )
        return line + failure_lines(self.failed)


def failure_lines(failed: dict[str, str]) -> str:
    """A line ``failed: PATH: REASON`` per failed file, each after a newline, for a summary."""
    return "".join(f"\nfailed: {path}: {reason}" for path, reason in failed.items())


def model_input(table: pa.Table, job: FileJob, model: BatchModel) -> tuple[pa.Table, pd.DataFrame]:
    """An input table with its file's hive partition keys as columns, and what the model reads of it.

    Parameters
    ----------
    table : pyarrow.Table
        Rows of ``job``'s file.
    job : FileJob
    model : BatchModel

    Returns
    -------
    table : pyarrow.Table
        ``table`` and the partition keys it lacks (a numeric feature takes the key's number).
    frame : DataFrame
        The model's columns of it, decimals as float64.
    """
    for key, value in job.partition.items():
        if key not in table.column_names:
            # A numeric feature of the model takes the key's number (checked by check_schemas).
            number = partition_number(value) if model.kinds.get(key) == "numeric" else None
            column = (
                pa.array([value] * len(table), pa.string())
                if number is None
                else pa.array(np.full(len(table), number))
            )
            table = table.append_column(key, column)
    return table, decimals_as_float(table.select(model.columns)).to_pandas()


def _scored_table(batch: pa.RecordBatch, job: FileJob, model: BatchModel) -> tuple[pa.Table, int]:
    """The output rows of one input batch (kept columns, score, flag) and how many are flagged."""
    table, frame = model_input(pa.Table.from_batches([batch]), job, model)
    scores = model.score(frame)
    output = table.select(list(job.keep) if job.keep is not None else batch.schema.names)
    output = output.append_column(ANOMALY_SCORE, pa.array(scores[ANOMALY_SCORE].to_numpy(), pa.float64()))
    output = output.append_column(IS_ANOMALY, pa.array(scores[IS_ANOMALY].to_numpy(), pa.bool_()))
    return output, int(scores[IS_ANOMALY].sum())


def _with_output_columns(
    jobs: list[FileJob], keep: Sequence[str] | None, drop: Sequence[str] | None
) -> list[FileJob]:
    """Each job with the input columns its output holds: ``keep``, or all but ``drop``, or all."""
    if keep is not None and drop is not None:
        raise ValueError("Pass keep_columns (--keep-columns) or drop_columns (--drop-columns), not both.")
    if keep is not None:
        return [replace(job, keep=tuple(keep)) for job in jobs]
    if drop is None:
        return jobs
    unknown = sorted(set(drop) - {name for job in jobs for name in job.dataset.schema.names})
    if unknown:
        raise ValueError(f"drop_columns (--drop-columns) names {unknown}, which no input file has.")
    return [
        replace(job, keep=tuple(name for name in job.dataset.schema.names if name not in drop))
        for job in jobs
    ]


def _score_jobs(
    jobs: Sequence[FileJob],
    model: BatchModel,
    batch_rows: int,
    summary: BatchSummary,
    on_rows: Callable[[int], None],
) -> None:
    """Score every job's file; reading runs ahead across file boundaries, writing behind."""
    current: OutputFile | None = None
    failed: set[int] = set()  # jobs whose remaining batches are skipped

    def fail(job: FileJob, error: BaseException) -> None:
        summary.failed[str(job.source)] = str(error)

    def finish(output: OutputFile) -> None:
        try:
            output.commit()
        except (OSError, ValueError, pa.ArrowException) as error:
            fail(output.job, error)
            return
        summary.scored_files += 1
        summary.rows += output.rows
        summary.anomalies += output.anomalies
        summary.outputs[str(output.job.source)] = str(output.job.target)

    with ThreadPoolExecutor(max_workers=1) as write_behind:
        try:
            for index, item in read_ahead(job_batches(jobs, model, batch_rows), READ_AHEAD_BATCHES):
                if current is not None and current.job is not jobs[index]:
                    finish(current)
                    current = None
                if index in failed:
                    continue
                try:
                    if isinstance(item, Exception):
                        raise item
                    if current is None:
                        current = OutputFile(jobs[index], write_behind)
                    current.write(*_scored_table(item, jobs[index], model))
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
    drop_columns: Sequence[str] | None = None,
    trust_pickle: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
) -> BatchSummary:
    """Score parquet files in bounded memory, each to a parquet output of the same relative path.

    Parameters
    ----------
    model : str, PathLike, BatchModel, or fitted detector or Pipeline
        A model, or where to load one from (see :func:`load_scoring_model`: a saved table detector
        given as a path scores a small input with numpy, without loading torch).
    input_path : str or PathLike
        A parquet file, a folder of them (hive-partitioned or not; names starting with ``.`` or ``_``
        are skipped), or a glob such as ``"data/2026-*/*.parquet"``.
    output_path : str or PathLike
        Output folder. ``IN/a/b.parquet`` is written to ``OUT/a/b.parquet``.
    batch_rows : int, default=65536
        Rows per record batch: peak memory grows with it, not with the input.
    keep_columns : sequence of str or None, default=None
        Input columns copied to the output before ``anomaly_score`` and ``is_anomaly``; None keeps all.
    drop_columns : sequence of str or None, default=None
        Input columns not copied to the output (e.g. a label named like an output column); the
        others are. Not together with ``keep_columns``.
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
    ValueError
        Before anything is read, if ``output_path`` is a file or overlaps the input (it holds an input
        file, or lies inside the input folder or where the input glob would find its files); if the
        model cannot be loaded or is not a vae-anomaly model.
    OutputBusyError
        If another scoring job is writing into ``output_path``.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}.")
    started = time.perf_counter()
    output = Path(output_path)
    jobs, unreadable = plan_jobs(input_path, output)
    batch_model = resolve_model(model, trust_pickle=trust_pickle, input_path=input_path)
    jobs = _with_output_columns(jobs, keep_columns, drop_columns)
    summary = BatchSummary(files=len(jobs) + len(unreadable), failed=unreadable)
    check_schemas(jobs, batch_model)
    with locked_output(output):
        clear_stale_partials(jobs)
        todo = []
        for job in jobs:
            if not overwrite and job.is_complete():
                summary.skipped_files += 1
            elif job.n_rows == 0:
                write_empty(job)
                summary.scored_files += 1
            else:
                todo.append(job)
        disable = None if progress is None else not progress  # None: a bar on a terminal only
        total = sum(job.n_rows for job in todo)
        with tqdm(total=total, unit="rows", unit_scale=True, desc="scoring", disable=disable) as bar:
            _score_jobs(todo, batch_model, batch_rows, summary, bar.update)
    summary.seconds = time.perf_counter() - started
    return summary
