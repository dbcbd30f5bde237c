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

from typing import TYPE_CHECKING

from vae_anomaly.lazy import lazy_exports

# autolog and store need neither torch nor scikit-learn; the rest load on first use, so that resolving
# a models:/ URI for the numpy scorer (store) does not import torch through log_model. (The function
# autolog is bound here, over its module of the same name.)
from vae_anomaly.tracking.autolog import EPOCH_METRICS, autolog
from vae_anomaly.tracking.store import DEFAULT_TRACKING_URI, use_tracking_store

_EXPORTS = {
    "CHAMPION_ALIAS": "vae_anomaly.tracking.registry",
    "PromotionPolicy": "vae_anomaly.tracking.registry",
    "Registration": "vae_anomaly.tracking.registry",
    "ValidationMetric": "vae_anomaly.tracking.registry",
    "decide_promotion": "vae_anomaly.tracking.registry",
    "evaluate_model": "vae_anomaly.tracking.registry",
    "log_model": "vae_anomaly.tracking.model_logging",
    "register_model": "vae_anomaly.tracking.registry",
}
__getattr__ = lazy_exports(__name__, _EXPORTS)[0]
__all__ = [  # the lazy names and the four above, spelled out for type checkers
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


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
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
