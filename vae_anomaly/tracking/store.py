"""Where MLflow records runs and models: a local sqlite store unless the environment says otherwise."""

from __future__ import annotations

import os

import mlflow

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def use_tracking_store(uri: str | None = None) -> str:
    """Point MLflow at ``uri``, else ``$MLFLOW_TRACKING_URI``, else the local ``sqlite:///mlflow.db``.

    MLflow's own fallback is the deprecated file store when an ``mlruns`` folder exists; this never
    falls back to it.

    Parameters
    ----------
    uri : str or None, default=None
        A tracking URI; None uses the environment, then the sqlite default.

    Returns
    -------
    str
        The tracking URI now in use (the registry uses the same store unless set apart).
    """
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    mlflow.set_tracking_uri(chosen)
    return chosen
