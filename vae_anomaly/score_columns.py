"""The names of the scored table's columns, which every way of serving a model writes (``frames``, the
batch scorer, the numpy scorer, the MLflow model)."""

ANOMALY_SCORE = "anomaly_score"
IS_ANOMALY = "is_anomaly"
ANOMALY_PROBABILITY = "anomaly_probability"
CONTRIBUTION_PREFIX = "contribution_"
