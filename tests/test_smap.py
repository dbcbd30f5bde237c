"""Detection quality on labelled SMAP series from ../shared/data (slow; skipped when the data is absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.metrics import vus_pr

MULTIVARIATE = Path(__file__).resolve().parents[2] / "shared" / "data" / "multivariate"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not MULTIVARIATE.is_dir(), reason=f"{MULTIVARIATE} is absent"),
]


# A telemetry value and 24 command flags; fit on the "train" rows, VUS-PR on the "test" rows. With the
# flags standardized these scored 0.18, 0.18 and 0.61; benchmarks/RESULTS.md measured 0.97-0.99 over
# seeds 0-2 with them kept at scale 1 (KNN on windows: 0.07, 0.08, 0.53).
@pytest.mark.parametrize("series", ["smap_E-11", "smap_E-10", "smap_D-2"])
def test_rare_command_flags_do_not_hide_the_telemetry_anomalies(series):
    frame = pd.read_parquet(MULTIVARIATE / f"{series}.parquet")
    channels = frame.drop(columns=["timestamp", "label", "split"])
    train = (frame["split"] == "train").to_numpy()
    detector = TimeSeriesVAEDetector(random_state=0).fit(channels[train])
    assert detector.binary_features_.sum() > 10
    scores = detector.anomaly_score(channels)
    assert vus_pr(frame["label"].to_numpy()[~train], scores[~train]) > 0.9
