"""The ``vae-anomaly`` command: ``vae-anomaly score MODEL INPUT OUTPUT`` scores parquet files in batches."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

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
        "(default: the model's scoring_device, auto unless it was set)",
    )
    progress = score.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: only on a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show one")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    int
        0 when every file was scored (and with ``--events`` its events written) or already
        complete, 1 when some files failed, 2 for bad arguments, a model that cannot be loaded,
        input that does not fit the model, an output that overlaps the input (or ``--events`` the
        output), ``--events`` for a model of independent rows, or an output another job is writing
        into.
    """
    arguments = _parser().parse_args(argv)
    from vae_anomaly.batch import (
        OutputBusyError,
        SchemaError,
        load_scoring_model,
        score_parquet,
        write_events,
    )
    from vae_anomaly.composition import model_parts
    from vae_anomaly.devices import resolve_device
    from vae_anomaly.loading import is_mlflow_source

    if is_mlflow_source(arguments.model):  # MLflow is imported only when the model comes from it
        from vae_anomaly.tracking.store import use_tracking_store

        use_tracking_store()  # models:/ URIs resolve in $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db
    try:
        model = load_scoring_model(arguments.model, trust_pickle=arguments.trust_pickle)
        if arguments.events is not None:
            _check_events_folder(arguments.events, arguments.output, model.whole_files)
        if arguments.device is not None:
            resolve_device(arguments.device)  # a device torch lacks fails here, not in every file
            model_parts(model.model).detector.set_params(scoring_device=arguments.device)
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
            events = write_events(model, arguments.input, arguments.events, overwrite=arguments.overwrite)
            print(events)
            return 1 if summary.failed or events.failed else 0
    except (SchemaError, ValueError, FileNotFoundError, OutputBusyError) as error:
        print(f"vae-anomaly score: error: {error}", file=sys.stderr)
        return 2
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
