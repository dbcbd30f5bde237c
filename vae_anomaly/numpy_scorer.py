"""A saved table detector scored with numpy alone: what ``vae-anomaly score`` runs for small inputs.

Importing torch and scikit-learn takes 2-3 s on a small machine, far more than scoring a small file
(benchmarks/RESULTS.md, issue 33). For a folder saved by a ``VAEAnomalyDetector`` (or a bundle of one,
as ``tracking.log_model`` logs it) that scores rows without gaps at the posterior mean on the CPU,
``NumpyTableScorer`` reads ``config.json`` (checksums verified, as ``load`` does) and the weights with
safetensors' numpy loader, and scores as the detector does: standardize (``numpy_vae.module_input``),
run each module (``NumpyVAE``), mix in the early checkpoint by ``early_share_``, take the
``score_method`` score, and flag it above ``-offset_``. Its scores agree with the detector's
``anomaly_score`` to about 1e-6 relative (it computes in float64, the detector in float32), so a row
within that of the threshold may be flagged by one and not the other.

Every other model (a series detector, a Pipeline, ``missing="skip"``, ``mc_samples``, a GPU, or a
folder of an older format) loads with torch as before: :func:`load_numpy_scorer` returns None for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file

from vae_anomaly.manifests import DETECTOR_FOLDER, read_bundle_manifest, saved_detector
from vae_anomaly.model_folder import BUNDLE_FILE
from vae_anomaly.numpy_vae import NumpyVAE, module_input
from vae_anomaly.sample_scores import mixed_scores
from vae_anomaly.score_columns import ANOMALY_SCORE, IS_ANOMALY
from vae_anomaly.value_checks import FLOAT32_MAX, TABLE_NON_FINITE_ADVICE, check_finite

# The scoring devices the numpy scorer stands in for: "auto" finds the CPU on most machines, and for the
# small inputs it is used for a GPU would not repay torch's start-up.
_CPU_DEVICES = ("auto", "cpu")
_MODULES = ("module", "early_module")
# Rows scored in one pass: a few float64 arrays of this many rows, as wide as a layer, stay small
# however wide the table (the float64 pass makes a row's score the same in any pass).
ROWS_PER_PASS = 8192


class NumpyTableScorer:
    """A saved ``VAEAnomalyDetector``'s ``anomaly_score`` and flags, computed with numpy.

    Build it with :func:`load_numpy_scorer`.

    Parameters
    ----------
    feature_names : list of str
        The detector's ``feature_names_in_``, the columns it scores, in order.
    mean, scale : ndarray of shape (n_features,)
        Its fitted standardization.
    modules : list of NumpyVAE
        Its final module, and its early checkpoint where it kept one.
    early_share : mapping of {"elbo", "reconstruction"} to float, or None
        ``early_share_``: the early checkpoint's share of each score kind (None without one).
    score_method : {"elbo", "reconstruction"}
    threshold : float
        ``anomaly_threshold_``: rows scoring above it are flagged.

    Attributes
    ----------
    multiply_adds_per_row : int
        The work of scoring one row: the weights of every module's linear layers.
    """

    def __init__(
        self,
        feature_names: list[str],
        mean: np.ndarray,
        scale: np.ndarray,
        modules: list[NumpyVAE],
        early_share: Mapping[str, float] | None,
        score_method: str,
        threshold: float,
    ) -> None:
        self.feature_names = feature_names
        self._mean, self._scale = mean, scale
        self._modules, self._early_share = modules, early_share
        self._score_method, self.threshold = score_method, threshold
        self.multiply_adds_per_row = sum(module.multiply_adds_per_row for module in modules)

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
        columns = [str(name) for name in frame.columns]
        if columns != self.feature_names:
            raise ValueError(f"Expected the columns {self.feature_names}, got {columns}.")
        x = frame.to_numpy(dtype=np.float64)
        check_finite(
            x, np.asarray(self.feature_names), allow_nan=False, advice=TABLE_NON_FINITE_ADVICE[False]
        )
        score = np.concatenate(
            [self._scores(x[start : start + ROWS_PER_PASS]) for start in range(0, len(x), ROWS_PER_PASS)]
            or [np.empty(0)]
        )
        # The detector scores in float32: what overflows there is the most anomalous row, never NaN.
        score[~(np.abs(score) <= FLOAT32_MAX)] = np.inf
        return score

    def _scores(self, x: np.ndarray) -> np.ndarray:
        """The ``score_method`` score of checked rows, both modules mixed as the detector mixes them."""
        rows = module_input(x, self._mean, self._scale, complete=True)
        with np.errstate(over="ignore", invalid="ignore"):
            final, *early = (module.scores(rows) for module in self._modules)
            scores = final if not early else mixed_scores(final, early[0], self._early_share)
            return scores.of_kind(self._score_method)

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frames.score_frame`` of the detector: ``anomaly_score`` and ``is_anomaly``, indexed like
        ``frame``.

        Parameters
        ----------
        frame : DataFrame
            As for :meth:`anomaly_score`.

        Returns
        -------
        DataFrame
        """
        scores = self.anomaly_score(frame)
        return pd.DataFrame({ANOMALY_SCORE: scores, IS_ANOMALY: scores > self.threshold}, index=frame.index)


