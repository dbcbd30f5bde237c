"""The file MLflow runs to load a logged vae-anomaly model ("models from code"); nothing imports it."""

import mlflow.models

from vae_anomaly.pyfunc import AnomalyScoringModel

mlflow.models.set_model(AnomalyScoringModel())
