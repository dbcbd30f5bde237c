"""Where MLflow records runs and models: a local sqlite store unless the environment says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

import mlflow

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# Where a sqlite store made by use_tracking_store keeps its artifacts: a folder of this name beside
# the database file (the name ``mlflow server`` uses for its own default).
ARTIFACTS_FOLDER = "mlartifacts"
_SQLITE_PREFIX = "sqlite:///"


def use_tracking_store(uri: str | None = None) -> str:
    """Point MLflow at ``uri``, else ``$MLFLOW_TRACKING_URI``, else the local ``sqlite:///mlflow.db``.

    MLflow's own fallback is the deprecated file store when an ``mlruns`` folder exists; this never
    falls back to it. A sqlite database file that does not exist yet is made here, with its Default
    experiment keeping artifacts in ``mlartifacts`` beside the file: MLflow would put them in
    ``./mlruns`` of whatever folder the first run happens to start in. An existing store, and an
    experiment made later with an artifact location of MLflow's choosing, keep theirs.

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
    database = _sqlite_file(chosen)
    if database is not None and not database.exists():
        from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

        SqlAlchemyStore(chosen, (database.parent.resolve() / ARTIFACTS_FOLDER).as_uri())
    mlflow.set_tracking_uri(chosen)
    return chosen


def _sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (relative to the working folder, or absolute with a
    fourth slash); None for any other store and for an in-memory database."""
    if not uri.startswith(_SQLITE_PREFIX):
        return None
    path = uri[len(_SQLITE_PREFIX) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)
