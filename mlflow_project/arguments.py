"""Argument checks shared by the entry points: MLflow passes int and float parameters through unchecked,
so each value is parsed here and a bad one stops the run with a message that names it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vae_anomaly.cli import int_at_least

REPOSITORY_ROOT = Path(__file__).resolve().parent.parent


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def holdout_fraction(text: str) -> float:
    """A share of the data in [0, 0.9]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 0.9], got {text!r}") from None
    if not 0 <= value <= 0.9:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 0.9], got {value}")
    return value


def _auto_or(parse: Callable[[str], int], text: str) -> int | str:
    """'auto', or what ``parse`` makes of ``text``."""
    if text == "auto":
        return "auto"
    try:
        return parse(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a positive integer, got {text!r}") from None


def auto_or_positive_int(text: str) -> int | str:
    """'auto' or a positive integer (epochs, a window length, a sample's rows)."""
    return _auto_or(positive_int, text)


def contamination(text: str) -> float | str:
    """'auto' or a number in (0, 0.5]."""
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in (0, 0.5], got {text!r}") from None
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number in (0, 0.5], got {value}")
    return value


def column_list(text: str) -> list[str]:
    """Comma-separated column names; empty means none given."""
    return [name.strip() for name in text.split(",") if name.strip()]


def existing_path(text: str) -> Path:
    """A file or folder that exists."""
    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"{text} does not exist")
    return path


def read_table(path: Path, required: list[str]) -> pd.DataFrame:
    """Read a parquet file or folder; exit with a message if it has no rows or lacks a column."""
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: cannot read {path} as parquet: {error}") from None
    missing = [name for name in required if name not in table.columns]
    if missing:
        raise SystemExit(f"error: {path} has no column(s) {missing}; its columns are {list(table.columns)}")
    if table.empty:
        raise SystemExit(f"error: {path} has no rows")
    return table
