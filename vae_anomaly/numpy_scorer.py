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
missing points included), and a saved Pipeline whose preprocessing numpy can run (its
plan saved beside it, ``numpy_preprocessing``) by its preprocessing and then its detector's scorer
(``NumpyPipelineScorer``). Every other model (``mc_samples``, a GPU, a Pipeline of other steps, or a
folder of an older format) loads with torch as before: :func:`load_numpy_scorer` returns None for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from safetensors import SafetensorError
from safetensors.numpy import load_file

from vae_anomaly.manifests import DETECTOR_FOLDER, read_bundle_manifest, saved_detector
from vae_anomaly.model_folder import BUNDLE_FILE
from vae_anomaly.numpy_preprocessing import PLAN_FILE, NumpyPreprocessing
from vae_anomaly.numpy_series_scorer import NumpySeriesScorer
from vae_anomaly.numpy_vae import (
    NumpyScorer,
    NumpyScoringPass,
    NumpyVAE,
    SavedScoring,
    ScoredFrames,
    module_input,
)
from vae_anomaly.time_index import with_time_column
from vae_anomaly.value_checks import TABLE_NON_FINITE_ADVICE, check_finite, check_rows_observed
from vae_anomaly.windowing import WINDOW_RULES

# The scoring devices the numpy scorer stands in for: "auto" finds the CPU on most machines, and for the
# small inputs it is used for a GPU would not repay torch's start-up.
_CPU_DEVICES = ("auto", "cpu")
_MODULES = ("module", "early_module")
# How a skipping detector's gaps enter the encoder: refilled from the reconstruction, or at the mean.
_GAP_FILLS = ("reconstruction", "mean")


class NumpyTableScorer(NumpyScorer):
    """A saved ``VAEAnomalyDetector``'s ``anomaly_score`` and flags, computed with numpy.

    Build it with :func:`load_numpy_scorer`.

    Parameters
    ----------
    saved : SavedScoring
        As for :class:`~vae_anomaly.numpy_vae.NumpyScorer`.
    skips_missing : bool, default=False
        The detector's ``missing="skip"``: a missing value (NaN) is left out of the score (the
        ``scoring_pass`` refills it where ``gap_fill`` says so) instead of refused.
    """

    def __init__(self, saved: SavedScoring, *, skips_missing: bool = False) -> None:
        super().__init__(saved)
        self.skips_missing = skips_missing

    def anomaly_score(self, frame: pd.DataFrame) -> np.ndarray:
        """The detector's ``anomaly_score`` of each row: higher is more anomalous.

        Parameters
        ----------
        frame : DataFrame
            Numeric columns, ``feature_names`` in that order; a missing value only where the detector
            skips them, and no row without an observed value.

        Returns
        -------
        ndarray of shape (n_rows,), float64
            A row whose score overflows float32 (a value far beyond the training data) scores +inf,
            as with the detector.

        Raises
        ------
        ValueError
            If the columns are not ``feature_names``, a value is infinite or (unless the detector
            skips them) missing, naming the column and its first row, or a row has no observed value,
            as the detector says.
        """
        self._check_columns(frame)
        x = frame.to_numpy(dtype=np.float64)
        skip = self.skips_missing
        check_finite(x, np.asarray(self.feature_names), allow_nan=skip, advice=TABLE_NON_FINITE_ADVICE[skip])
        observed = None
        if skip and np.isnan(x).any():
            check_rows_observed(x)
            observed = ~np.isnan(x)
        return self._scores_in_passes(
            len(x),
            lambda part: module_input(x[part], self._mean, self._scale, complete=observed is None),
            None if observed is None else observed.__getitem__,
        )


class NumpyPipelineScorer(ScoredFrames):
    """A saved Pipeline's ``anomaly_score`` and flags: its preprocessing, then its detector's scorer.

    Build it with :func:`load_numpy_scorer`.

    Parameters
    ----------
    preprocessing : NumpyPreprocessing
        The Pipeline's steps before the detector.
    detector : NumpyTableScorer or NumpySeriesScorer
        Its detector's numpy scorer.

    Attributes
    ----------
    feature_names : list of str
        The columns the Pipeline reads.
    time_column : str or None
        The series detector's time column (None for a table, or a series on its index).
    threshold : float
        The detector's ``anomaly_threshold_``.
    multiply_adds_per_row : int
        The detector's work per input row.
    """

    def __init__(
        self, preprocessing: NumpyPreprocessing, detector: NumpyTableScorer | NumpySeriesScorer
    ) -> None:
        self.preprocessing, self.detector = preprocessing, detector
        self.feature_names = preprocessing.input_columns
        self.time_column = getattr(detector, "time_column", None)
        self.threshold = detector.threshold
        self.multiply_adds_per_row = detector.multiply_adds_per_row

    def takes(self, frame: pd.DataFrame) -> bool:
        """Whether the numpy scorer scores ``frame`` exactly as the Pipeline does: whether its
        preprocessing takes it (:meth:`NumpyPreprocessing.takes`).

        Parameters
        ----------
        frame : DataFrame
            Input as the Pipeline's ``fit`` took it.

        Returns
        -------
        bool
        """
        return self.preprocessing.takes(frame)

    def anomaly_score(self, frame: pd.DataFrame) -> np.ndarray:
        """The Pipeline's ``anomaly_score`` of each row (or timestamp): higher is more anomalous.

        Parameters
        ----------
        frame : DataFrame
            Input that :meth:`takes`.

        Returns
        -------
        ndarray of shape (n_rows,), float64

        Raises
        ------
        ValueError
            As the detector's scorer raises it for what the preprocessing made of ``frame``.
        """
        return self.detector.anomaly_score(self.preprocessing.transform(frame))


