"""Deprecated: the ready-made pipelines are ``vae_anomaly.pipelines``; this name still imports them.

``pipelines`` is a generic top-level name that another installed package may also claim. Import
``from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline`` instead.
"""

from __future__ import annotations

import warnings

from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline

__all__ = ["tabular_pipeline", "timeseries_pipeline"]

warnings.warn(
    "The top-level `pipelines` package is deprecated and will be removed; import "
    "`from vae_anomaly.pipelines import tabular_pipeline, timeseries_pipeline` instead.",
    DeprecationWarning,
    stacklevel=2,
)
