"""Bad input raises a ValueError that names the problem; odd but valid input trains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector, value_checks
from vae_anomaly.value_checks import has_no_nan, surely_finite


@pytest.fixture(scope="module")
def fitted_on_frame(planted_frame) -> VAEAnomalyDetector:
    return VAEAnomalyDetector(epochs=3, random_state=0).fit(planted_frame)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_column_and_row(planted_frame, bad):
    frame = planted_frame.copy()
    frame.loc[7, "f3"] = bad
    kind = "NaN" if np.isnan(bad) else "inf"
    with pytest.raises(ValueError, match=rf"column 'f3': {kind} in 1 row\(s\), first at row 7"):
        VAEAnomalyDetector(epochs=1).fit(frame)


def test_non_finite_values_at_scoring_are_reported(fitted_on_frame, planted_frame):
    frame = planted_frame.copy()
    frame.loc[[3, 9], "f0"] = np.nan
    with pytest.raises(ValueError, match=r"column 'f0': NaN in 2 row\(s\), first at row 3"):
        fitted_on_frame.score_samples(frame)


def test_non_finite_values_in_arrays_name_the_column_index(planted):
    x = planted[0].copy()
    x[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"column 2: NaN in 1 row\(s\), first at row 4"):
        VAEAnomalyDetector(epochs=1).fit(x)


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="0 sample"):
        VAEAnomalyDetector(epochs=1).fit(np.empty((0, 3)))


def test_wrong_feature_count_is_refused(planted):
    detector = VAEAnomalyDetector(epochs=1).fit(planted[0])
    with pytest.raises(ValueError, match="X has 5 features, but VAEAnomalyDetector is expecting 8"):
        detector.predict(planted[0][:, :5])


def test_non_numeric_columns_are_named(planted_frame):
    frame = planted_frame.assign(city="Oslo", day=pd.Timestamp("2026-01-01"))
    with pytest.raises(ValueError, match=r"non-numeric columns: 'city' \(.*\), 'day' \(datetime64"):
        VAEAnomalyDetector(epochs=1).fit(frame)


def test_columns_named_as_the_scores_are_refused_in_training_and_scored_once_left_out(planted_frame):
    labelled = planted_frame.assign(is_anomaly=False, contribution_f0=0.0)
    with pytest.raises(
        ValueError,
        match=r"column\(s\) \['is_anomaly', 'contribution_f0'\] are named as the scores.*"
        r"data\.drop\(columns=\['is_anomaly', 'contribution_f0'\]\)",
    ):
        VAEAnomalyDetector(epochs=1).fit(labelled)
    series = pd.DataFrame({"load": np.sin(np.arange(300) / 5.0), "anomaly_score": 0.0})
    with pytest.raises(ValueError, match=r"\['anomaly_score'\] are named as the scores"):
        TimeSeriesVAEDetector(epochs=1, window=8).fit(series)
    detector = VAEAnomalyDetector(epochs=1, random_state=0).fit(
        labelled.drop(columns=["is_anomaly", "contribution_f0"])
    )
    assert detector.feature_names_in_.tolist() == planted_frame.columns.tolist()
    assert detector.predict(planted_frame).shape == (len(planted_frame),)  # scoring input is not refused


def test_missing_columns_are_named(fitted_on_frame, planted_frame):
    with pytest.raises(ValueError, match=r"Feature names seen at fit time, yet now missing:\n- f2"):
        fitted_on_frame.predict(planted_frame.drop(columns="f2"))


def test_extra_columns_are_named(fitted_on_frame, planted_frame):
    with pytest.raises(ValueError, match=r"Feature names unseen at fit time:\n- extra"):
        fitted_on_frame.predict(planted_frame.assign(extra=1.0))


def test_reordered_columns_are_refused(fitted_on_frame, planted_frame):
    with pytest.raises(ValueError, match="must be in the same order"):
        fitted_on_frame.predict(planted_frame[planted_frame.columns[::-1]])


def test_reordered_columns_are_named(fitted_on_frame, planted_frame):
    swapped = planted_frame[["f1", "f0", *planted_frame.columns[2:]]]
    with pytest.raises(ValueError, match=r"got \['f1', 'f0', 'f2'.*\['f1', 'f0'\] moved\)"):
        fitted_on_frame.predict(swapped)


def test_constant_column_gives_finite_scores(planted):
    x = planted[0].copy()
    x[:, 1] = 3.0
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(x)
    assert np.isfinite(detector.score_samples(x)).all()
    assert np.isfinite(detector.explain(x).to_numpy()).all()


@pytest.mark.parametrize("n_rows", [1, 2, 50])
def test_fewer_rows_than_batch_size_train(planted, n_rows):
    x = planted[0][:n_rows]
    detector = VAEAnomalyDetector(batch_size=128, epochs=5, random_state=0).fit(x)
    assert detector.predict(x).shape == (n_rows,)
    assert np.isfinite(detector.score_samples(x)).all()


@pytest.mark.parametrize("layout", ["C", "F", "reversed"])
def test_the_finiteness_pass_finds_nan_and_inf_in_a_large_array_of_any_layout(layout):
    n_rows = value_checks.THREADED_SUM_MIN_VALUES // 4 + 1
    x = np.zeros((n_rows, 4), dtype=np.float32, order="F" if layout == "F" else "C")
    if layout == "reversed":
        x = x[::-1]  # negative strides: torch cannot view it, numpy sums it
    assert surely_finite(x)
    for bad in (np.nan, np.inf, -np.inf):
        x[-3, 2] = bad
        assert not surely_finite(x)
        x[-3, 2] = 0.0
    big = np.full_like(x, np.finfo(np.float32).max)  # finite, but the sum overflows: check exactly
    assert not surely_finite(big) and has_no_nan(big)


def _as_decimals(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """``frame`` with ``column`` as an Arrow decimal column, its NaN as nulls."""
    import pyarrow as pa

    values = pa.array(frame[column].round(4), from_pandas=True).cast(pa.decimal128(12, 4))
    return frame.assign(**{column: pd.Series(values, dtype=pd.ArrowDtype(values.type), index=frame.index)})


def test_decimal_columns_with_nulls_are_read_as_numbers(planted_frame):
    frame = planted_frame.round(4)
    frame.loc[[2, 5], "f1"] = np.nan
    decimals = _as_decimals(frame, "f1")
    params = dict(missing="skip", epochs=2, random_state=0)
    fitted = VAEAnomalyDetector(**params).fit(decimals)
    np.testing.assert_array_equal(
        fitted.score_samples(decimals), VAEAnomalyDetector(**params).fit(frame).score_samples(frame)
    )
    with pytest.raises(ValueError, match=r"column 'f1': NaN in 2 row\(s\), first at row 2"):
        VAEAnomalyDetector(epochs=1).fit(decimals)


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (dict(scoring_device="cuda:7"), "scoring_device|device='cuda:7'"),
        (dict(device="tpu"), "device='tpu' is not a device torch knows"),
        (dict(hidden_dims=(8, 0)), "hidden_dims must be positive integers"),
    ],
    ids=["scoring_device", "device", "hidden_dims"],
)
def test_a_bad_setting_is_refused_before_training_starts(planted, setting, message, recorder):
    with pytest.raises(ValueError, match=message):
        VAEAnomalyDetector(epochs=1, **setting).fit(planted[0])
    assert not recorder.events, "training started before the setting was checked"
