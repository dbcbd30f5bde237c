"""Anomaly events on planted anomalies (issue 32): is each anomaly one event, with its core and peak on it?

Series of this script's own (no data needed): hourly traffic, 6,000 hours with daily and weekly cycles
and noise, one channel or four (each its own amplitudes and phases). The detector is fitted on the first
4,000 clean hours; one anomaly is planted in the remaining 2,000 (in the third channel of four), which
``TimeSeriesVAEDetector.events`` then reads. Kinds: a single spike, a 10-point burst, a 6-hour dip, a
12-hour flat line, a level shift to the end; plus two spikes two windows apart, which must be two
events. Seeds 0-4 vary the noise, the position of the anomaly and the detector's seed.

Per case: how many events overlap the planted points (1 is right), whether the core overlaps them and
is at most 4 times their length (at least 8 points), whether the peak lies on them, whether the
planted channel is named first, and how many events lie elsewhere (false events).

    python benchmarks/events.py
    python benchmarks/events.py --seeds 0 --kinds spike,shift --channels 4
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import pandas as pd

from vae_anomaly import TimeSeriesVAEDetector
from vae_anomaly.events import EVENT_TIME_COLUMNS

N_HOURS = 6000
N_TRAIN = 4000
KINDS = ("spike", "burst", "dip", "flat", "shift", "two_spikes")
PLANTED_CHANNEL = 2


def traffic(n_channels: int, seed: int) -> np.ndarray:
    """``N_HOURS`` hours of ``n_channels`` traffic-like channels: daily and weekly cycles plus noise."""
    rng = np.random.default_rng(seed)
    hours = np.arange(N_HOURS)[:, None]
    cycles = 0.0
    for period, amplitudes in ((24, (2.0, 4.0)), (168, (0.5, 1.5))):
        phases = rng.uniform(0, 1, n_channels)
        cycles = cycles + rng.uniform(*amplitudes, n_channels) * np.sin(2 * np.pi * hours / period + phases)
    return 10 + cycles + rng.normal(0, 0.3, (N_HOURS, n_channels))


def plant(test: np.ndarray, kind: str, position: int, channel: int, window: int, seed: int) -> list[range]:
    """Plant one anomaly of ``kind`` in ``test`` (in place); return the planted positions (one range
    per anomaly)."""
    rng = np.random.default_rng(1000 + seed)
    column = test[:, channel]
    if kind == "spike":
        column[position] += 6.0
        return [range(position, position + 1)]
    if kind == "two_spikes":
        second = position + 2 * window
        column[position] += 6.0
        column[second] += 6.0
        return [range(position, position + 1), range(second, second + 1)]
    if kind == "burst":
        column[position : position + 10] += rng.normal(0, 3.0, 10)
        return [range(position, position + 10)]
    if kind == "dip":
        column[position : position + 6] -= 4.0
        return [range(position, position + 6)]
    if kind == "flat":
        column[position : position + 12] = column[position]
        return [range(position, position + 12)]
    column[position:] += 5.0  # shift
    return [range(position, len(column))]


def case(kind: str, n_channels: int, seed: int, params: dict) -> dict:
    """Fit, plant one anomaly, read the events; the checks of the module docstring."""
    series = traffic(n_channels, seed)
    names = [f"c{k}" for k in range(n_channels)]
    times = pd.date_range("2026-01-01", periods=N_HOURS, freq="h")
    detector = TimeSeriesVAEDetector(**{"random_state": seed, **params})
    detector.fit(pd.DataFrame(series[:N_TRAIN], index=times[:N_TRAIN], columns=names))
    test = series[N_TRAIN:].copy()
    channel = PLANTED_CHANNEL if n_channels > 1 else 0
    position = 700 + 53 * seed
    planted = plant(test, kind, position, channel, detector.window_, seed)
    events = detector.events(pd.DataFrame(test, index=times[N_TRAIN:], columns=names))
    at = {name: times[N_TRAIN:].get_indexer(events[name]) for name in EVENT_TIME_COLUMNS}
    found = on_core = short_core = on_peak = named = 0
    matched = np.zeros(len(events), dtype=bool)
    for points in planted:
        hits = np.flatnonzero((at["start"] <= points[-1]) & (at["end"] >= points[0]))
        matched[hits] = True
        found += len(hits) == 1
        if len(hits) != 1:
            continue
        hit = hits[0]
        on_core += at["core_start"][hit] <= points[-1] and at["core_end"][hit] >= points[0]
        short_core += at["core_end"][hit] - at["core_start"][hit] + 1 <= max(4 * len(points), 8)
        on_peak += points[0] <= at["peak"][hit] <= points[-1]
        named += events["channel_1"].iloc[hit] == names[channel]
    return {
        "kind": kind,
        "channels": n_channels,
        "seed": seed,
        "anomalies": len(planted),
        "one_event": found,
        "core_on": on_core,
        "core_short": short_core,
        "peak_on": on_peak,
        "channel_first": named,
        "false_events": int((~matched).sum()),
        "open_ended": bool(events["open_ended"].any()) if len(events) else False,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--channels", default="1,4")
    parser.add_argument("--csv", help="also write every case here")
    parser.add_argument(
        "--vae-params",
        default="{}",
        help="JSON of TimeSeriesVAEDetector parameters; random_state replaces the seed",
    )
    args = parser.parse_args()
    params = json.loads(args.vae_params)
    warnings.simplefilter("ignore")
    records = [
        case(kind, int(n_channels), int(seed), params)
        for n_channels in args.channels.split(",")
        for kind in args.kinds.split(",")
        for seed in args.seeds.split(",")
    ]
    frame = pd.DataFrame.from_records(records)
    if args.csv:
        frame.to_csv(args.csv, index=False)
    print(frame.to_markdown(index=False))
    sums = frame.groupby(["channels", "kind"], sort=False)[
        ["anomalies", "one_event", "core_on", "core_short", "peak_on", "channel_first", "false_events"]
    ].sum()
    print()
    print(sums.to_markdown())
    total = frame[["anomalies", "one_event", "core_on", "core_short", "peak_on", "false_events"]].sum()
    multichannel = frame[frame["channels"] > 1]
    print()
    print(
        f"anomalies {total['anomalies']}: one event {total['one_event']}, core on {total['core_on']}, "
        f"core short {total['core_short']}, peak on {total['peak_on']} "
        f"({total['peak_on'] / total['anomalies']:.0%}); planted channel first "
        f"{multichannel['channel_first'].sum()} of {multichannel['anomalies'].sum()}; "
        f"false events {total['false_events']}"
    )


if __name__ == "__main__":
    main()
