"""Batch scoring of parquet files and folders: streaming, bounded memory, resumable, exactly once.

Each input file is read in record batches with ``pyarrow.dataset`` and scored with ``score_frame`` (the
scoring path the MLflow model uses); its output goes to the same relative path under the output folder,
written under a hidden temporary name and renamed when complete. The output's parquet metadata records
the row count and the input file's size and modification time, so a rerun skips outputs that are
complete and redoes the rest: an interrupted job resumes with no lost and no duplicated rows.

The modules each do one job: ``model`` (what the scorer needs of a model), ``files`` (which files, where
their outputs go, which outputs are complete), ``schema`` (checking every file first), ``io`` (reading
ahead and writing behind), ``run`` (the scoring loop, ``score_parquet``) and ``events`` (a series
model's anomaly events per file, ``write_events``).
"""

from typing import TYPE_CHECKING

from vae_anomaly.lazy import lazy_exports

_EXPORTS = {
    "DEFAULT_BATCH_ROWS": "vae_anomaly.batch.files",
    "BatchModel": "vae_anomaly.batch.model",
    "BatchSummary": "vae_anomaly.batch.run",
    "EventsSummary": "vae_anomaly.batch.events",
    "OutputBusyError": "vae_anomaly.batch.files",
    "SchemaError": "vae_anomaly.batch.schema",
    "ScoringModel": "vae_anomaly.batch.model",
    "load_scoring_model": "vae_anomaly.batch.model",
    "prepare_model": "vae_anomaly.batch.model",
    "score_parquet": "vae_anomaly.batch.run",
    "write_events": "vae_anomaly.batch.events",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [  # the names of _EXPORTS, spelled out for type checkers
    "DEFAULT_BATCH_ROWS",
    "BatchModel",
    "BatchSummary",
    "EventsSummary",
    "OutputBusyError",
    "SchemaError",
    "ScoringModel",
    "load_scoring_model",
    "prepare_model",
    "score_parquet",
    "write_events",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from vae_anomaly.batch.events import EventsSummary, write_events
    from vae_anomaly.batch.files import DEFAULT_BATCH_ROWS, OutputBusyError
    from vae_anomaly.batch.model import BatchModel, ScoringModel, load_scoring_model, prepare_model
    from vae_anomaly.batch.run import BatchSummary, score_parquet
    from vae_anomaly.batch.schema import SchemaError
