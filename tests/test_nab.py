"""Detection quality on labelled NAB series from ../shared/data (slow; skipped when the data is absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.metrics import vus_pr

NAB = Path(__file__).resolve().parents[2] / "shared" / "data" / "nab"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not NAB.is_dir(), reason=f"{NAB} is absent"),
]


# Defaults, fit on the first 30%, VUS-PR on the rest; benchmarks/RESULTS.md measured 0.923, 0.802, 0.846.
@pytest.mark.parametrize(
    ("series", "minimum"),
    [
        ("artificialWithAnomaly/art_daily_jumpsup", 0.85),
        ("realKnownCause/nyc_taxi", 0.7),
        ("realAWSCloudwatch/ec2_cpu_utilization_825cc2", 0.75),
    ],
)
def test_default_detector_finds_nab_anomalies(series, minimum):
    frame = pd.read_parquet(NAB / f"{series}.parquet")
    values, labels = frame[["value"]], frame["label"].to_numpy()
    n_train = int(0.3 * len(frame))
    scores = TimeSeriesVAEDetector(random_state=0).fit(values.iloc[:n_train]).anomaly_score(values)
    assert vus_pr(labels[n_train:], scores[n_train:]) > minimum
