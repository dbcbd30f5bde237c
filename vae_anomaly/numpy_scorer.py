"""A saved detector scored with numpy alone: what ``vae-anomaly score`` runs for small inputs.

Importing torch and scikit-learn takes 2-3 s on a small machine, far more than scoring a small file
(benchmarks/RESULTS.md, issue 33). For a folder saved by a ``VAEAnomalyDetector`` (or a bundle of one,
as ``tracking.log_model`` logs it) that scores rows without gaps at the posterior mean on the CPU,
``NumpyTableScorer`` reads ``config.json`` (checksums verified, as ``load`` does) and the weights with
safetensors' numpy loader, and scores as the detector does: standardize (``numpy_vae.module_input``),
run each module (``NumpyVAE``), mix in the early checkpoint by ``early_share_``, take the
``score_method`` score, and flag it above ``-offset_``. Its scores agree with the detector's
``anomaly_score`` to about 1e-6 relative (it computes in float64, the detector in float32), so a row
within that of the threshold may be flagged by one and not the other.

A saved ``TimeSeriesVAEDetector`` is scored the same way window by window (``NumpySeriesScorer``,
for a series without missing points). Every other model (a Pipeline, ``missing="skip"``,
``mc_samples``, a GPU, or a folder of an older format) loads with torch as before:
:func:`load_numpy_scorer` returns None for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file

from vae_anomaly.manifests import DETECTOR_FOLDER, read_bundle_manifest, saved_detector
from vae_anomaly.model_folder import BUNDLE_FILE
from vae_anomaly.numpy_series_scorer import NumpySeriesScorer
from vae_anomaly.numpy_vae import NumpyScorer, NumpyScoringPass, NumpyVAE, module_input
from vae_anomaly.value_checks import TABLE_NON_FINITE_ADVICE, check_finite
from vae_anomaly.windowing import WINDOW_RULES

# The scoring devices the numpy scorer stands in for: "auto" finds the CPU on most machines, and for the
# small inputs it is used for a GPU would not repay torch's start-up.
_CPU_DEVICES = ("auto", "cpu")
_MODULES = ("module", "early_module")


class NumpyTableScorer(NumpyScorer):
    """A saved ``VAEAnomalyDetector``'s ``anomaly_score`` and flags, computed with numpy.

    Build it with :func:`load_numpy_scorer`; its parameters are :class:`NumpyScorer`'s.
    """

    def anomaly_score(self, frame: pd.DataFrame) -> np.ndarray:
        """The detector's ``anomaly_score`` of each row: higher is more anomalous.

        Parameters
        ----------
        frame : DataFrame
            Numeric columns, ``feature_names`` in that order, no missing value.

        Returns
        -------
        ndarray of shape (n_rows,), float64
            A row whose score overflows float32 (a value far beyond the training data) scores +inf,
            as with the detector.

        Raises
        ------
        ValueError
            If the columns are not ``feature_names``, or a value is NaN or infinite (naming the column
            and its first row, as the detector does).
        """
        self._check_columns(frame)
        x = frame.to_numpy(dtype=np.float64)
        check_finite(
            x, np.asarray(self.feature_names), allow_nan=False, advice=TABLE_NON_FINITE_ADVICE[False]
        )
        return self._scores_in_passes(
            len(x), lambda part: module_input(x[part], self._mean, self._scale, complete=True)
        )


def load_numpy_scorer(
    path: str | os.PathLike[str], device: str | None = None
) -> NumpyTableScorer | NumpySeriesScorer | None:
    """The numpy scorer of a saved detector or bundle folder, or None where it takes torch to score.

    Parameters
    ----------
    path : str or PathLike
        A folder written by a detector's ``save`` or by ``save_bundle``.
    device : str or None, default=None
        The device asked for (``--device``); None leaves the model's ``scoring_device``.

    Returns
    -------
    NumpyTableScorer, NumpySeriesScorer or None
        None unless the folder holds a bare detector fitted on named columns that scores at the
        posterior mean (``mc_samples`` None) and is to score on the CPU (``device``, or where it is
        None the detector's ``scoring_device``, is "auto" or "cpu"), saved in this version's format
        with exactly the arrays it needs: a ``VAEAnomalyDetector`` that refuses missing values
        (``missing="error"``), or a ``TimeSeriesVAEDetector`` (whose series with missing points
        the caller scores with the detector: ``NumpySeriesScorer.takes``).

    Raises
    ------
    ModelFileError
        If the folder's manifest or a file fails its checksum, as loading it with torch would.
    """
    folder = Path(path)
    if (folder / BUNDLE_FILE).is_file():
        if read_bundle_manifest(folder).get("steps") is not None:
            return None  # a Pipeline: its preprocessing is scikit-learn's
        folder = folder / DETECTOR_FOLDER
    config, weights_file = saved_detector(folder)
    estimator = config.get("estimator")
    params, attributes = config.get("params", {}), config.get("attributes", {})
    if not _scores_like_numpy(estimator, params, attributes, device):
        return None
    try:
        return _scorer(estimator, params, attributes, load_file(str(weights_file)))
    except (SafetensorError, KeyError, TypeError, ValueError):
        return None  # not as this version saves it: the torch loader says what is wrong


def _scores_like_numpy(
    estimator: Any, params: dict[str, Any], attributes: dict[str, Any], device: Any
) -> bool:
    """Whether the saved detector scores as ``NumpyTableScorer`` or ``NumpySeriesScorer`` does."""
    common = (
        "mc_samples" in params
        and params["mc_samples"] is None
        and params.get("score_method") in ("elbo", "reconstruction")
        and (params.get("scoring_device") if device is None else device) in _CPU_DEVICES
        and isinstance(attributes.get("feature_names_in_"), list)
        and "early_share_" in attributes
    )
    if estimator == "VAEAnomalyDetector":
        return common and params.get("missing") == "error"
    return (
        estimator == "TimeSeriesVAEDetector"
        and common
        and params.get("aggregation") in WINDOW_RULES
        and isinstance(attributes.get("window_"), int)
        and isinstance(params.get("stride"), int)
        and "time_column" in params
        and "sampling_interval_" in attributes
    )


def _scorer(
    estimator: str, params: dict[str, Any], attributes: dict[str, Any], arrays: dict[str, np.ndarray]
) -> NumpyTableScorer | NumpySeriesScorer:
    """The scorer of a saved detector's params, attributes and arrays; a KeyError, TypeError or
    ValueError where they are not what this version saves."""
    names = [str(name) for name in attributes["feature_names_in_"]]
    shares = attributes["early_share_"]
    kept = _MODULES if shares is not None else _MODULES[:1]
    known = {"mean_", "scale_", "binary_features_"} | {
        name for name in arrays if name.split(".", 1)[0] in kept
    }
    if set(arrays) != known:
        raise ValueError(f"unexpected arrays {sorted(set(arrays) - known)}")
    modules = [
        NumpyVAE(
            {name.split(".", 1)[1]: array for name, array in arrays.items() if name.startswith(f"{prefix}.")},
            len(params["hidden_dims"]),
        )
        for prefix in kept
    ]
    if shares is not None:
        shares = {kind: float(shares[kind]) for kind in ("elbo", "reconstruction")}
    scoring_pass = NumpyScoringPass(modules, shares, params["score_method"])
    mean, scale = arrays["mean_"].astype(np.float64), arrays["scale_"].astype(np.float64)
    window = attributes["window_"] if estimator == "TimeSeriesVAEDetector" else 1
    inputs = len(names) * window
    if not (mean.shape == scale.shape == (len(names),) and inputs == attributes["module_inputs"]):
        raise ValueError("the arrays do not fit the features")
    threshold = -float(attributes["offset_"])
    n_threads = params["n_threads"]
    if estimator == "VAEAnomalyDetector":
        return NumpyTableScorer(names, mean, scale, scoring_pass, threshold, n_threads)
    interval = attributes["sampling_interval_"]
    return NumpySeriesScorer(
        names,
        mean,
        scale,
        scoring_pass,
        threshold,
        n_threads,
        window=window,
        stride=params["stride"],
        aggregation=params["aggregation"],
        time_column=params["time_column"],
        sampling_interval=None if interval is None else pd.Timedelta(interval),
    )
