"""The ``vae-anomaly`` command: ``vae-anomaly score MODEL INPUT OUTPUT`` scores parquet files in batches;
``vae-anomaly train INPUT MODEL_DIR`` fits a detector on parquet data of any size and saves it."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

# The default is spelled here, not imported: the parser must not import pyarrow, torch or MLflow, so
# that --help and argument errors answer at once. test_cli checks it against the batch scorer's.
DEFAULT_BATCH_ROWS = 65_536


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type`` that accepts integers of at least ``minimum`` and names the bad value.

    Parameters
    ----------
    minimum : int

    Returns
    -------
    callable
        Parses a string to an int, or raises ``argparse.ArgumentTypeError``.
    """
    wanted = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {value}")
        return value

    return parse


def _column_list(text: str | None) -> list[str] | None:
    """Comma-separated column names as a list; None when the option was not given."""
    return None if text is None else [name.strip() for name in text.split(",") if name.strip()]


def _check_events_folder(events: str, output: str, series_model: bool) -> None:
    """Refuse ``--events`` for a model of independent rows, or a folder that overlaps ``output`` (an
    events file would replace a scored file of the same relative path), before anything is scored."""
    if not series_model:
        raise ValueError("--events needs a time-series model; this model scores independent rows.")
    events_folder, output_folder = Path(events).resolve(), Path(output).resolve()
    if events_folder == output_folder or output_folder in events_folder.parents:
        raise ValueError(f"--events {events} lies in the output folder {output}: choose a folder beside it.")
    if events_folder in output_folder.parents:
        raise ValueError(f"--events {events} holds the output folder {output}: choose a folder beside it.")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vae-anomaly", description="Anomaly scores from a VAE detector.")
    commands = parser.add_subparsers(dest="command", required=True)
    score = commands.add_parser(
        "score",
        help="score parquet files into parquet files of the same layout",
        description="Score a parquet file, folder or glob with a model, in bounded memory. Complete "
        "outputs are skipped on a rerun, so an interrupted job resumes where it stopped.",
    )
    score.add_argument(
        "model", help="saved model folder, .joblib file, or MLflow URI (models:/NAME@champion)"
    )
    score.add_argument("input", help="parquet file, folder (hive-partitioned or not) or glob")
    score.add_argument("output", help="output folder")
    score.add_argument(
        "--batch-rows",
        type=int_at_least(1),
        default=DEFAULT_BATCH_ROWS,
        help=f"rows per batch (default: {DEFAULT_BATCH_ROWS:,})",
    )
    columns = score.add_mutually_exclusive_group()
    columns.add_argument(
        "--keep-columns", help="comma-separated input columns to copy to the output (default: all)"
    )
    columns.add_argument(
        "--drop-columns",
        help="comma-separated input columns not to copy, e.g. a label column named is_anomaly",
    )
    score.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow a joblib/pickle model, or an MLflow model not logged by vae_anomaly.tracking "
        "(loading either runs code from it)",
    )
    score.add_argument(
        "--events",
        metavar="EVENTS",
        help="also write each series' anomaly events (one row per event) to this folder, at the "
        "input file's relative path (time-series models only)",
    )
    score.add_argument("--overwrite", action="store_true", help="rescore files whose output is complete")
    score.add_argument(
        "--device",
        help="device of the model's forward passes: auto (CUDA, then MPS, then CPU), cpu, cuda or cuda:N "
        "(default: the model's scoring_device, auto unless it was set); at auto or cpu a small input "
        "for a saved table detector is scored with numpy, which starts faster than torch",
    )
    _add_progress_options(score)
    _add_train_command(commands)
    return parser


def _add_progress_options(command: argparse.ArgumentParser) -> None:
    progress = command.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: only on a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show one")


