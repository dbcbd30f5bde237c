"""vae-anomaly score --events and write_events: a series' events per file, exactly once, safely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import seasonal_series

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector
from vae_anomaly.batch import score_parquet, write_events
from vae_anomaly.bundle import save_bundle
from vae_anomaly.cli import main


def _series(n: int = 3000, spike: int | None = None) -> pd.DataFrame:
    values = seasonal_series(n)
    if spike is not None:
        values[spike] += 4.0
    times = pd.date_range("2024-01-01", periods=n, freq="5min")
    return pd.DataFrame({"timestamp": times, "value": values})


@pytest.fixture(scope="module")
def detector() -> TimeSeriesVAEDetector:
    model = TimeSeriesVAEDetector(window=32, epochs=60, time_column="timestamp", random_state=0)
    return model.fit(_series().iloc[:2000])


@pytest.fixture(scope="module")
def model_folder(detector, tmp_path_factory) -> Path:
    return save_bundle(detector, tmp_path_factory.mktemp("model") / "bundle")


def test_cli_writes_each_files_events_once_and_redoes_a_changed_file(
    detector, model_folder, tmp_path, capsys
):
    inputs = tmp_path / "in"
    inputs.mkdir()
    first, second = _series(spike=2500), _series(spike=2200)
    first.to_parquet(inputs / "a.parquet")
    second.to_parquet(inputs / "b.parquet")
    command = [
        "score",
        str(model_folder),
        str(inputs),
        str(tmp_path / "out"),
        "--events",
        str(tmp_path / "ev"),
    ]
    assert main([*command, "--no-progress"]) == 0
    assert "events of 2 files (2 written, 0 already complete, 0 failed)" in capsys.readouterr().out
    for name, frame, spike in (("a", first, 2500), ("b", second, 2200)):
        events = pd.read_parquet(tmp_path / "ev" / f"{name}.parquet")
        expected = detector.events(frame)
        pd.testing.assert_frame_equal(events, expected, check_dtype=False)
        at = frame["timestamp"].iloc[spike]
        assert ((events["core_start"] <= at) & (events["core_end"] >= at)).sum() == 1
        assert (tmp_path / "out" / f"{name}.parquet").is_file()  # the scores, beside
    assert main([*command, "--no-progress"]) == 0
    assert "(0 written, 2 already complete, 0 failed)" in capsys.readouterr().out
    _series(spike=2700).to_parquet(inputs / "b.parquet")
    assert main([*command, "--no-progress"]) == 0
    assert "(1 written, 1 already complete, 0 failed)" in capsys.readouterr().out
    at = _series()["timestamp"].iloc[2700]
    events = pd.read_parquet(tmp_path / "ev" / "b.parquet")
    assert ((events["core_start"] <= at) & (events["core_end"] >= at)).sum() == 1


def test_events_come_from_the_scores_a_run_just_wrote(detector, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    series = _series(spike=2500)
    series.to_parquet(inputs / "a.parquet")
    summary = score_parquet(detector, inputs, tmp_path / "out", progress=False)
    [(source, scored)] = summary.outputs.items()
    assert Path(source).name == "a.parquet" and Path(scored) == tmp_path / "out" / "a.parquet"
    write_events(detector, inputs, tmp_path / "ev", scores_from=summary.outputs)
    events = pd.read_parquet(tmp_path / "ev" / "a.parquet")
    assert len(events) >= 1
    pd.testing.assert_frame_equal(events, detector.events(series), check_dtype=False)
    quiet = tmp_path / "quiet.parquet"  # scores that flag nothing: the file given decides, not a rescore
    pd.DataFrame({"anomaly_score": np.zeros(len(series))}).to_parquet(quiet)
    write_events(detector, inputs, tmp_path / "ev2", scores_from={source: quiet})
    assert pd.read_parquet(tmp_path / "ev2" / "a.parquet").empty


def test_events_need_a_series_model_and_a_folder_beside_the_output(
    planted_frame, model_folder, tmp_path, capsys
):
    planted_frame.to_parquet(tmp_path / "rows.parquet")
    table_model = save_bundle(VAEAnomalyDetector(epochs=2, random_state=0).fit(planted_frame), tmp_path / "t")
    arguments = ["score", str(table_model), str(tmp_path / "rows.parquet"), str(tmp_path / "out")]
    assert main([*arguments, "--events", str(tmp_path / "ev")]) == 2
    assert "--events needs a time-series model" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything was scored
    _series().to_parquet(tmp_path / "series.parquet")
    arguments = ["score", str(model_folder), str(tmp_path / "series.parquet"), str(tmp_path / "out")]
    assert main([*arguments, "--events", str(tmp_path / "out")]) == 2
    assert "lies in the output folder" in capsys.readouterr().err
    assert main([*arguments, "--events", str(tmp_path)]) == 2
    assert "holds the output folder" in capsys.readouterr().err


def test_a_planted_link_is_refused_and_a_short_series_is_named(detector, tmp_path):
    inputs, events = tmp_path / "in", tmp_path / "ev"
    inputs.mkdir()
    events.mkdir()
    _series(spike=2500).to_parquet(inputs / "a.parquet")
    _series(20).to_parquet(inputs / "short.parquet")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    (events / "a.parquet").symlink_to(precious)
    with pytest.raises(ValueError, match=r"a\.parquet is a symbolic link .* it never writes through a link"):
        write_events(detector, inputs, events)
    assert precious.read_text() == "keep me" and (events / "a.parquet").is_symlink()
    (events / "a.parquet").unlink()
    summary = write_events(detector, inputs, events)
    assert (summary.written_files, summary.events) == (1, len(detector.events(_series(spike=2500))))
    assert list(summary.failed) == [str(inputs / "short.parquet")]
    assert "window=32 needs at least 32" in summary.failed[str(inputs / "short.parquet")]
    assert sorted(path.name for path in events.rglob("*")) == ["a.parquet"]  # no partial left
