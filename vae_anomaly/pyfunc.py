"""The MLflow pyfunc model: loads a bundle from the model's artifacts and scores DataFrames with it."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from vae_anomaly.frames import event_frame, score_frame
from vae_anomaly.loading import load_from
from vae_anomaly.model_location import BUNDLE_ARTIFACT
from vae_anomaly.score_columns import ANOMALY_SCORE

# What the served model answers in place of an infinite score: the largest float64, which JSON holds
# (strict parsers refuse ``Infinity``). The row stays flagged: it is above every threshold.
LARGEST_SCORE = float(np.finfo(np.float64).max)
# The model config entry that lists the input columns the model needs (those of its input example).
INPUT_COLUMNS_CONFIG = "input_columns"


class AnomalyScoringModel(mlflow.pyfunc.PythonModel):
    """A vae-anomaly detector or Pipeline served through ``mlflow.pyfunc``.

    ``predict`` takes a DataFrame and returns ``score_frame``'s table: ``anomaly_score`` and
    ``is_anomaly`` per row, plus ``anomaly_probability`` with ``params={"probability": True}`` and
    ``contribution_<column>`` columns with ``params={"contributions": True}``; for a time series,
    ``params={"events": True}`` answers its anomaly events instead, one row per event
    (``TimeSeriesVAEDetector.events``). Log it with
    ``vae_anomaly.tracking.log_model``. Every number it answers is finite, so the answer is valid
    JSON: a score too large for float64 (a value far beyond the training data, which ``score_samples``
    gives as ``inf``) is answered as ``LARGEST_SCORE`` (1.7976931348623157e308), with ``is_anomaly``
    true.
    """

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        """Load the bundle artifact (JSON, safetensors and skops: no pickle).

        Parameters
        ----------
        context : PythonModelContext
            Gives the local path of the ``bundle`` artifact.
        """
        self.model = load_from(context.artifacts[BUNDLE_ARTIFACT]).model
        # Absent from models logged before it existed, whose signature makes MLflow check the columns.
        self.input_columns = (context.model_config or {}).get(INPUT_COLUMNS_CONFIG)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Score ``model_input``.

        Parameters
        ----------
        context : PythonModelContext
            Unused; the model was loaded by ``load_context``.
        model_input : DataFrame
            Rows (or a series) with the columns of the input example.
        params : dict or None
            ``{"contributions": True}`` adds a ``contribution_<column>`` column per input column;
            ``{"probability": True}`` adds ``anomaly_probability``; ``{"events": True}`` answers
            the series' events instead (``event_frame``).

        Returns
        -------
        DataFrame
            ``score_frame``'s table (or ``event_frame``'s), its infinite scores answered as
            ``LARGEST_SCORE``.
        """
        self._check_columns(model_input)
        options = params or {}
        if options.get("events", False):
            events = event_frame(self.model, model_input)
            events["score"] = np.minimum(events["score"].to_numpy(dtype=np.float64), LARGEST_SCORE)
            return events
        scored = score_frame(
            self.model,
            model_input,
            contributions=bool(options.get("contributions", False)),
            probability=bool(options.get("probability", False)),
        )
        scored[ANOMALY_SCORE] = np.minimum(scored[ANOMALY_SCORE].to_numpy(), LARGEST_SCORE)
        return scored

    def _check_columns(self, model_input: pd.DataFrame) -> None:
        """Refuse input that lacks a column the model needs, in one line that names it (served: 400)."""
        if self.input_columns is None or not isinstance(model_input, pd.DataFrame):
            return
        missing = [column for column in self.input_columns if column not in model_input.columns]
        if missing:
            raise MlflowException(
                f"The input lacks column(s) {missing}; the model needs {self.input_columns}.",
                error_code=INVALID_PARAMETER_VALUE,
            )
