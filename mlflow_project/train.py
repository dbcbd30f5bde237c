"""Entry point `train`: fit a pipeline on parquet data, log it to MLflow, register it, maybe promote it.

Labelled data (a label column, 1 = anomaly) is split: the detector trains on the first part (it never
sees the labels) and the holdout is scored to log validation metrics and to decide whether the new
version beats the current champion. Tabular rows are split at random, stratified by label; a time
series is split in time, the holdout being its last part. Both are read in one streaming pass, in
bounded memory, and the rows read are logged as ``input_rows``: a table as a uniform sample of at most
--max-rows rows (``vae_anomaly.sample_parquet``), which is split so; a series as its last
--holdout-fraction (at most 1,048,576 timestamps), kept whole, and segments drawn from the timestamps
before it, which the detector trains on (``vae_anomaly.sample_series_parquet``).
"""

from __future__ import annotations

import argparse

import mlflow
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
from sklearn.model_selection import train_test_split

from vae_anomaly import sample_parquet, sample_series_parquet, tracking
from vae_anomaly.cli import json_object, skip_final_collection
from vae_anomaly.parquet_sample import column_kinds
from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline
from vae_anomaly.windowing import auto_window

from arguments import (
    auto_or_positive_int,
    column_list,
    contamination,
    existing_path,
    holdout_fraction,
    non_negative_int,
    positive_int,
)

#: The most timestamps of a series' holdout, which is read whole.
MAX_HOLDOUT_TIMESTAMPS = 2**20


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=existing_path, required=True, help="parquet file or folder")
    parser.add_argument("--kind", choices=["tabular", "timeseries"], default="tabular")
    parser.add_argument("--label-column", default="is_anomaly", help="'' for unlabelled data")
    parser.add_argument("--features", type=column_list, default=[], help="comma-separated; '' = all")
    parser.add_argument("--time-column", default="", help="timeseries: the timestamp column")
    parser.add_argument("--epochs", type=auto_or_positive_int, default="auto")
    parser.add_argument("--contamination", type=contamination, default="auto")
    parser.add_argument("--latent-dim", type=positive_int, default=8)
    parser.add_argument(
        "--window", type=auto_or_positive_int, default="auto", help="timeseries window length or 'auto'"
    )
    parser.add_argument("--detector-params", type=json_object, default={}, help="JSON of more parameters")
    parser.add_argument("--holdout-fraction", type=holdout_fraction, default=0.2)
    parser.add_argument("--random-state", type=non_negative_int, default=0)
    parser.add_argument(
        "--max-rows", type=auto_or_positive_int, default="auto", help="tabular: rows sampled at most"
    )
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--promote", choices=["if_better", "always", "never"], default="if_better")
    arguments = parser.parse_args()
    if arguments.kind == "timeseries" and not arguments.time_column:
        parser.error("argument --time-column: required with --kind timeseries")
    if not arguments.model_name.strip():
        parser.error("argument --model-name: must not be empty")
    return arguments


def build_model(arguments: argparse.Namespace, features: pd.DataFrame):
    params = {
        "epochs": arguments.epochs,
        "contamination": arguments.contamination,
        "latent_dim": arguments.latent_dim,
        "random_state": arguments.random_state,
        **arguments.detector_params,
    }
    try:
        if arguments.kind == "timeseries":
            channels = [name for name in features.columns if name != arguments.time_column]
            return timeseries_pipeline(
                channels, time_column=arguments.time_column, window=arguments.window, **params
            )
        numeric = features.select_dtypes("number").columns.tolist()
        categorical = [name for name in features.columns if name not in numeric]
        return tabular_pipeline(numeric, categorical, **params)
    except TypeError as error:
        raise SystemExit(f"error: argument --detector-params: {error}") from None