def load_numpy_scorer(path: str | os.PathLike[str], device: str | None = None) -> NumpyTableScorer | None:
    """The numpy scorer of a saved detector or bundle folder, or None where it takes torch to score.

    Parameters
    ----------
    path : str or PathLike
        A folder written by a detector's ``save`` or by ``save_bundle``.
    device : str or None, default=None
        The device asked for (``--device``); None leaves the model's ``scoring_device``.

    Returns
    -------
    NumpyTableScorer or None
        None unless the folder holds a bare ``VAEAnomalyDetector`` fitted on named columns that
        refuses missing values (``missing="error"``), scores at the posterior mean (``mc_samples``
        None) and is to score on the CPU (``device``, or where it is None the detector's
        ``scoring_device``, is "auto" or "cpu"), saved in this version's format with exactly the
        arrays it needs.

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
    params, attributes = config.get("params", {}), config.get("attributes", {})
    if not _scores_like_numpy(config.get("estimator"), params, attributes, device):
        return None
    try:
        return _scorer(params, attributes, load_file(str(weights_file)))
    except (SafetensorError, KeyError, TypeError, ValueError):
        return None  # not as this version saves it: the torch loader says what is wrong


def _scores_like_numpy(
    estimator: Any, params: dict[str, Any], attributes: dict[str, Any], device: Any
) -> bool:
    """Whether the saved detector scores as ``NumpyTableScorer`` does."""
    return (
        estimator == "VAEAnomalyDetector"
        and params.get("missing") == "error"
        and "mc_samples" in params
        and params["mc_samples"] is None
        and params.get("score_method") in ("elbo", "reconstruction")
        and (params.get("scoring_device") if device is None else device) in _CPU_DEVICES
        and isinstance(attributes.get("feature_names_in_"), list)
        and "early_share_" in attributes
    )


def _scorer(
    params: dict[str, Any], attributes: dict[str, Any], arrays: dict[str, np.ndarray]
) -> NumpyTableScorer:
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
    mean, scale = arrays["mean_"].astype(np.float64), arrays["scale_"].astype(np.float64)
    if not (mean.shape == scale.shape == (len(names),) == (attributes["module_inputs"],)):
        raise ValueError("the arrays do not fit the features")
    if shares is not None:
        shares = {kind: float(shares[kind]) for kind in ("elbo", "reconstruction")}
    threshold = -float(attributes["offset_"])
    return NumpyTableScorer(names, mean, scale, modules, shares, params["score_method"], threshold)
