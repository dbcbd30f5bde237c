"""MLflow for vae-anomaly: autologging of fits, the logged pyfunc model, and the registry's champion.

- ``autolog()`` logs every later detector fit (also one inside a Pipeline or a search) to the active
  run: parameters, per-epoch metrics, the training-score summary and plots.
- ``log_model(model, name, input_example=...)`` logs a detector or Pipeline as an MLflow "model from
  code": the model file ``vae_anomaly/mlflow_model_code.py`` plus the model saved as a bundle (JSON,
  safetensors and skops), so loading it never unpickles code.
- ``register_model(model_uri, name, ...)`` adds a registry version and moves the ``champion`` alias to
  it only if it beats the current champion on labelled validation data, or when asked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities import Metric, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

import vae_anomaly
from vae_anomaly import plots
from vae_anomaly.bundle import final_detector, save_bundle
from vae_anomaly.callbacks import FitCallback, register_callback, unregister_callback
from vae_anomaly.frames import ANOMALY_SCORE, IS_ANOMALY, score_frame
from vae_anomaly.metrics import detection_metrics
from vae_anomaly.pyfunc import BUNDLE_ARTIFACT
from vae_anomaly.timeseries import TimeSeriesVAEDetector

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
CHAMPION_ALIAS = "champion"
PACKAGE_DIR = Path(vae_anomaly.__file__).resolve().parent
MODEL_CODE = PACKAGE_DIR / "mlflow_model_code.py"
# What the pyfunc model imports; pinned to the versions that wrote it. Local build labels such as
# torch's "+cpu" are dropped: pip cannot install them from an index.
MODEL_REQUIREMENTS = ("torch", "numpy", "pandas", "scikit-learn", "safetensors", "tqdm")
PIPELINE_REQUIREMENTS = ("skops",)
TRAINING_SCORE_QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
# Logged metric name -> key of the epoch's history_ record.
EPOCH_METRICS = {
    "train_loss": "loss",
    "train_reconstruction": "reconstruction",
    "train_kl": "kl",
    "kl_weight": "beta",
    "learning_rate": "learning_rate",
    "validation_loss": "validation_loss",
}
# Epoch metrics are written in batches at most this many seconds apart, and when the fit ends.
METRIC_WRITE_SECONDS = 10.0
PromotionPolicy = Literal["if_better", "always", "never"]
ValidationMetric = Literal["pr_auc", "roc_auc", "f1"]


def use_tracking_store(uri: str | None = None) -> str:
    """Point MLflow at ``uri``, else ``$MLFLOW_TRACKING_URI``, else the local ``sqlite:///mlflow.db``.

    MLflow's own fallback is the deprecated file store when an ``mlruns`` folder exists; this never
    falls back to it.

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
    mlflow.set_tracking_uri(chosen)
    return chosen


# ------------------------------------------------------------------- autolog
@dataclass
class _LoggedFit:
    """A fit being logged: its run, whether the logger started that run, and metrics not yet written."""

    run_id: str
    started_run: bool
    pending: list[Metric] = field(default_factory=list)
    last_write: float = field(default_factory=time.monotonic)

    def write(self) -> None:
        """Send the pending metrics in one batch (a sqlite write per epoch would cost more than a
        small epoch)."""
        MlflowClient().log_batch(self.run_id, metrics=self.pending)
        self.pending = []
        self.last_write = time.monotonic()


