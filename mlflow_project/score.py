"""Entry point `score`: score a parquet file or folder with a logged model, with the batch scorer.

The output folder mirrors the input's files and partitions; each output file holds the input columns
(less ``drop_columns``) plus ``anomaly_score`` and ``is_anomaly``, row for row. Files are written under a
temporary name and renamed when complete, and a rerun skips complete outputs: scheduled reruns never
duplicate rows, and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse

import mlflow

from vae_anomaly import tracking
from vae_anomaly.batch import OutputBusyError, SchemaError, score_parquet
from vae_anomaly.cli import skip_final_collection

from arguments import REPOSITORY_ROOT, column_list, existing_path, positive_int


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-uri", required=True, help="e.g. models:/NAME@champion or runs:/ID/model")
    parser.add_argument("--data", type=existing_path, required=True, help="parquet file or folder")
    parser.add_argument("--output", required=True, help="output folder; relative to the repository root")
    parser.add_argument("--drop-columns", type=column_list, default=[], help="input columns not to copy")
    parser.add_argument("--batch-rows", type=positive_int, default=65_536)
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    output = REPOSITORY_ROOT / arguments.output  # an absolute output stays as it is
    tracking.use_tracking_store()
    try:
        summary = score_parquet(
            arguments.model_uri,
            arguments.data,
            output,
            batch_rows=arguments.batch_rows,
            drop_columns=arguments.drop_columns or None,
        )
    except (SchemaError, ValueError, FileNotFoundError, OutputBusyError) as error:
        raise SystemExit(f"error: {error}") from None
    with mlflow.start_run():
        mlflow.log_params({"input_path": str(arguments.data), "output_path": str(output)})
        mlflow.log_metrics(
            {
                "rows": summary.rows,
                "anomalies": summary.anomalies,
                "files_failed": len(summary.failed),
                "files_skipped": summary.skipped_files,
                "seconds": summary.seconds,
            }
        )
    print(summary)
    if summary.failed:
        raise SystemExit(1)


if __name__ == "__main__":
    skip_final_collection()  # the objects alive at exit are left to the OS: 1 s of a small run
    main()
