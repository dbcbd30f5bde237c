"""The registry's promotion rule, as a pure function: no tracking store needed."""

from __future__ import annotations

import pytest

from vae_anomaly.tracking.registry import decide_promotion


@pytest.mark.parametrize(
    ("promote", "new", "champion", "champion_metric", "expected"),
    [
        ("always", None, "3", None, (True, "promotion asked for explicitly")),
        ("never", 0.9, "3", 0.1, (False, "promotion turned off")),
        ("if_better", None, "3", None, (False, "no labelled validation data: promote explicitly")),
        ("if_better", 0.2, None, None, (True, "no champion yet")),
        ("if_better", 0.6, "3", 0.5, (True, "pr_auc 0.6 beats champion v3's 0.5")),
        ("if_better", 0.5, "3", 0.5, (False, "pr_auc 0.5 does not beat champion v3's 0.5")),
        ("if_better", 0.4, "3", 0.5, (False, "pr_auc 0.4 does not beat champion v3's 0.5")),
    ],
)
def test_the_champion_moves_only_on_a_strictly_better_metric(
    promote, new, champion, champion_metric, expected
):
    promoted, reason = decide_promotion(promote, "pr_auc", new, champion, champion_metric)
    assert promoted == expected[0]
    assert reason.startswith(expected[1])
