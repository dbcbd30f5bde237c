"""MLflow for vae-anomaly: autologging of fits, the logged pyfunc model, and the registry's champion.

- ``autolog()`` logs every later detector fit (also one inside a Pipeline or a search) to the active
  run: parameters, per-epoch metrics, the training-score summary and plots.
- ``log_model(model, name, input_example=...)`` logs a detector or Pipeline as an MLflow "model from
  code": the model file ``vae_anomaly/mlflow_model_code.py`` plus the model saved as a bundle (JSON,
  safetensors and skops), so loading it never unpickles code.
- ``register_model(model_uri, name, ...)`` adds a registry version and moves the ``champion`` alias to
  it only if it beats the current champion on labelled validation data, or when asked.

The package's modules each do one of these jobs: ``store`` (where runs are recorded), ``autolog``,
``model_logging`` and ``registry`` (with the promotion decision as a pure function,
``registry.decide_promotion``).
"""

from vae_anomaly.tracking.autolog import EPOCH_METRICS, autolog
from vae_anomaly.tracking.model_logging import log_model
from vae_anomaly.tracking.registry import (
    CHAMPION_ALIAS,
    PromotionPolicy,
    Registration,
    ValidationMetric,
    decide_promotion,
    evaluate_model,
    register_model,
)
from vae_anomaly.tracking.store import DEFAULT_TRACKING_URI, use_tracking_store

__all__ = [
    "CHAMPION_ALIAS",
    "DEFAULT_TRACKING_URI",
    "EPOCH_METRICS",
    "PromotionPolicy",
    "Registration",
    "ValidationMetric",
    "autolog",
    "decide_promotion",
    "evaluate_model",
    "log_model",
    "register_model",
    "use_tracking_store",
]
