"""The benchmark scripts run end to end on tiny data shaped like ../shared/data, with every cheap method.

They are not timed here: this catches a script that a change of the package broke (as window="auto"
once broke the window baselines) before a benchmark run of many minutes does.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUICK_VAE = '{"epochs": 2}'


def _run(script: str, *arguments: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments, "--vae-params", QUICK_VAE],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _series(n_rows: int, n_channels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n_rows)[:, None]
    values = np.sin(2 * np.pi * t / 40 + np.arange(n_channels)) + 0.1 * rng.normal(size=(n_rows, n_channels))
    labels = np.zeros(n_rows, dtype=int)
    labels[-150:-130] = 1
    values[-150:-130] += 3.0
    return values, labels


def test_the_multivariate_benchmark_runs(tmp_path):
    for name, seed in (("smap_A-1", 0), ("omi-1", 1), ("skab_valve1_0", 2)):
        values, labels = _series(700, 3, seed)
        frame = pd.DataFrame(values, columns=["a", "b", "c"])
        frame.insert(0, "timestamp", pd.date_range("2026-01-01", periods=len(frame), freq="min"))
        frame["label"] = labels
        frame["split"] = np.where(np.arange(len(frame)) < 300, "train", "test")
        frame.to_parquet(tmp_path / f"{name}.parquet")
    methods = "vae,pca_point,pca_window,knn_window,iforest_window,iforest_point"
    output = _run("multivariate.py", "--data", str(tmp_path), "--methods", methods)
    assert output.count("overall") >= 6 and "## even half" in output


def test_the_nab_benchmark_runs(tmp_path):
    values, labels = _series(1000, 1, 0)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=1000, freq="5min")})
    frame["value"], frame["label"] = values[:, 0], labels
    frame.to_parquet(tmp_path / "toy.parquet")
    methods = "vae,sub_pca,knn_window,iforest,rolling_zscore"
    output = _run("timeseries.py", "--data", str(tmp_path), "--methods", methods, "--speed-points", "0")
    assert all(f"| {method}" in output for method in methods.split(","))


def _toy_npz(folder: Path, n_rows: int, n_features: int) -> None:
    """An ADBench-shaped set: ``X`` and ``y``, its first 5% of rows shifted off the rest."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_rows, n_features))
    y = np.zeros(n_rows, dtype=int)
    y[: n_rows // 20] = 1
    x[: n_rows // 20] += 4.0
    np.savez(folder / "1_toy.npz", X=x, y=y)


def test_the_tabular_benchmark_runs(tmp_path):
    _toy_npz(tmp_path, 400, 5)
    output = _run("tabular.py", "--data", str(tmp_path), "--methods", "vae,iforest,ecod")
    assert "## unsupervised" in output and "## novelty" in output


def test_the_tabular_benchmark_runs_the_check_tables_without_data(tmp_path):
    output = _run("tabular.py", "--data", str(tmp_path / "absent"), "--pool", "check", "--methods", "ecod")
    assert "### check half (18 sets)" in output and "| wine:1 " in output


def test_the_check_tables_make_each_class_rare_in_turn(monkeypatch):
    tasks = _benchmark_module("check_tables", monkeypatch).check_tables(0)
    assert [name for name, _, _ in tasks][:5] == [
        "breast_cancer:0",
        "breast_cancer:1",
        *(f"digits:{d}" for d in range(3)),
    ]
    assert len(tasks) == 2 + 10 + 3 + 3
    for name, x, y in tasks:
        share = y.mean()
        assert np.isfinite(x).all() and len(x) == len(y) and 0.04 < share < 0.06, (name, share)
    wine = {name: (x, y) for name, x, y in tasks}["wine:1"]
    assert len(wine[0]) == 107 + 6  # classes 0 and 2 normal, 6 rows of class 1


def test_the_missing_values_benchmark_runs(tmp_path):
    _toy_npz(tmp_path, 300, 4)
    (tmp_path / "multivariate").mkdir()
    values, labels = _series(1500, 3, seed=0)
    frame = pd.DataFrame(values, columns=["a", "b", "c"]).assign(timestamp=0, label=labels, split="train")
    frame.to_parquet(tmp_path / "multivariate" / "toy.parquet")
    cases = (
        "--cases",
        "correlated,tables,series,multivariate",
        "--multivariate-data",
        str(tmp_path / "multivariate"),
    )
    output = _run("missing.py", "--data", str(tmp_path), "--seeds", "0", *cases)
    for case in ("correlated, d blanked", "1_toy, 20%", "series, 4-channel sine", "multivariate, toy"):
        assert case in output


def test_the_false_alarm_benchmark_runs(tmp_path):
    for folder in ("adbench", "multivariate", "nab/toy"):
        (tmp_path / folder).mkdir(parents=True)
    _toy_npz(tmp_path / "adbench", 300, 4)
    values, labels = _series(1500, 3, seed=0)
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    frame["timestamp"] = pd.date_range("2024-01-01", periods=1500, freq="min")
    frame["label"], frame["split"] = labels, np.where(np.arange(1500) < 1000, "train", "test")
    frame.to_parquet(tmp_path / "multivariate" / "toy.parquet")
    nab = frame[["timestamp"]].assign(value=values[:, 0], label=labels)
    nab.to_parquet(tmp_path / "nab" / "toy" / "toy.parquet")
    output = _run("false_alarms.py", "--data", str(tmp_path), "--every", "1", "--methods", "vae,knn_window")
    rows = [line.split() for line in output.split("over_0.03")[1].splitlines()]
    # One case each of the toy data and the three synthetic series, each flagged fraction in [0, 1];
    # the window baseline on the series only.
    for method, group, n_cases in [("vae", "tables", 1)] + [
        (method, group, n_cases)
        for method in ("vae", "knn_window")
        for group, n_cases in (("synthetic", 3), ("multivariate", 1), ("nab", 1))
    ]:
        [row] = [row for row in rows if row[:2] == [method, group]]
        assert int(row[2]) == n_cases and 0 <= float(row[3]) <= float(row[4]) <= 1
    assert not [row for row in rows if row[:2] == ["knn_window", "tables"]]


@pytest.mark.slow  # two fresh interpreters importing torch and fitting: about 15 s
def test_the_event_benchmarks_run(tmp_path):
    (tmp_path / "nab" / "toy").mkdir(parents=True)
    (tmp_path / "multivariate").mkdir()
    values, labels = _series(1000, 1, 0)
    frame = pd.DataFrame({"timestamp": pd.date_range("2026-01-01", periods=1000, freq="5min")})
    frame["value"], frame["label"] = values[:, 0], labels
    frame.to_parquet(tmp_path / "nab" / "toy" / "toy.parquet")
    values, labels = _series(700, 3, 1)
    series = pd.DataFrame(values, columns=["a", "b", "c"])
    series.insert(0, "timestamp", pd.date_range("2026-01-01", periods=len(series), freq="min"))
    series["label"], series["split"] = labels, np.where(np.arange(len(series)) < 300, "train", "test")
    series.to_parquet(tmp_path / "multivariate" / "skab_valve1_0.parquet")
    output = _run("event_f1.py", "--data", str(tmp_path))
    for dataset, method in (("NAB", "vae"), ("NAB", "knn_window"), ("SKAB", "iforest_window")):
        assert f"('{dataset}', 'even', '{method}')" in output
    # Flagging every measured timestamp finds every event with one alarm, and flags all that is normal.
    [row] = [line for line in output.splitlines() if line.startswith("| ('NAB', 'even', 'every_timestamp')")]
    cells = [float(cell) for cell in row.split("|")[2:-1]]
    names = ["event_precision", "event_recall", "event_f1", "composite_f1", "range_f1", "flagged_normal"]
    means = dict(zip([*names, "events"], cells, strict=True))
    assert means["event_f1"] == means["flagged_normal"] == means["events"] == 1.0 > means["composite_f1"]
    assert "composite F1, mean per data set and half:" in output
    output = _run("events.py", "--seeds", "0", "--kinds", "spike,two_spikes", "--channels", "1")
    assert "anomalies 3: one event" in output


@pytest.mark.slow  # 22 fresh interpreters, three fits, an MLflow registration and server: about 70 s
def test_the_startup_benchmark_runs():
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "startup.py"), "--repeats", "1", "--rows", "1000"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| score folder" in done.stdout and "| score models:/" in done.stdout
    assert "| 1,000 rows" in done.stdout and "| score models:/ via server" in done.stdout
    assert "| score series folder" in done.stdout and "| score Pipeline folder" in done.stdout
    assert done.stdout.count("| ... with torch") == 6


@pytest.mark.slow  # four fresh interpreters, two fits and an MLflow registration: about 40 s
def test_the_fit_parquet_benchmark_runs(tmp_path):
    output = _run("fit_parquet.py", "--data", str(tmp_path), "--rows", "300000")
    assert "of read" in output and "fit_parquet (pass + fit)" in output and "MLproject train" in output
    assert "difference" in output and (tmp_path / "train" / "part-0000.parquet").is_file()
    assert "each the second of two passes" in output


@pytest.mark.slow  # two fresh interpreters and three series fits: about 30 s
def test_the_fit_series_parquet_benchmark_runs_from_storage(tmp_path):
    output = _run("fit_series_parquet.py", "--data", str(tmp_path), "--rows", "300000", "--cold")
    assert "fit_parquet (pass + fit)" in output and "in memory, the first minutes, read whole" in output
    assert "each from storage (--cold)" in output
    assert (tmp_path / "train" / "part-0000.parquet").is_file()


@pytest.mark.slow  # six fresh interpreters importing torch: 28 s, which the default run cannot spare
@pytest.mark.parametrize(
    ("script", "source"),
    [
        ("tabular.py", "github.com/Minqi824/ADBench"),
        ("timeseries.py", "github.com/numenta/NAB"),
        ("multivariate.py", "github.com/waico/SKAB"),
        ("missing.py", "ADBench's Classical sets"),
        ("false_alarms.py", "see the docstring"),
        ("event_f1.py", "github.com/numenta/NAB"),
    ],
)
def test_a_benchmark_without_its_data_says_where_the_data_comes_from(tmp_path, script, source):
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--data", str(tmp_path / "absent")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert source in done.stderr and str(tmp_path / "absent") in done.stderr


def _benchmark_module(name: str, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    return importlib.import_module(name)


def test_the_check_series_are_fixed_by_the_seed_and_as_described(monkeypatch):
    false_alarms = _benchmark_module("false_alarms", monkeypatch)
    cases = false_alarms.kinds(0)
    widths = {name: values.shape[1] for _, name, values, _ in cases}
    assert len(cases) == 8 and widths["on-off machine"] == 2 and widths["5 sensors, scales"] == 5
    assert sum(widths.values()) == 6 + 2 + 5  # six of one channel
    for group, _, values, split in cases:
        assert group == "kinds" and split == 3000 and len(values) == 6000 and np.isfinite(values).all()
    again, other = false_alarms.check_series(0), false_alarms.check_series(1)
    for _, name, values, _ in cases:
        np.testing.assert_array_equal(values, again[name])
        assert not np.array_equal(values, other[name])
    machine = again["on-off machine"][:, 0] > 5
    runs = np.diff(np.flatnonzero(np.diff(machine)))  # the states' durations, first and last left out
    assert runs.min() >= 20 and runs.max() < 80


def test_benchmark_data_is_never_written_through_a_planted_link(tmp_path, monkeypatch):
    fit_parquet = _benchmark_module("fit_parquet", monkeypatch)
    root, elsewhere, precious = tmp_path / "data", tmp_path / "elsewhere", tmp_path / "precious"
    root.mkdir()
    elsewhere.mkdir()
    precious.write_text("keep")
    (root / ".train.partial").symlink_to(elsewhere)  # the scratch name the benchmark once used
    (root / "test.parquet").symlink_to(precious)  # a link where the test file goes: read, never written
    fit_parquet.make_data(root, 1000)
    assert list(elsewhere.iterdir()) == [] and precious.read_text() == "keep"
    assert pq.read_table(root / "train").num_rows == 1000
    assert sorted(path.name for path in root.iterdir()) == [".train.partial", "test.parquet", "train"]


def test_benchmark_data_replaces_nothing_that_appears_while_it_is_written(tmp_path, monkeypatch):
    write_once = _benchmark_module("data_sources", monkeypatch).write_once
    target = tmp_path / "test.parquet"

    def racing(path):
        path.write_text("ours")
        target.write_text("theirs")

    with pytest.raises(FileExistsError):
        write_once(target, racing)
    assert target.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["test.parquet"]
    (tmp_path / "train").symlink_to(tmp_path / "nowhere")
    with pytest.raises(SystemExit, match="train is a link to nothing"):
        write_once(tmp_path / "train", racing)
