"""A series model's anomaly events for parquet files: one events file per input file, exactly once.

``write_events`` reads each input file whole (a series' windows span the file), finds its events with
``frames.event_frame`` (what the MLflow model answers for ``params={"events": True}``) and writes
them to the same relative path under the events folder, with the safety of the batch scorer
(``files``): a private partial file renamed into place, no symbolic link followed or replaced, a
lock on the folder, an events folder that overlaps the input refused. The events file's metadata
records the input's fingerprint, so a rerun skips the files whose events are already written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vae_anomaly.batch.files import SOURCE_KEY, FileJob, clear_stale_partials, locked_output, plan_jobs
from vae_anomaly.batch.model import BatchModel, resolve_model
from vae_anomaly.batch.run import failure_lines, model_input
from vae_anomaly.batch.schema import check_schemas
from vae_anomaly.frames import event_frame
from vae_anomaly.numpy_scorer import NumpyPipelineScorer
from vae_anomaly.numpy_series_scorer import NumpySeriesScorer
from vae_anomaly.score_columns import ANOMALY_SCORE

# An events file records the row count of the input it was found in under this key (its own rows
# are events, so the batch scorer's row-count key would not match).
EVENTS_OF_ROWS_KEY = b"vae_anomaly.events_of_rows"


@dataclass
class EventsSummary:
    """What a ``write_events`` call did.

    Attributes
    ----------
    files : int
        Input files found.
    written_files, skipped_files : int
        Events files written now, and those already complete for their very input.
    events : int
        Events written now.
    failed : dict of str to str
        Input files whose events could not be found or written, with the reason.
    """

    files: int = 0
    written_files: int = 0
    skipped_files: int = 0
    events: int = 0
    failed: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        line = (
            f"events of {self.files} files ({self.written_files} written, {self.skipped_files} already "
            f"complete, {len(self.failed)} failed): {self.events} events"
        )
        return line + failure_lines(self.failed)


def _metadata(job: FileJob) -> dict[bytes, bytes]:
    return {EVENTS_OF_ROWS_KEY: str(job.n_rows).encode(), SOURCE_KEY: job.output_metadata()[SOURCE_KEY]}


def _write_job(job: FileJob, model: BatchModel, scored_file: str | os.PathLike[str] | None) -> int:
    """Find one file's events (from the scores in ``scored_file``, where given) and write them into
    place; return how many there are."""
    columns = [name for name in job.dataset.schema.names if name in model.columns]
    _, frame = model_input(job.dataset.to_table(columns=columns), job, model)
    scores = None
    if scored_file is not None:
        scores = pq.read_table(scored_file, columns=[ANOMALY_SCORE]).column(0).to_numpy()
    events = pa.Table.from_pandas(event_frame(model.model, frame, scores=scores), preserve_index=False)
    partial = job.new_partial()
    try:
        pq.write_table(events.replace_schema_metadata(_metadata(job)), partial)
        job.commit_partial(partial)
    finally:
        job.discard_partial(partial)
    return len(events)


def write_events(
    model: Any,
    input_path: str | os.PathLike[str],
    events_path: str | os.PathLike[str],
    *,
    trust_pickle: bool = False,
    overwrite: bool = False,
    scores_from: Mapping[str, str | os.PathLike[str]] | None = None,
) -> EventsSummary:
    """Write the anomaly events of each parquet file of a series, to the same relative path.

    Parameters
    ----------
    model : str, PathLike, BatchModel, or fitted TimeSeriesVAEDetector or Pipeline ending in one
        A series model, or where to load one from (see :func:`load_scoring_model`).
    input_path : str or PathLike
        A parquet file, a folder of them or a glob, each file one series (as ``score_parquet``).
    events_path : str or PathLike
        Events folder: ``IN/a/b.parquet``'s events go to ``EVENTS/a/b.parquet``, one row per event
        (``TimeSeriesVAEDetector.events``' columns).
    trust_pickle : bool, default=False
        Allow a joblib/pickle model file (unpickling runs code).
    overwrite : bool, default=False
        Find again the events of files whose events file is complete.
    scores_from : mapping of str to str or PathLike, or None, default=None
        Input files (as ``str`` of their path) that this very model has just scored, each with the
        file its scores went to: ``score_parquet``'s ``BatchSummary.outputs``. Their events come
        from those ``anomaly_score`` columns, so they are not scored again (only the windows around
        flagged runs are, for their evidence); every other file is scored.

    Returns
    -------
    EventsSummary

    Raises
    ------
    TypeError
        If the model's detector is not a time-series detector.
    SchemaError, FileNotFoundError, ValueError, OutputBusyError
        As ``score_parquet`` raises them, for the events folder.
    """
    output = Path(events_path)
    jobs, unreadable = plan_jobs(input_path, output)
    batch_model = resolve_model(model, trust_pickle=trust_pickle)
    if not batch_model.whole_files:
        raise TypeError("Events are found in time series; this model scores independent rows.")
    if isinstance(batch_model.model, NumpySeriesScorer | NumpyPipelineScorer):
        raise TypeError(
            "This BatchModel scores with numpy, which finds no events: load the model without "
            "input_path (load_scoring_model(source)) to write events."
        )
    summary = EventsSummary(files=len(jobs) + len(unreadable), failed=dict(unreadable))
    check_schemas(jobs, batch_model)
    with locked_output(output):
        clear_stale_partials(jobs)
        for job in jobs:
            if not overwrite and job.target_records(_metadata(job)):
                summary.skipped_files += 1
                continue
            try:
                summary.events += _write_job(job, batch_model, (scores_from or {}).get(str(job.source)))
            except (OSError, ValueError, pa.ArrowException) as error:
                summary.failed[str(job.source)] = str(error)
                continue
            summary.written_files += 1
    return summary
