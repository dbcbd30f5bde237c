"""Entry point `score`: score a parquet file or folder with a logged model and write the scores.

The output holds the input columns plus ``anomaly_score`` and ``is_anomaly``, row for row. It is written
under a temporary name and renamed when complete, so a rerun replaces it whole: scheduled reruns never
duplicate rows and readers never see a partial file.
"""

from __future__ import annotations

import argparse
import time

import mlflow

from vae_anomaly import tracking

from arguments import column_list, existing_path, output_path, read_table, write_atomically


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-uri", required=True, help="e.g. models:/NAME@champion or runs:/ID/model")
    parser.add_argument("--data", type=existing_path, required=True, help="parquet file or folder")
    parser.add_argument("--output", type=output_path, required=True, help="parquet file to write")
    parser.add_argument(
        "--drop-columns", type=column_list, default=[], help="comma-separated input columns not to score"
    )
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    tracking.use_tracking_store()
    started = time.perf_counter()
    table = read_table(arguments.data, arguments.drop_columns)
    try:
        model = mlflow.pyfunc.load_model(arguments.model_uri)
    except mlflow.exceptions.MlflowException as error:
        raise SystemExit(f"error: cannot load model {arguments.model_uri}: {error}") from None
    scores = model.predict(table.drop(columns=arguments.drop_columns))
    clashes = sorted(set(scores.columns) & set(table.columns) - set(arguments.drop_columns))
    if clashes:
        raise SystemExit(f"error: the input already has column(s) {clashes}; drop or rename them")
    write_atomically(table.drop(columns=arguments.drop_columns).join(scores), arguments.output)
    seconds = time.perf_counter() - started
    flagged = int(scores["is_anomaly"].sum())
    with mlflow.start_run():
        mlflow.log_params({"input_path": str(arguments.data), "output_path": str(arguments.output)})
        mlflow.log_metrics({"rows": len(scores), "anomalies": flagged, "seconds": seconds})
    print(f"scored {len(scores)} rows, {flagged} flagged, into {arguments.output} in {seconds:.1f} s")


if __name__ == "__main__":
    main()