class _FitLogger(FitCallback):
    """Logs each fit to the active run; a second fit in the same run goes to a nested child run."""

    def __init__(self, log_without_active_run: bool, log_plots: bool) -> None:
        self.log_without_active_run = log_without_active_run
        self.log_plots = log_plots
        self._runs_with_a_fit: set[str] = set()
        # One entry per fit in progress; None for a fit that is not logged.
        self._fits: list[_LoggedFit | None] = []

    def on_fit_start(self, detector: Any) -> None:
        active = mlflow.active_run()
        if active is None and not self.log_without_active_run:
            self._fits.append(None)
            return
        started = active is None or active.info.run_id in self._runs_with_a_fit
        run = mlflow.start_run(nested=active is not None) if started else active
        self._runs_with_a_fit.add(run.info.run_id)
        self._fits.append(_LoggedFit(run.info.run_id, started))
        # A key the run already has (e.g. an MLproject parameter of the same name) keeps its value:
        # MLflow refuses to change a logged parameter.
        logged = mlflow.get_run(run.info.run_id).data.params
        params = {name: str(value) for name, value in detector.get_params(deep=False).items()}
        mlflow.log_params({name: value for name, value in params.items() if name not in logged})
        mlflow.set_tags(
            {"vae_anomaly.detector": type(detector).__name__, "vae_anomaly.version": vae_anomaly.__version__}
        )

    def on_epoch_end(self, detector: Any, record: dict[str, float]) -> None:
        fit = self._fits[-1]
        if fit is None:
            return
        timestamp, step = int(time.time() * 1000), int(record["epoch"])
        fit.pending.extend(
            Metric(metric, float(record[key]), timestamp, step)
            for metric, key in EPOCH_METRICS.items()
            if key in record
        )
        if time.monotonic() - fit.last_write >= METRIC_WRITE_SECONDS:
            fit.write()

    def on_fit_end(self, detector: Any, X: Any, training_scores: np.ndarray) -> None:
        fit = self._fits.pop()
        if fit is None:
            return
        fit.write()
        mlflow.log_metrics(_training_summary(detector, training_scores))
        if self.log_plots:
            _log_plots(detector, X, training_scores)
        if fit.started_run:
            mlflow.end_run()

    def on_fit_error(self, detector: Any, error: BaseException) -> None:
        fit = self._fits.pop()
        if fit is None:
            return
        fit.write()
        if fit.started_run:
            mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))


def _training_summary(detector: Any, training_scores: np.ndarray) -> dict[str, float]:
    """Final metrics of a fit: threshold, training-score distribution and share flagged, epochs."""
    summary = {
        "offset": float(detector.offset_),
        "anomaly_threshold": float(detector.anomaly_threshold_),
        "train_flagged_fraction": float(np.mean(training_scores > detector.anomaly_threshold_)),
        "train_score_mean": float(np.mean(training_scores)),
        "train_score_std": float(np.std(training_scores)),
        "train_score_min": float(np.min(training_scores)),
        "train_score_max": float(np.max(training_scores)),
        "epochs_trained": float(len(detector.history_)),
    }
    for name, quantile in TRAINING_SCORE_QUANTILES.items():
        summary[f"train_score_{name}"] = float(np.quantile(training_scores, quantile))
    validation = [record["validation_loss"] for record in detector.history_ if "validation_loss" in record]
    if validation:
        summary["best_validation_loss"] = float(min(validation))
    return summary


def _series_frame(detector: TimeSeriesVAEDetector, X: Any) -> pd.DataFrame:
    """The training series as a DataFrame on its timestamps (or positions), one column per channel."""
    if isinstance(X, pd.DataFrame):
        return X.set_index(detector.time_column) if detector.time_column is not None else X
    if isinstance(X, pd.Series):
        return X.to_frame()
    return pd.DataFrame(np.asarray(X, dtype=np.float64).reshape(len(X), -1))


def _log_plots(detector: Any, X: Any, training_scores: np.ndarray) -> None:
    threshold = detector.anomaly_threshold_
    mlflow.log_figure(plots.loss_curve(detector.history_), "plots/loss_curve.png")
    mlflow.log_figure(plots.score_histogram(training_scores, threshold), "plots/score_histogram.png")
    if isinstance(detector, TimeSeriesVAEDetector):
        figure = plots.series_with_flags(_series_frame(detector, X), training_scores, threshold)
        mlflow.log_figure(figure, "plots/series_flags.png")


_logger: _FitLogger | None = None


def autolog(*, disable: bool = False, log_without_active_run: bool = False, log_plots: bool = True) -> None:
    """Log every later detector fit in this process to MLflow (off until called).

    A fit inside an active run logs there: the detector's parameters; per-epoch ``train_loss``,
    ``train_reconstruction``, ``train_kl``, ``kl_weight``, ``learning_rate`` and ``validation_loss``
    with ``step=epoch``; then ``offset``, ``anomaly_threshold``, the training-score summary
    (``train_score_mean``, ``_std``, ``_min``, ``_p50``, ``_p90``, ``_p99``, ``_max``,
    ``train_flagged_fraction``) and the plots ``plots/loss_curve.png``, ``plots/score_histogram.png``
    and, for time series, ``plots/series_flags.png``. A further fit in the same run (a refit, or each
    candidate of a ``GridSearchCV`` with ``n_jobs=1``) logs to a nested child run. Fits in other
    processes (``n_jobs>1``) are not logged.

    Parameters
    ----------
    disable : bool, default=False
        True turns autologging off again.
    log_without_active_run : bool, default=False
        False: a fit with no active run logs nothing. True: it starts a run of its own and ends it
        when the fit ends (marked FAILED if the fit raised).
    log_plots : bool, default=True
        Log the PNG plots (they cost a second or so per fit).
    """
    global _logger
    if _logger is not None:
        unregister_callback(_logger)
        _logger = None
    if not disable:
        _logger = _FitLogger(log_without_active_run, log_plots)
        register_callback(_logger)


