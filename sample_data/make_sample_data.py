"""Write the small labelled parquet files in sample_data/ (deterministic: seed 0).

    python sample_data/make_sample_data.py

- tabular.parquet: 4,000 server readings, numeric and categorical columns with some nulls; 80 planted
  anomalies (is_anomaly = 1): latency that the load does not explain, memory unlike the instance type,
  and request bursts.
- timeseries_univariate.parquet: 28 days of one metric every 5 minutes (timestamp, value, label) with
  daily and weekly seasonality, a spike, a level shift, a change of frequency and a short gap (NaN).
- timeseries_multivariate.parquet: the same 28 days of five related channels (timestamp, cpu, memory,
  latency, requests, errors, label); anomalies touch one channel at a time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 0
N_ROWS = 4000
N_TABULAR_ANOMALIES = 80
PERIODS = 28 * 288  # 28 days at 5-minute sampling
DAY = 288


def tabular(rng: np.random.Generator) -> pd.DataFrame:
    """Server readings whose columns depend on each other, with planted anomalies and nulls."""
    region = rng.choice(["eu-west", "us-east", "us-west", "ap-south"], size=N_ROWS, p=[0.4, 0.3, 0.2, 0.1])
    instance = rng.choice(["small", "medium", "large"], size=N_ROWS, p=[0.5, 0.3, 0.2])
    memory_by_instance = {"small": 4.0, "medium": 8.0, "large": 16.0}
    requests = rng.gamma(4.0, 50.0, size=N_ROWS)
    cpu = np.clip(10 + requests / 4 + rng.normal(0, 5, N_ROWS), 0, 100)
    memory = np.array([memory_by_instance[i] for i in instance]) * rng.uniform(0.5, 0.9, N_ROWS)
    latency = 20 + 0.8 * cpu + rng.normal(0, 4, N_ROWS)
    label = np.zeros(N_ROWS, dtype=np.int8)
    anomalies = rng.choice(N_ROWS, size=N_TABULAR_ANOMALIES, replace=False)
    kinds = np.array_split(anomalies, 3)
    latency[kinds[0]] += rng.uniform(60, 120, len(kinds[0]))  # slow without load
    memory[kinds[1]] = np.array([memory_by_instance[i] for i in instance[kinds[1]]]) * rng.uniform(
        1.3, 1.8, len(kinds[1])
    )  # more memory than the instance has
    requests[kinds[2]] *= rng.uniform(4, 6, len(kinds[2]))  # a burst the CPU does not show
    label[anomalies] = 1
    frame = pd.DataFrame(
        {
            "region": region,
            "instance_type": instance,
            "requests_per_s": requests.round(1),
            "cpu_pct": cpu.round(1),
            "memory_gb": memory.round(2),
            "latency_ms": latency.round(1),
            "is_anomaly": label,
        }
    )
    frame.loc[rng.choice(N_ROWS, 60, replace=False), "memory_gb"] = np.nan
    frame.loc[rng.choice(N_ROWS, 40, replace=False), "region"] = None
    return frame


def _seasonal(rng: np.random.Generator, t: np.ndarray, noise: float) -> np.ndarray:
    weekday = (t // DAY) % 7 < 5
    return np.sin(2 * np.pi * t / DAY) * np.where(weekday, 1.0, 0.6) + rng.normal(0, noise, len(t))


def timeseries_univariate(rng: np.random.Generator) -> pd.DataFrame:
    """One seasonal metric with a spike, a level shift, a frequency change and a gap."""
    t = np.arange(PERIODS)
    value = 50 + 10 * _seasonal(rng, t, 0.05)
    label = np.zeros(PERIODS, dtype=np.int8)
    value[15 * DAY + 100] += 40  # spike
    label[15 * DAY + 100] = 1
    value[19 * DAY : 19 * DAY + 60] += 12  # level shift for five hours
    label[19 * DAY : 19 * DAY + 60] = 1
    window = np.arange(24 * DAY, 24 * DAY + DAY // 2)  # half a day at four times the frequency
    value[window] = 50 + 10 * np.sin(8 * np.pi * window / DAY)
    label[window] = 1
    value[10 * DAY : 10 * DAY + 12] = np.nan  # an hour of missing data, not an anomaly
    timestamp = pd.date_range("2026-01-05", periods=PERIODS, freq="5min")
    return pd.DataFrame({"timestamp": timestamp, "value": value.round(3), "label": label})


def timeseries_multivariate(rng: np.random.Generator) -> pd.DataFrame:
    """Five related channels; each anomaly breaks one channel's relation to the others."""
    t = np.arange(PERIODS)
    load = _seasonal(rng, t, 0.03)
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2026-01-05", periods=PERIODS, freq="5min"),
            "cpu": 40 + 20 * load + rng.normal(0, 1, PERIODS),
            "memory": 60 + 5 * load + rng.normal(0, 0.5, PERIODS),
            "latency": 100 + 30 * load + rng.normal(0, 2, PERIODS),
            "requests": 500 + 300 * load + rng.normal(0, 10, PERIODS),
            "errors": rng.poisson(2, PERIODS).astype(float),
        }
    )
    label = np.zeros(PERIODS, dtype=np.int8)
    for channel, start, length, shift in [
        ("latency", 14 * DAY + 50, 36, 60.0),
        ("memory", 18 * DAY, 120, 8.0),
        ("errors", 22 * DAY + 200, 12, 25.0),
        ("cpu", 25 * DAY + 10, 48, -30.0),
    ]:
        frame.loc[start : start + length - 1, channel] += shift
        label[start : start + length] = 1
    channels = ["cpu", "memory", "latency", "requests", "errors"]
    frame[channels] = frame[channels].round(3)
    frame["label"] = label
    return frame


def main() -> None:
    rng = np.random.default_rng(SEED)
    for name, frame in [
        ("tabular", tabular(rng)),
        ("timeseries_univariate", timeseries_univariate(rng)),
        ("timeseries_multivariate", timeseries_multivariate(rng)),
    ]:
        path = HERE / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        print(f"{path.name}: {len(frame)} rows, {int(frame.iloc[:, -1].sum())} labelled anomalous")


if __name__ == "__main__":
    main()
