"""Tables kept out of every choice (issue 31): the classification sets scikit-learn bundles (no
download), each of their classes in turn made the rare one, as a newcomer's own small tables would be.

They were drawn up on 2026-12-07 (seventeenth session), after every table setting had been chosen, to
check that results on the ADBench dev pool carry to tables no setting was chosen on; they are for
checking, not for choosing settings. ``digits`` is UCI's optical digits, the source of ADBench's
optdigits, which is in the dev pool; the other three sets are not (ADBench's WDBC and wine, which
resemble ``breast_cancer`` and ``wine``, are not among the dev sets).

Used by ``tabular.py --pool check`` (ranking) and ``false_alarms.py --cases check`` (flags on clean
held-out rows).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn import datasets

# Each task's anomalies: a random draw of the rare class, this share of the task's rows (at least 2).
ANOMALY_SHARE = 0.05
MIN_ANOMALIES = 2
LOADERS: dict[str, Callable[..., tuple[np.ndarray, np.ndarray]]] = {
    "breast_cancer": datasets.load_breast_cancer,
    "digits": datasets.load_digits,
    "iris": datasets.load_iris,
    "wine": datasets.load_wine,
}


def check_tables(seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Every task as (name, X, y): for each set and each of its classes c (``"wine:1"``), every row
    of the other classes as normal (y 0), and ``ANOMALY_SHARE`` of the task's rows drawn from class c
    (y 1, drawn with ``seed`` and c)."""
    tasks = []
    for name, load in LOADERS.items():
        x, target = load(return_X_y=True)
        for rare in np.unique(target):
            normal = np.flatnonzero(target != rare)
            n_anomalies = max(MIN_ANOMALIES, round(ANOMALY_SHARE * len(normal) / (1 - ANOMALY_SHARE)))
            rng = np.random.default_rng([seed, int(rare)])
            anomalies = rng.choice(np.flatnonzero(target == rare), n_anomalies, replace=False)
            rows = np.concatenate([normal, anomalies])
            tasks.append((f"{name}:{rare}", x[rows].astype(np.float64), (target[rows] == rare).astype(int)))
    return tasks
