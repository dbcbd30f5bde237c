"""Reading input batches ahead of the scoring and writing output files behind it, on threads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vae_anomaly.batch.files import FileJob
from vae_anomaly.batch.model import BatchModel
from vae_anomaly.score_columns import ANOMALY_SCORE, IS_ANOMALY

# Batches read ahead of scoring and written behind it: enough to overlap IO with the forward pass,
# few enough that memory stays flat however large the input.
READ_AHEAD_BATCHES = 2
WRITE_BEHIND_BATCHES = 2


def read_ahead(batches: Iterator[pa.RecordBatch], depth: int) -> Iterator[pa.RecordBatch]:
    """Iterate ``batches`` on a background thread, at most ``depth`` ahead of the consumer.

    Parameters
    ----------
    batches : iterator
        Anything to iterate; an exception it raises is raised to the consumer.
    depth : int
        Items read ahead at most.

    Yields
    ------
    The items of ``batches``, in order.
    """
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


def _read_columns(job: FileJob, model: BatchModel) -> list[str]:
    names = job.dataset.schema.names
    wanted = {*model.columns, *job.output_columns}
    return [name for name in names if name in wanted]


def job_batches(
    jobs: Sequence[FileJob], model: BatchModel, batch_rows: int
) -> Iterator[tuple[int, pa.RecordBatch | Exception]]:
    """Every job's record batches in order, tagged with the job's index; a read error ends its job.

    Parameters
    ----------
    jobs : sequence of FileJob
    model : BatchModel
        Says which columns to read and whether files are read whole.
    batch_rows : int
        Rows per record batch.

    Yields
    ------
    index : int
        The job's position in ``jobs``.
    item : RecordBatch or Exception
        The next batch, or the error that ended the job's reading.
    """
    for index, job in enumerate(jobs):
        columns = _read_columns(job, model)
        try:
            if model.whole_files:  # a series' windows span batches: score the file in one piece
                batches = job.dataset.to_table(columns=columns).combine_chunks().to_batches()
            else:
                batches = job.dataset.to_batches(columns=columns, batch_size=batch_rows)
            for batch in batches:
                yield index, batch
        except (OSError, pa.ArrowException) as error:
            yield index, error


class OutputFile:
    """One output being written: batches go to a fresh partial file (``FileJob.new_partial``) on the
    write-behind thread, and ``commit`` renames it into place once it holds every input row.

    Parameters
    ----------
    job : FileJob
        The input whose output this is.
    write_behind : ThreadPoolExecutor
        The single thread that writes batches.
    """

    def __init__(self, job: FileJob, write_behind: ThreadPoolExecutor) -> None:
        self.job = job
        self.write_behind = write_behind
        self.writer: pq.ParquetWriter | None = None
        self.partial: Path | None = None
        self.pending: list[Future[None]] = []
        self.rows = self.anomalies = 0

    def write(self, table: pa.Table, anomalies: int) -> None:
        """Queue a scored table for writing; at most ``WRITE_BEHIND_BATCHES`` wait at a time."""
        if self.writer is None:
            self.partial = self.job.new_partial()
            metadata = self.job.output_metadata()
            # Dictionary encoding costs more than the forward pass on float columns and saves nothing
            # there; it stays on for the rest (e.g. strings).
            encoded = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
            self.writer = pq.ParquetWriter(
                self.partial, table.schema.with_metadata(metadata), use_dictionary=encoded
            )
        self.pending.append(self.write_behind.submit(self.writer.write_table, table))
        if len(self.pending) > WRITE_BEHIND_BATCHES:
            self.pending.pop(0).result()
        self.rows += len(table)
        self.anomalies += anomalies

    def commit(self) -> None:
        """Finish writing and rename the output into place, or raise if it lacks rows."""
        try:
            for future in self.pending:
                future.result()
            if self.writer is None or self.partial is None:
                raise ValueError("no rows were read")
            self.writer.close()
            self.writer = None
            if self.rows != self.job.n_rows:
                raise ValueError(f"read {self.rows} rows, but the file's metadata says {self.job.n_rows}")
            self.job.commit_partial(self.partial)
        finally:
            self.discard()

    def discard(self) -> None:
        """Stop writing and remove the partial file."""
        wait(self.pending)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.partial is not None:
            self.job.discard_partial(self.partial)
            self.partial = None


def write_empty(job: FileJob) -> None:
    """Write the output of an input file with no rows: the output's columns, no rows.

    Parameters
    ----------
    job : FileJob
        The empty input file.
    """
    source = job.dataset.schema
    kept = [source.field(name) for name in job.output_columns]
    schema = pa.schema([*kept, pa.field(ANOMALY_SCORE, pa.float64()), pa.field(IS_ANOMALY, pa.bool_())])
    partial = job.new_partial()
    try:
        pq.write_table(schema.with_metadata(job.output_metadata()).empty_table(), partial)
        job.commit_partial(partial)
    finally:
        job.discard_partial(partial)