def load_numpy_scorer(
    path: str | os.PathLike[str], device: str | None = None
) -> NumpyTableScorer | NumpySeriesScorer | NumpyPipelineScorer | None:
    """The numpy scorer of a saved detector or bundle folder, or None where it takes torch to score.

    Parameters
    ----------
    path : str or PathLike
        A folder written by a detector's ``save`` or by ``save_bundle``.
    device : str or None, default=None
        The device asked for (``--device``); None leaves the model's ``scoring_device``.

    Returns
    -------
    NumpyTableScorer, NumpySeriesScorer, NumpyPipelineScorer or None
        None unless the folder holds a detector fitted on named columns that scores at the posterior
        mean (``mc_samples`` None) and is to score on the CPU (``device``, or where it is None the
        detector's ``scoring_device``, is "auto" or "cpu"), saved in this version's format with
        exactly the arrays it needs: a ``VAEAnomalyDetector`` (its missing values refused or
        skipped, as ``missing`` says), or a ``TimeSeriesVAEDetector``; alone, or at the end of a
        Pipeline whose preprocessing plan was saved beside it (``preprocessing.json``).

    Raises
    ------
    ModelFileError
        If the folder's manifest or a file fails its checksum, as loading it with torch would.
    """
    folder = Path(path)
    preprocessing = None
    if (folder / BUNDLE_FILE).is_file():
        if read_bundle_manifest(folder).get("steps") is not None:
            if not (folder / PLAN_FILE).is_file():
                return None  # a Pipeline of steps numpy does not run
            preprocessing = _plan(folder / PLAN_FILE)
            if preprocessing is None:
                return None
        folder = folder / DETECTOR_FOLDER
    config, weights_file = saved_detector(folder)
    estimator = config.get("estimator")
    params, attributes = config.get("params", {}), config.get("attributes", {})
    if not _scores_like_numpy(estimator, params, attributes, device):
        return None
    try:
        scorer = _scorer(estimator, params, attributes, load_file(str(weights_file)))
    except (SafetensorError, KeyError, TypeError, ValueError):
        return None  # not as this version saves it: the torch loader says what is wrong
    if preprocessing is None:
        return scorer
    made = with_time_column(scorer.feature_names, getattr(scorer, "time_column", None))
    return NumpyPipelineScorer(preprocessing, scorer) if preprocessing.output_columns == made else None


def _plan(path: Path) -> NumpyPreprocessing | None:
    """The preprocessing plan saved at ``path`` (checksummed with the bundle), or None where it is not
    one this version writes."""
    try:
        return NumpyPreprocessing(json.loads(path.read_text()))
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


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
        missing = params.get("missing")
        return common and (missing == "error" or (missing == "skip" and params.get("gap_fill") in _GAP_FILLS))
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
    # Gaps reach the pass where missing="skip" and in a series; saved before gap_fill: at the mean.
    refill = params.get("gap_fill") == "reconstruction"
    scoring_pass = NumpyScoringPass(modules, shares, params["score_method"], refill)
    mean, scale = arrays["mean_"].astype(np.float64), arrays["scale_"].astype(np.float64)
    window = attributes["window_"] if estimator == "TimeSeriesVAEDetector" else 1
    inputs = len(names) * window
    if not (mean.shape == scale.shape == (len(names),) and inputs == attributes["module_inputs"]):
        raise ValueError("the arrays do not fit the features")
    saved = SavedScoring(names, mean, scale, scoring_pass, -float(attributes["offset_"]), params["n_threads"])
    if estimator == "VAEAnomalyDetector":
        return NumpyTableScorer(saved, skips_missing=params["missing"] == "skip")
    interval = attributes["sampling_interval_"]
    return NumpySeriesScorer(
        saved,
        window=window,
        stride=params["stride"],
        aggregation=params["aggregation"],
        time_column=params["time_column"],
        sampling_interval=None if interval is None else pd.Timedelta(interval),
    )
