"""Which VAE detector a model is, or ends in, and what runs before it.

Every part that takes "a detector, or a Pipeline ending in one" (bundles, loading, the pyfunc frames,
batch scoring, tracking and the CLI) asks here, once. Nothing here imports skops: a bare detector is
handled without it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sklearn.pipeline import Pipeline

from vae_anomaly.base import BaseVAEDetector


@dataclass(frozen=True)
class ModelParts:
    """A model taken apart: its VAE detector and the Pipeline steps before it.

    Parameters
    ----------
    detector : VAEAnomalyDetector or TimeSeriesVAEDetector
    preprocessing : Pipeline or None
        The steps before the detector; None for a bare detector.
    """

    detector: BaseVAEDetector
    preprocessing: Pipeline | None

    def features(self, X: Any) -> Any:
        """``X`` as the detector takes it: through the preprocessing, if any.

        Parameters
        ----------
        X : object
            Input as the whole model takes it.

        Returns
        -------
        object
        """
        return X if self.preprocessing is None else self.preprocessing.transform(X)


def model_parts(model: Any) -> ModelParts:
    """The VAE detector of ``model`` (the model itself, or a Pipeline's last step) and what runs before it.

    Parameters
    ----------
    model : VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one

    Returns
    -------
    ModelParts

    Raises
    ------
    TypeError
        If ``model`` is neither.
    """
    pipeline = isinstance(model, Pipeline)
    detector = model[-1] if pipeline else model
    if not isinstance(detector, BaseVAEDetector):
        raise TypeError(
            f"Expected a VAEAnomalyDetector, a TimeSeriesVAEDetector or a Pipeline ending in one, "
            f"got {type(model).__name__}"
            + (f" ending in {type(detector).__name__}." if detector is not model else ".")
        )
    # A plain Pipeline of the steps before the detector, whatever Pipeline subclass holds them, so
    # that what is saved of it (skops) names scikit-learn's own type.
    if not pipeline:
        return ModelParts(detector, None)
    return ModelParts(detector, Pipeline(model.steps[:-1], memory=model.memory, verbose=model.verbose))