# ----------------------------------------------------------------- log_model
def _model_requirements(model: Any) -> list[str]:
    names = MODEL_REQUIREMENTS + (PIPELINE_REQUIREMENTS if isinstance(model, Pipeline) else ())
    return [f"{name}=={version(name).split('+')[0]}" for name in names]


def log_model(
    model: Any,
    name: str,
    *,
    input_example: pd.DataFrame,
    registered_model_name: str | None = None,
) -> ModelInfo:
    """Log a fitted detector or Pipeline as an MLflow pyfunc model that scores DataFrames.

    The logged model's ``predict`` takes a DataFrame and returns ``anomaly_score`` and ``is_anomaly``
    per row (per timestamp for time series), plus ``contribution_<feature>`` columns when called with
    ``params={"contributions": True}``. It is logged "from code": MLflow runs
    ``vae_anomaly/mlflow_model_code.py``, which loads the model from a bundle artifact (JSON,
    safetensors, and skops for a Pipeline's preprocessing) with no pickle. The vae_anomaly source is
    logged with it, so it loads wherever its pinned requirements are installed, on CPU or GPU.

    Parameters
    ----------
    model : fitted VAEAnomalyDetector, TimeSeriesVAEDetector or Pipeline ending in one
    name : str
        Name of the logged model in the run.
    input_example : DataFrame
        A few rows of input as ``fit`` took them (a time series: at least ``window`` timestamps). The
        signature is inferred from it and its scores.
    registered_model_name : str or None, default=None
        Also register the model under this name. The ``champion`` alias is left alone; use
        :func:`register_model` to promote.

    Returns
    -------
    ModelInfo
        Its ``model_uri`` loads with ``mlflow.pyfunc.load_model``.

    Raises
    ------
    TypeError
        If ``model`` is not a detector or Pipeline ending in one, or ``input_example`` is no DataFrame.
    NotFittedError
        If the detector is not fitted.
    """
    check_is_fitted(final_detector(model), "module_")
    if not isinstance(input_example, pd.DataFrame):
        raise TypeError(f"input_example must be a pandas DataFrame, got {type(input_example).__name__}.")
    signature = infer_signature(
        input_example, score_frame(model, input_example), params={"contributions": False}
    )
    with tempfile.TemporaryDirectory() as scratch:
        bundle = save_bundle(model, Path(scratch) / BUNDLE_ARTIFACT)
        code = Path(scratch) / "code" / PACKAGE_DIR.name
        shutil.copytree(PACKAGE_DIR, code, ignore=shutil.ignore_patterns("__pycache__"))
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(MODEL_CODE),
            artifacts={BUNDLE_ARTIFACT: str(bundle)},
            code_paths=[str(code)],
            signature=signature,
            input_example=input_example,
            pip_requirements=_model_requirements(model),
            registered_model_name=registered_model_name,
        )


# ------------------------------------------------------------------ registry
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
        ``roc_auc``, ``pr_auc``, and ``precision``, ``recall`` and ``f1`` of ``is_anomaly``.
    """
    scored = mlflow.pyfunc.load_model(model_uri).predict(data)
    return detection_metrics(labels, scored[ANOMALY_SCORE], scored[IS_ANOMALY])


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
    """
    if promote not in ("if_better", "always", "never"):
        raise ValueError(f"promote must be 'if_better', 'always' or 'never', got {promote!r}.")
    if metric not in ("pr_auc", "roc_auc", "f1"):
        raise ValueError(f"metric must be 'pr_auc', 'roc_auc' or 'f1', got {metric!r}.")
    if (validation_data is None) != (validation_labels is None):
        raise ValueError("Pass validation_data and validation_labels together, or neither.")
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
    if promote == "always":
        promoted, reason = True, "promotion asked for explicitly"
    elif promote == "never":
        promoted, reason = False, "promotion turned off"
    elif not labelled:
        promoted, reason = False, "no labelled validation data: promote explicitly with promote='always'"
    elif champion is None:
        promoted, reason = True, "no champion yet"
    elif new_metric > champion_metric:
        promoted, reason = (
            True,
            f"{metric} {new_metric:.6g} beats champion v{champion}'s {champion_metric:.6g}",
        )
    else:
        promoted, reason = (
            False,
            f"{metric} {new_metric:.6g} does not beat champion v{champion}'s {champion_metric:.6g}",
        )
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