def json_object(text: str) -> dict[str, Any]:
    """An argparse ``type``: a JSON object such as '{"epochs": 20}'.

    Parameters
    ----------
    text : str

    Returns
    -------
    dict
        Or raises ``argparse.ArgumentTypeError`` naming the bad text.
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _add_train_command(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="fit a detector on parquet data of any size and save it",
        description="Fit a VAEAnomalyDetector on a parquet file, folder or glob in bounded memory: one "
        "streaming pass gathers exact column statistics and a uniform sample of at most --max-rows rows, "
        "which the detector trains on (holding part out to set its threshold). Where a column is not "
        "numeric, the tabular pipeline (scaling, one-hot encoding, missing values skipped) is fitted "
        "instead. With --series (or --time-column) the input is one series in time order, and a "
        "TimeSeriesVAEDetector trains on segments of it drawn at random as it streams past (at most "
        "--max-windows windows). Columns, types and nulls are checked from the parquet metadata first. "
        "MODEL_DIR is a new folder, or a saved model, which is replaced once the new one is complete.",
    )
    train.add_argument("input", help="parquet file, folder (hive-partitioned or not) or glob")
    train.add_argument("model_dir", help="folder to save the model to")
    columns = train.add_mutually_exclusive_group()
    columns.add_argument("--columns", help="comma-separated columns to train on (default: all)")
    columns.add_argument("--drop-columns", help="comma-separated columns not to train on, e.g. is_anomaly")
    train.add_argument(
        "--params",
        type=json_object,
        default={},
        help='JSON object of detector parameters, e.g. \'{"epochs": 20, "contamination": 0.01}\'',
    )
    train.add_argument(
        "--max-rows", type=int_at_least(1), help="rows sampled at most (default: 262,144, fewer if wide)"
    )
    train.add_argument(
        "--series", action="store_true", help="the input is one series in time order (files in path order)"
    )
    train.add_argument("--time-column", help="the series' timestamp column (implies --series)")
    train.add_argument(
        "--max-windows",
        type=int_at_least(1),
        help="series: training windows sampled at most (default: 65,536, fewer if wide)",
    )
    train.add_argument(
        "--batch-rows",
        type=int_at_least(1),
        default=DEFAULT_BATCH_ROWS,
        help=f"rows per batch read (default: {DEFAULT_BATCH_ROWS:,})",
    )
    train.add_argument(
        "--random-state",
        type=int_at_least(0),
        default=0,
        help="seed of the sample and the detector (default: 0)",
    )
    _add_progress_options(train)


def _check_training_columns(names: Sequence[str]) -> None:
    """Refuse training columns named as the scored output's (``check_not_output_named``)."""
    from vae_anomaly.score_columns import check_not_output_named

    check_not_output_named(
        names,
        lambda clashes: (
            f"leave them out with --drop-columns {','.join(clashes)} or choose the columns with --columns"
        ),
    )


def _training_estimator(kinds: dict[str, str], params: dict[str, Any], arguments: argparse.Namespace) -> Any:
    """A TimeSeriesVAEDetector for a series; a VAEAnomalyDetector for numeric and boolean columns; else
    the tabular pipeline."""
    from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
    from vae_anomaly.parquet_pass import NUMERIC_KINDS
    from vae_anomaly.pipelines import tabular_pipeline

    if arguments.series or arguments.time_column is not None:
        return TimeSeriesVAEDetector(**{"time_column": arguments.time_column, **params})
    numeric = [name for name, kind in kinds.items() if kind in NUMERIC_KINDS]
    if len(numeric) == len(kinds):
        return VAEAnomalyDetector(**params)
    return tabular_pipeline(numeric, [name for name in kinds if name not in numeric], **params)