def read_training_data(
    arguments: argparse.Namespace, required: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict, int]:
    """The rows to train on, the labelled holdout (None without labels or with --holdout-fraction 0),
    the options ``fit`` takes for them, and how many rows the data holds."""
    features = arguments.features
    columns = [*features, *(name for name in required if name not in features)] if features else None
    try:
        if arguments.kind == "timeseries":
            return _series_parts(arguments, columns)
        sample = sample_parquet(
            arguments.data, columns=columns, max_rows=arguments.max_rows, random_state=arguments.random_state
        )
    except (OSError, ValueError) as error:  # SchemaError is a ValueError; the message names the problem
        raise SystemExit(f"error: {error}") from None
    training, holdout = split(arguments, sample.frame)
    return training, holdout, {}, sample.n_rows


def _series_parts(
    arguments: argparse.Namespace, columns: list[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame | None, dict, int]:
    """A series' segments to train on and its last part, whole, to validate on."""
    n_rows = ds.dataset(str(arguments.data), format="parquet", partitioning="hive").count_rows()
    holdout_rows = 0
    if arguments.label_column and arguments.holdout_fraction > 0:
        holdout_rows = min(n_rows - round(n_rows * (1 - arguments.holdout_fraction)), MAX_HOLDOUT_TIMESTAMPS)
    window = arguments.window
    if window == "auto":  # by the channels, the label and time columns left out
        kinds = column_kinds(arguments.data, columns=columns)
        window = auto_window(
            sum(name not in (arguments.label_column, arguments.time_column) for name in kinds)
        )
    sample = sample_series_parquet(
        arguments.data,
        window=window,
        columns=columns,
        time_column=arguments.time_column,
        holdout_rows=holdout_rows,
        random_state=arguments.random_state,
    )
    return sample.frame, sample.holdout, {"detector__segments": sample.segments}, sample.n_rows


def split(arguments: argparse.Namespace, table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """A table's training rows and labelled holdout (None without labels or with holdout_fraction 0)."""
    if not arguments.label_column or arguments.holdout_fraction == 0:
        return table, None
    labels = table[arguments.label_column]
    stratify = labels if labels.nunique() > 1 and labels.value_counts().min() >= 2 else None
    return train_test_split(
        table, test_size=arguments.holdout_fraction, random_state=arguments.random_state, stratify=stratify
    )


def main() -> None:
    arguments = parse_arguments()
    label = [arguments.label_column] if arguments.label_column else []
    time = [arguments.time_column] if arguments.time_column else []
    training, holdout, fit_options, input_rows = read_training_data(arguments, label + time)
    if arguments.features:
        columns = arguments.features + [name for name in time if name not in arguments.features]
    else:
        columns = [name for name in training.columns if name not in label]
    tracking.use_tracking_store()
    tracking.autolog()
    with mlflow.start_run():
        mlflow.log_params({"input_path": str(arguments.data), "input_rows": input_rows})
        try:
            model = build_model(arguments, training[columns]).fit(training[columns], **fit_options)
        except ValueError as error:  # a bad detector parameter or unusable data: the message says which
            raise SystemExit(f"error: {error}") from None
        example_rows = model[-1].window_ if arguments.kind == "timeseries" else 5
        info = tracking.log_model(model, "model", input_example=training[columns].head(example_rows))
        validation = validation_labels = None
        if holdout is not None:
            validation_labels = holdout[arguments.label_column].to_numpy()
            if set(np.unique(validation_labels)) == {0, 1}:
                validation = holdout[columns]
            else:
                print("no validation metrics: the holdout needs both normal (0) and anomalous (1) labels")
                validation_labels = None
        registration = tracking.register_model(
            info.model_uri,
            arguments.model_name,
            validation_data=validation,
            validation_labels=validation_labels,
            promote=arguments.promote,
        )
        if registration.validation_metrics is not None:
            metrics = registration.validation_metrics
            mlflow.log_metrics({f"validation_{name}": value for name, value in metrics.items()})
        mlflow.set_tags({"registered_version": registration.version, "promoted": str(registration.promoted)})
    print(
        f"{arguments.model_name} version {registration.version}: "
        f"{'promoted to champion' if registration.promoted else 'not promoted'} ({registration.reason})"
    )


if __name__ == "__main__":
    skip_final_collection()  # the objects alive at exit are left to the OS: 1 s of a small run
    main()
