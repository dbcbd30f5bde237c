"""Entry point `evaluate`: measure a logged model on labelled parquet data and log the metrics.

Logs ROC-AUC and PR-AUC of ``anomaly_score`` and the precision, recall and F1 of ``is_anomaly`` (the
model's contamination threshold) against the label column (1 = anomaly); for a time-series model also
its events' event-wise precision, recall and F1 and range-based F1.
"""

from __future__ import annotations

import argparse

import mlflow

from vae_anomaly import tracking
from vae_anomaly.cli import skip_final_collection

from arguments import existing_path, read_table


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-uri", required=True, help="e.g. models:/NAME@champion or runs:/ID/model")
    parser.add_argument("--data", type=existing_path, required=True, help="labelled parquet file or folder")
    parser.add_argument("--label-column", required=True)
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    tracking.use_tracking_store()
    table = read_table(arguments.data, [arguments.label_column])
    try:
        metrics = tracking.evaluate_model(
            arguments.model_uri, table.drop(columns=arguments.label_column), table[arguments.label_column]
        )
    except mlflow.exceptions.MlflowException as error:
        raise SystemExit(f"error: cannot load model {arguments.model_uri}: {error}") from None
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    with mlflow.start_run():
        mlflow.log_params({"input_path": str(arguments.data)})
        mlflow.log_metrics(metrics)
    print(", ".join(f"{name} {value:.4f}" for name, value in metrics.items()))


if __name__ == "__main__":
    skip_final_collection()  # the objects alive at exit are left to the OS: 1 s of a small run
    main()
