"""vae-anomaly: anomaly detection for tabular and time-series data with a variational autoencoder."""

from typing import TYPE_CHECKING

from vae_anomaly.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "DetectorPipeline": "vae_anomaly.detector_pipeline",
    "IrregularSamplingWarning": "vae_anomaly.time_index",
    "ModelFileError": "vae_anomaly.manifests",
    "TimeSeriesVAEDetector": "vae_anomaly.timeseries",
    "TrainingDivergedError": "vae_anomaly.training",
    "VAEAnomalyDetector": "vae_anomaly.estimator",
    "anomaly_average_precision_scorer": "vae_anomaly.metrics",
    "anomaly_roc_auc_scorer": "vae_anomaly.metrics",
    "ColumnStatistics": "vae_anomaly.column_statistics",
    "TrainingSample": "vae_anomaly.training_sample",
    "fit_parquet": "vae_anomaly.parquet_training",
    "fit_sample": "vae_anomaly.parquet_training",
    "sample_parquet": "vae_anomaly.parquet_sample",
    "SeriesSample": "vae_anomaly.series_sample",
    "ShortSeriesWarning": "vae_anomaly.user_warnings",
    "sample_series_parquet": "vae_anomaly.series_sample",
    "sample_spark": "vae_anomaly.spark_sample",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = [  # the names of _EXPORTS, spelled out for type checkers
    "ColumnStatistics",
    "DetectorPipeline",
    "IrregularSamplingWarning",
    "ModelFileError",
    "SeriesSample",
    "ShortSeriesWarning",
    "TimeSeriesVAEDetector",
    "TrainingDivergedError",
    "TrainingSample",
    "VAEAnomalyDetector",
    "__version__",
    "anomaly_average_precision_scorer",
    "anomaly_roc_auc_scorer",
    "fit_parquet",
    "fit_sample",
    "sample_parquet",
    "sample_series_parquet",
    "sample_spark",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time each name loads on first use
    from vae_anomaly.column_statistics import ColumnStatistics
    from vae_anomaly.detector_pipeline import DetectorPipeline
    from vae_anomaly.estimator import VAEAnomalyDetector
    from vae_anomaly.manifests import ModelFileError
    from vae_anomaly.metrics import anomaly_average_precision_scorer, anomaly_roc_auc_scorer
    from vae_anomaly.parquet_sample import sample_parquet
    from vae_anomaly.parquet_training import fit_parquet, fit_sample
    from vae_anomaly.series_sample import SeriesSample, sample_series_parquet
    from vae_anomaly.spark_sample import sample_spark
    from vae_anomaly.time_index import IrregularSamplingWarning
    from vae_anomaly.timeseries import TimeSeriesVAEDetector
    from vae_anomaly.training import TrainingDivergedError
    from vae_anomaly.training_sample import TrainingSample
    from vae_anomaly.user_warnings import ShortSeriesWarning
