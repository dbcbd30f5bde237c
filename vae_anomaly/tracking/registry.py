"""The model registry: a new version per trained model, and a ``champion`` alias that moves only forward."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from vae_anomaly.composition import model_parts
from vae_anomaly.frames import event_frame
from vae_anomaly.metrics import (
    check_anomaly_labels,
    composite_f1,
    detection_metrics,
    event_f1,
    events_to_flags,
    range_f1,
)
from vae_anomaly.model_location import quiet_artifact_downloads
from vae_anomaly.score_columns import ANOMALY_SCORE, IS_ANOMALY

CHAMPION_ALIAS = "champion"
PromotionPolicy = Literal["if_better", "always", "never"]
ValidationMetric = Literal["pr_auc", "roc_auc", "f1"]


def evaluate_model(model_uri: str, data: pd.DataFrame, labels: Any) -> dict[str, float]:
    """Score labelled data with a logged model and measure it against the labels.

    Parameters
    ----------
    model_uri : str
        Any URI ``mlflow.pyfunc.load_model`` takes, e.g. ``models:/NAME@champion``.
    data : DataFrame
        Input for the model, without the labels.
    labels : array-like of shape (n_samples,)
        1 for anomalies, 0 for normal rows.

    Returns
    -------
    dict
        ``roc_auc``, ``pr_auc``, and ``precision``, ``recall`` and ``f1`` of ``is_anomaly``; for a
        time-series model also the events' (``TimeSeriesVAEDetector.events``) ``event_precision``,
        ``event_recall`` and ``event_f1`` (:func:`vae_anomaly.metrics.event_f1`), ``composite_f1``
        (:func:`vae_anomaly.metrics.composite_f1`) and ``range_f1`` (:func:`vae_anomaly.metrics.range_f1`).
    """
    with quiet_artifact_downloads():
        loaded = mlflow.pyfunc.load_model(model_uri)
    scored = loaded.predict(data)
    metrics = detection_metrics(labels, scored[ANOMALY_SCORE], scored[IS_ANOMALY])
    model = loaded.unwrap_python_model().model  # the detector or Pipeline our pyfunc model serves
    if model_parts(model).detector.scores_whole_series:
        # The scores predict gave: the series is not scored a second time for its events.
        events = event_frame(model, data, positions=True, scores=scored[ANOMALY_SCORE].to_numpy())
        flags = events_to_flags(events, len(data))
        metrics.update({f"event_{name}": value for name, value in event_f1(labels, flags).items()})
        metrics["composite_f1"] = composite_f1(labels, flags)["f1"]
        metrics["range_f1"] = range_f1(labels, flags)["f1"]
    return metrics


@dataclass(frozen=True)
class Registration:
    """What :func:`register_model` did.

    Attributes
    ----------
    version : str
        The new registry version.
    promoted : bool
        Whether the ``champion`` alias now points to it.
    reason : str
        Why it was or was not promoted.
    metric : float or None
        Its validation metric, when labels were given.
    champion_metric : float or None
        The previous champion's metric on the same data, when there was one and labels were given.
    validation_metrics : dict or None
        Every metric of :func:`evaluate_model` for the new version, when labels were given.
    """

    version: str
    promoted: bool
    reason: str
    metric: float | None
    champion_metric: float | None
    validation_metrics: dict[str, float] | None


def decide_promotion(
    promote: PromotionPolicy,
    metric: ValidationMetric,
    new_metric: float | None,
    champion: str | None,
    champion_metric: float | None,
) -> tuple[bool, str]:
    """Whether a new registry version becomes champion, and why: the rule of :func:`register_model`.

    Parameters
    ----------
    promote : {"if_better", "always", "never"}
        The promotion policy.
    metric : {"pr_auc", "roc_auc", "f1"}
        Name of the compared metric, for the reason.
    new_metric : float or None
        The new version's metric on the labelled validation data; None without labels.
    champion : str or None
        The current champion's version; None when there is none.
    champion_metric : float or None
        The champion's metric on the same data; None without labels or champion.

    Returns
    -------
    promoted : bool
    reason : str
    """
    if promote == "always":
        return True, "promotion asked for explicitly"
    if promote == "never":
        return False, "promotion turned off"
    if new_metric is None:
        return False, "no labelled validation data: promote explicitly with promote='always'"
    if champion is None or champion_metric is None:
        return True, "no champion yet"
    verdict = "beats" if new_metric > champion_metric else "does not beat"
    return (
        new_metric > champion_metric,
        f"{metric} {new_metric:.6g} {verdict} champion v{champion}'s {champion_metric:.6g}",
    )


def _champion_version(client: MlflowClient, name: str) -> str | None:
    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS).version
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(error).lower():
            return None
        raise


def register_model(
    model_uri: str,
    name: str,
    *,
    validation_data: pd.DataFrame | None = None,
    validation_labels: Any = None,
    promote: PromotionPolicy = "if_better",
    metric: ValidationMetric = "pr_auc",
) -> Registration:
    """Register a logged model as a new version; move ``champion`` to it only if it is better.

    With ``promote="if_better"`` the new version and the current champion are both scored on the
    same labelled validation data; the alias moves only if the new version's ``metric`` is strictly
    higher, or if there is no champion yet. Without labels nothing is promoted unless
    ``promote="always"``. Earlier versions are never deleted. The decision and both metrics are
    recorded as tags of the new version.

    Parameters
    ----------
    model_uri : str
        The logged model, e.g. ``ModelInfo.model_uri`` or ``runs:/RUN_ID/NAME``.
    name : str
        Registered model name.
    validation_data : DataFrame or None, default=None
        Labelled input for the comparison, without the label column.
    validation_labels : array-like or None, default=None
        1 for anomalies, 0 for normal rows of ``validation_data``.
    promote : {"if_better", "always", "never"}, default="if_better"
        When to move the ``champion`` alias.
    metric : {"pr_auc", "roc_auc", "f1"}, default="pr_auc"
        The metric compared; higher is better.

    Returns
    -------
    Registration

    Raises
    ------
    ValueError
        Before anything is registered, if an argument is invalid or the labels are not one 0/1 label
        per validation row with both classes present.
    """
    if promote not in ("if_better", "always", "never"):
        raise ValueError(f"promote must be 'if_better', 'always' or 'never', got {promote!r}.")
    if metric not in ("pr_auc", "roc_auc", "f1"):
        raise ValueError(f"metric must be 'pr_auc', 'roc_auc' or 'f1', got {metric!r}.")
    if (validation_data is None) != (validation_labels is None):
        raise ValueError("Pass validation_data and validation_labels together, or neither.")
    if validation_data is not None:  # before anything is registered
        check_anomaly_labels(validation_labels, len(validation_data))
    client = MlflowClient()
    champion = _champion_version(client, name)
    new_version = mlflow.register_model(model_uri, name).version
    labelled = validation_data is not None
    validation_metrics = (
        evaluate_model(f"models:/{name}/{new_version}", validation_data, validation_labels)
        if labelled
        else None
    )
    new_metric = None if validation_metrics is None else validation_metrics[metric]
    champion_metric = (
        evaluate_model(f"models:/{name}@{CHAMPION_ALIAS}", validation_data, validation_labels)[metric]
        if labelled and champion is not None
        else None
    )
    promoted, reason = decide_promotion(promote, metric, new_metric, champion, champion_metric)
    tags = {"promotion": reason, "promoted": str(promoted).lower()}
    if new_metric is not None:
        tags[f"validation_{metric}"] = f"{new_metric:.10g}"
    if champion_metric is not None:
        tags[f"champion_v{champion}_{metric}"] = f"{champion_metric:.10g}"
    for key, value in tags.items():
        client.set_model_version_tag(name, new_version, key, value)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, new_version)
    return Registration(str(new_version), promoted, reason, new_metric, champion_metric, validation_metrics)
