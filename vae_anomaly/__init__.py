"""vae-anomaly: anomaly detection for tabular and time-series data with a variational autoencoder."""

from vae_anomaly.estimator import VAEAnomalyDetector
from vae_anomaly.metrics import anomaly_average_precision_scorer, anomaly_roc_auc_scorer
from vae_anomaly.persistence import ModelFileError
from vae_anomaly.timeseries import IrregularSamplingWarning, TimeSeriesVAEDetector
from vae_anomaly.training import TrainingDivergedError

__version__ = "0.1.0"

__all__ = [
    "IrregularSamplingWarning",
    "ModelFileError",
    "TimeSeriesVAEDetector",
    "TrainingDivergedError",
    "VAEAnomalyDetector",
    "__version__",
    "anomaly_average_precision_scorer",
    "anomaly_roc_auc_scorer",
]
