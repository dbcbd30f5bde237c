"""Training a time-series detector from a parquet series longer than memory: sampled segments, exact
statistics, the same detector as an in-memory fit where the series is short."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import seasonal_series

from vae_anomaly import (
    TimeSeriesVAEDetector,
    VAEAnomalyDetector,
    fit_parquet,
    fit_sample,
    sample_series_parquet,
)
from vae_anomaly.batch import SchemaError
from vae_anomaly.pipelines import timeseries_pipeline

FAST = dict(window=32, epochs=30, random_state=0)


def _series(n: int, seed: int = 0) -> pd.DataFrame:
    """Two noisy seasonal channels (mean 5, so scaling matters) on a 1-minute DatetimeIndex."""
    values = 5 + seasonal_series(n, n_channels=2, seed=seed)
    index = pd.date_range("2024-01-01", periods=n, freq="1min", name="time")
    return pd.DataFrame(values, columns=["a", "b"], index=index)


@pytest.fixture(scope="module")
def long_series(tmp_path_factory):
    """60,000 minutes in three daily-ish files, the timestamps as a column, row groups of 5,000."""
    frame = _series(60_000).reset_index()
    folder = tmp_path_factory.mktemp("series")
    for part, rows in enumerate(np.array_split(np.arange(len(frame)), 3)):
        table = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False)
        pq.write_table(table, folder / f"part-{part}.parquet", row_group_size=5000)
    return folder, frame


def test_segments_are_blocks_of_the_series_and_the_statistics_are_of_all_of_it(long_series):
    folder, frame = long_series
    sample = sample_series_parquet(
        folder, window=32, time_column="time", max_windows=2000, random_state=1, progress=False
    )
    assert sample.n_rows == 60_000 and sample.window == 32
    assert sample.segments == (256,) * 8  # 8 windows long; 8 x 225 windows <= 2,000
    starts = np.flatnonzero(frame["time"].isin(sample.frame["time"]))[::256]
    assert (starts % 256 == 0).all() and len(set(starts)) == 8
    expected = pd.concat([frame.iloc[start : start + 256] for start in starts], ignore_index=True)
    pd.testing.assert_frame_equal(sample.frame, expected[["a", "b", "time"]], check_dtype=False)
    values = frame[["a", "b"]].to_numpy()
    np.testing.assert_allclose(sample.statistics.mean, values.mean(axis=0), rtol=1e-13)
    np.testing.assert_allclose(sample.statistics.variance, values.var(axis=0), rtol=1e-10)


def test_the_sample_depends_on_the_seed_not_on_the_batch_size(long_series):
    folder, _ = long_series
    options = dict(window=32, time_column="time", max_windows=2000, progress=False)
    first = sample_series_parquet(folder, **options, random_state=1, batch_rows=4096)
    again = sample_series_parquet(folder, **options, random_state=1, batch_rows=999)
    other = sample_series_parquet(folder, **options, random_state=2)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert not first.frame["time"].equals(other.frame["time"])


def test_a_short_series_is_read_whole_and_fits_as_in_memory(tmp_path):
    frame = _series(3000)
    frame.to_parquet(tmp_path / "s.parquet")  # the DatetimeIndex is stored with the file
    detector = fit_parquet(TimeSeriesVAEDetector(**FAST), tmp_path / "s.parquet", progress=False)
    in_memory = TimeSeriesVAEDetector(**FAST).fit(frame)
    new = _series(1000, seed=5)
    np.testing.assert_allclose(detector.score_samples(new), in_memory.score_samples(new), rtol=1e-12)
    assert detector.sampling_interval_ == pd.Timedelta("1min")
    np.testing.assert_allclose(detector.mean_, frame.mean().to_numpy(), rtol=1e-12)


def test_a_detector_fitted_on_sampled_segments_finds_an_anomaly_and_stays_quiet_on_clean_data(long_series):
    folder, _ = long_series
    detector = fit_parquet(
        TimeSeriesVAEDetector(**{**FAST, "time_column": "time"}),
        folder,
        max_windows=8000,
        progress=False,
    )
    new = _series(3000, seed=7)
    assert (detector.predict(new.reset_index()) == -1).mean() < 0.03
    new.iloc[2000:2010, 0] += 3.0
    scores = detector.anomaly_score(new.reset_index())
    assert 1990 <= int(np.argmax(scores)) < 2020


def test_a_timeseries_pipeline_trains_on_segments_too(long_series):
    folder, _ = long_series
    model = fit_parquet(
        timeseries_pipeline(["a", "b"], time_column="time", **FAST), folder, max_windows=2000, progress=False
    )
    assert model[-1].n_features_in_ == 2 and model[-1].sampling_interval_ == pd.Timedelta("1min")


def test_a_series_sample_is_refused_for_a_table_detector(long_series):
    sample = sample_series_parquet(long_series[0], window=32, time_column="time", max_windows=500)
    with pytest.raises(ValueError, match="VAEAnomalyDetector takes rows, but a SeriesSample holds segments"):
        fit_sample(VAEAnomalyDetector(), sample)


def _write(frame: pd.DataFrame, path, row_group_size: int = 100) -> None:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=row_group_size)


def test_timestamps_out_of_order_are_named_by_file_and_row_even_across_batches(tmp_path):
    frame = _series(1000).reset_index()
    frame.loc[500, "time"] = frame.loc[499, "time"]  # row 500 is the first of a batch of 100
    _write(frame, tmp_path / "s.parquet")
    with pytest.raises(
        ValueError, match=r"s.parquet: column 'time' has duplicated timestamps, .* rows 499 and 500"
    ):
        sample_series_parquet(tmp_path / "s.parquet", window=32, time_column="time", batch_rows=100)


def test_files_out_of_order_are_refused_by_name(tmp_path):
    frame = _series(1000).reset_index()
    _write(frame.iloc[500:], tmp_path / "a.parquet")
    _write(frame.iloc[:500], tmp_path / "b.parquet")
    with pytest.raises(ValueError, match=r"b.parquet starts at 2024-01-01 00:00:00, not after .*a.parquet"):
        sample_series_parquet(tmp_path, window=32, time_column="time")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda f: f.assign(a=f["a"].where(f.index != 700, np.inf)),
            r"s.parquet: .*infinite .*'a'.* row 700",
        ),
        (lambda f: f.assign(a=f["a"].astype(str)), "column 'a' holds string values"),
        (
            lambda f: f.assign(time=f["time"].astype("int64")),
            "column 'time' holds numeric values .* expected timestamps",
        ),
        (lambda f: f.assign(time=f["time"].where(f.index != 3)), "column 'time' has 1 missing timestamp"),
        (lambda f: f.drop(columns="time"), "time_column='time' is not a column of the input"),
        (lambda f: f.iloc[:20], "The series has 20 timestamps to train on, but window=32 needs at least 32"),
    ],
)
def test_bad_series_are_refused_by_name(tmp_path, change, message):
    _write(change(_series(1000).reset_index()), tmp_path / "s.parquet")
    with pytest.raises((ValueError, SchemaError), match=message):
        fit_parquet(TimeSeriesVAEDetector(window=32, time_column="time"), tmp_path / "s.parquet")


def test_the_train_command_fits_a_series_that_the_score_command_scores(long_series, tmp_path, capsys):
    from vae_anomaly.cli import main

    folder, frame = long_series
    model_dir = tmp_path / "model"
    arguments = ["train", str(folder), str(model_dir), "--time-column", "time", "--max-windows", "2000"]
    assert main([*arguments, "--params", '{"window": 32, "epochs": 5}', "--no-progress"]) == 0
    assert "trained TimeSeriesVAEDetector on 2 columns" in capsys.readouterr().out
    detector = TimeSeriesVAEDetector.load(model_dir)
    np.testing.assert_allclose(detector.mean_, frame[["a", "b"]].mean().to_numpy(), rtol=1e-12)
    _write(frame.iloc[:2000], tmp_path / "new.parquet")
    assert main(["score", str(model_dir), str(tmp_path / "new.parquet"), str(tmp_path / "out")]) == 0
    scored = pd.read_parquet(tmp_path / "out" / "new.parquet")
    assert len(scored) == 2000 and scored["anomaly_score"].notna().all()


def test_the_holdout_is_the_series_last_timestamps_kept_whole_and_kept_out_of_the_statistics(long_series):
    folder, frame = long_series
    sample = sample_series_parquet(
        folder, window=32, time_column="time", max_windows=2000, holdout_rows=7000, batch_rows=4096
    )
    expected = frame.iloc[-7000:][["a", "b", "time"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(sample.holdout.reset_index(drop=True), expected, check_dtype=False)
    assert sample.frame["time"].max() < frame["time"].iloc[-7000]
    training = frame[["a", "b"]].to_numpy()[:-7000]
    np.testing.assert_allclose(sample.statistics.mean, training.mean(axis=0), rtol=1e-13)
    assert sample.statistics.n_rows == 53_000 and sample.n_rows == 60_000


def test_timestamps_past_2262_keep_their_unit(tmp_path):
    frame = _series(3000).reset_index()
    frame["time"] = pd.date_range("2300-01-01", periods=3000, freq="1min", unit="us")
    _write(frame, tmp_path / "s.parquet")
    detector = fit_parquet(
        TimeSeriesVAEDetector(**{**FAST, "epochs": 2, "time_column": "time"}), tmp_path / "s.parquet"
    )
    assert detector.sampling_interval_ == pd.Timedelta("1min")


def test_uneven_spacing_anywhere_in_the_series_is_reported_after_the_pass(tmp_path):
    from vae_anomaly import IrregularSamplingWarning

    frame = _series(20_000).reset_index().drop(index=range(15_000, 15_010))
    _write(frame, tmp_path / "s.parquet", row_group_size=4000)
    with pytest.warns(
        IrregularSamplingWarning,
        match=r"The series' timestamps are unevenly spaced: 1 of 19989 steps differ from the median "
        r"0 days 00:01:00 \(largest: 0 days 00:11:00 after 2024-01-11 09:59:00\)",
    ):
        sample_series_parquet(
            tmp_path / "s.parquet", window=32, time_column="time", max_windows=500, batch_rows=4096
        )