def _train(arguments: argparse.Namespace) -> int:
    """``vae-anomaly train``: 0 when the model is saved, 2 for input or a MODEL_DIR it cannot use."""
    from vae_anomaly.batch import SchemaError
    from vae_anomaly.model_folder import check_model_path
    from vae_anomaly.parquet_sample import column_kinds
    from vae_anomaly.parquet_training import fit_parquet

    try:
        check_model_path(arguments.model_dir)  # before the pass, which may take long
        columns, drop = _column_list(arguments.columns), _column_list(arguments.drop_columns) or []
        kinds = column_kinds(arguments.input, columns=columns, drop_columns=drop)
        _check_training_columns(list(kinds))
        params = {"random_state": arguments.random_state, **arguments.params}
        estimator = _training_estimator(kinds, params, arguments)
        started = time.perf_counter()
        model = fit_parquet(
            estimator,
            arguments.input,
            columns=columns,
            drop_columns=drop,
            max_rows="auto" if arguments.max_rows is None else arguments.max_rows,
            max_windows="auto" if arguments.max_windows is None else arguments.max_windows,
            batch_rows=arguments.batch_rows,
            progress=arguments.progress,
        )
        model.save(arguments.model_dir)
    except (SchemaError, ValueError, TypeError, FileNotFoundError, FileExistsError) as error:
        print(f"vae-anomaly train: error: {error}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(
        f"trained {type(model).__name__} on {model.n_features_in_} columns in {seconds:.1f} s; "
        f"saved to {arguments.model_dir}"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        ``train``: 0 when the model is saved; 2 for bad arguments, input it cannot train on, or a
        MODEL_DIR it cannot save to (checked before reading). ``score``: 0 when every file was
        scored (and with ``--events`` its events written) or already
        complete, 1 when some files failed, 2 for bad arguments, a model that cannot be loaded,
        input that does not fit the model, an output that overlaps the input (or ``--events`` the
        output), ``--events`` for a model of independent rows, or an output another job is writing
        into.
    """
    arguments = _parser().parse_args(argv)
    if arguments.command == "train":
        return _train(arguments)
    # Nothing here imports torch or scikit-learn: a small input for a saved table detector is scored
    # with numpy (batch.load_scoring_model), and the start-up is most of such a run.
    from vae_anomaly.batch import OutputBusyError, SchemaError, load_scoring_model, score_parquet
    from vae_anomaly.model_location import is_mlflow_uri

    if is_mlflow_uri(arguments.model):  # MLflow's store only for a URI; a local folder needs none
        from vae_anomaly.tracking.store import use_tracking_store

        use_tracking_store()  # models:/ URIs resolve in $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    try:
        model = load_scoring_model(
            arguments.model,
            trust_pickle=arguments.trust_pickle,
            device=arguments.device,
            input_path=None if arguments.events is not None else arguments.input,  # events: the detector's
        )
        if arguments.events is not None:
            _check_events_folder(arguments.events, arguments.output, model.whole_files)
        summary = score_parquet(
            model,
            arguments.input,
            arguments.output,
            batch_rows=arguments.batch_rows,
            keep_columns=_column_list(arguments.keep_columns),
            drop_columns=_column_list(arguments.drop_columns),
            overwrite=arguments.overwrite,
            progress=arguments.progress,
        )
        print(summary)
        if arguments.events is not None:
            from vae_anomaly.batch import write_events

            events = write_events(
                model,
                arguments.input,
                arguments.events,
                overwrite=arguments.overwrite,
                scores_from=summary.outputs,  # the files just scored: their scores, not a second pass
            )
            print(events)
            return 1 if summary.failed or events.failed else 0
    except (SchemaError, ValueError, FileNotFoundError, OutputBusyError) as error:
        print(f"vae-anomaly score: error: {error}", file=sys.stderr)
        return 2
    return 1 if summary.failed else 0


def skip_final_collection() -> None:
    """Leave the objects still alive when this process exits to the operating system.

    Python's last garbage collections at exit traverse every object MLflow, pandas and torch made:
    0.8 s of a 3 s ``vae-anomaly score models:/...`` run, 1 s of the MLflow Project's ``score``. Call
    it first thing in a program (not in a library or a long-lived process): ``gc.freeze`` then runs
    as the last exit handler, after every other one (MLflow's, logging's, ``weakref.finalize``), and
    what is skipped is the finalizers of objects alive at exit, which Python does not promise to
    run. Files a program writes must be closed before it ends, as ours are.
    """
    atexit.register(gc.freeze)  # handlers run last in, first out: registered first, it runs last


def run() -> NoReturn:
    """The ``vae-anomaly`` program: ``main`` on the command line's arguments, exiting with its status,
    its objects left to the operating system at exit (:func:`skip_final_collection`)."""
    skip_final_collection()
    sys.exit(main())


if __name__ == "__main__":
    run()
