"""VAEAnomalyDetector: the scikit-learn outlier detector around the VAE for tabular rows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from sklearn.utils._param_validation import StrOptions

from vae_anomaly.base import BaseVAEDetector
from vae_anomaly.crossfit import cross_fit_folds, out_of_fold_scores, unfittable_columns
from vae_anomaly.holdout import MIN_THRESHOLD_ROWS, HeldOut, cross_fits, held_out_rows
from vae_anomaly.input_checks import Samples, checked_values
from vae_anomaly.model_rows import TableRows
from vae_anomaly.parameters import detector_parameters, document_shared_parameters
from vae_anomaly.scoring import RowSource
from vae_anomaly.user_warnings import warn
from vae_anomaly.value_checks import TABLE_NON_FINITE_ADVICE, check_rows_observed


@document_shared_parameters
@detector_parameters
class VAEAnomalyDetector(BaseVAEDetector):
    """Unsupervised anomaly detector scoring rows with a variational autoencoder.

    The VAE has an MLP encoder to a diagonal Gaussian q(z|x), the reparameterization trick, and an MLP
    decoder to a Gaussian p(x|z) with a learned per-feature variance. It is trained by minimising the
    negative ELBO (reconstruction NLL + beta * KL(q(z|x) || N(0, I))) with KL warm-up and early
    stopping. Each row then gets two anomaly scores: its negative ELBO and its reconstruction error.
    Inputs are standardized with the training mean and standard deviation (at least
    ``min_relative_scale`` of the feature's absolute mean).

    Parameters
    ----------
    missing : {"error", "skip"}, default="error"
        What a missing value (NaN) does. "error" refuses it, naming the column and row. "skip" leaves
        it out of the ELBO's reconstruction term in training and in scoring, as the time-series
        detector does (Donut's masked ELBO): it enters the encoder as ``gap_fill`` says, and the data
        part of a row's reconstruction NLL is scaled from its observed features up to all of them
        (the decoder's normalizer counts every feature), so that rows with gaps compare with
        complete rows and ``explain`` leaves them the same baseline. Training then hides a
        share of the values too (``gap_injection``), so that a row with a gap is not flagged for it.
        A row with no observed value at all is refused, naming it: there is nothing in it to score.
        Infinite values are refused either way.
    binary_features : {"standardize", "keep"}, default="standardize"
        Features whose training values are all 0 or 1, both seen (one-hot levels, flags):
        "standardize" scales them like every other feature; "keep" centres them but leaves their
        scale at 1, so that a flip counts one unit rather than 1 / std (18 for a feature on in 0.3%
        of rows). "keep" is the time-series detector's default, where it pays on command flags; on
        the tabular benchmark's two sets with such features it lost a little (optdigits' novelty
        ROC-AUC 0.946 to 0.918, celeba's unsupervised 0.786 to 0.752). ``binary_features_`` says
        which features were kept.
    early_weight : float, default=0.5
        How much an early, under-fitted copy of the model counts in every score beside the final
        one. Training keeps the weights as they are after a tenth of the planned epochs
        (``early_module_``); each score is then a weighted mean of the two models' scores, the early
        one's weight (``early_share_``) such that, each divided by its spread on the held-out rows,
        it counts ``early_weight`` times as much as the final one. A model fitted on rows that hold
        anomalies learns them late in training, after the normal rows, so the early model still
        scores them high: on 66 ADBench dev sets unsupervised ROC-AUC rose by 0.015 and 0.020
        (the two halves) and novelty's fell by 0.007 and 0.004 (benchmarks/RESULTS.md, issue 31).
        Scoring takes twice as long. 0 scores with the final weights alone, as does a fit that ended
        before the checkpoint (``early_module_`` is then None).
    %(shared_parameters)s

    Attributes
    ----------
    module_ : GaussianVAE
        The trained torch module (CPU, float32).
    mean_ : ndarray of shape (n_features_in_,)
        Training mean of each feature.
    scale_ : ndarray of shape (n_features_in_,)
        Training standard deviation of each feature, at least ``min_relative_scale`` times its
        absolute mean (1 for constant features and for those in ``binary_features_``).
    binary_features_ : ndarray of bool, shape (n_features_in_,)
        The features whose training values are all 0 or 1 and that ``binary_features="keep"`` left
        at scale 1 (none under "standardize").
    latent_noise_ : ndarray of shape (mc_samples, latent_dim) or None
        Fixed latent draws used for scoring when ``mc_samples`` is set.
    early_module_ : GaussianVAE or None
        The weights after a tenth of the planned epochs, scored beside ``module_`` (CPU, float32);
        None with ``early_weight=0`` or when training ended before.
    early_share_ : dict of {"elbo", "reconstruction"} to float, or None
        The early module's share of each score: a score is ``(1 - share) * final + share * early``.
    offset_ : float
        ``decision_function`` is ``score_samples - offset_``: set on the scores of the rows held out
        of training (``validation_fraction``), so that ``contamination`` of new rows like them are
        flagged. Rows the model trained on score lower than new ones, so ``predict`` and
        ``fit_predict`` flag fewer of them.
    anomaly_threshold_ : float
        ``-offset_``: samples whose ``anomaly_score`` is above it are predicted outliers.
    score_scale_ : float
        Robust spread of the held-out samples' anomaly scores (IQR / 1.349), which ``predict_proba``
        scales by.
    history_ : list of dict
        Per-epoch training record: loss, reconstruction, kl, beta, learning_rate, validation_loss.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Names of features seen during fit, when X had string column names.

    See Also
    --------
    sklearn.ensemble.IsolationForest : Tree-based outlier detector with the same API.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.

    Examples
    --------
    >>> import numpy as np
    >>> from vae_anomaly import VAEAnomalyDetector
    >>> X = np.random.default_rng(0).normal(size=(500, 4))
    >>> detector = VAEAnomalyDetector(epochs=20, random_state=0).fit(X)
    >>> detector.predict([[0.0, 0.0, 0.0, 0.0], [9.0, -9.0, 9.0, -9.0]])
    array([ 1, -1])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **BaseVAEDetector._parameter_constraints,
        "missing": [StrOptions({"error", "skip"})],
    }
    _auto_gap_injection: ClassVar[float] = 0.2
    _feature_noun: ClassVar[str] = "Columns"

    missing: Literal["error", "skip"] = "error"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = self.missing == "skip"
        return tags

    # ------------------------------------------------------------------ hooks
    def _read(self, X: Any, *, reset: bool) -> Samples:
        """X's rows as float64: numeric, finite (NaN where missing values are skipped), with the
        columns seen in fit, and no row without an observed value; indexed as X, or 0, 1, ..."""
        skip = self.missing == "skip"
        x, complete = checked_values(
            self, X, reset=reset, allow_nan=skip, advice=TABLE_NON_FINITE_ADVICE[skip]
        )
        if not complete:
            check_rows_observed(x)
        index = X.index if isinstance(X, pd.DataFrame) else pd.RangeIndex(len(x))
        return Samples(x, index, complete)

    def _model_rows(
        self, samples: Samples, standardized: tuple[RowSource, RowSource | None], *, training: bool = False
    ) -> TableRows:
        """A model row per sample."""
        return TableRows(*standardized)

    def _held_out(self, samples: Samples, rng: np.random.Generator) -> HeldOut | None:
        """Random rows, ``validation_fraction`` of them (see ``held_out_rows``); None when that comes
        to too few to validate on (then see ``_out_of_fold``)."""
        return held_out_rows(len(samples.values), self.validation_fraction, rng)

    def _out_of_fold(self, samples: Samples, seed: int) -> tuple[None, Callable[[], np.ndarray]] | None:
        """For a table whose ``validation_fraction`` comes to too few rows to validate on
        (``cross_fits``): the threshold from ``CROSS_FIT_FOLDS`` models' out-of-fold scores, the module
        trained on every row. None, with a warning (unless ``validation_fraction`` is 0), where that
        cannot be: the threshold is then set on the training scores."""
        values, fraction = samples.values, self.validation_fraction
        if fraction == 0:
            return None
        if cross_fits(len(values), fraction):
            folds = cross_fit_folds(values, seed)
            unfittable = unfittable_columns(values, folds)
            if not unfittable:
                return None, lambda: out_of_fold_scores(self, values, folds, seed)[np.newaxis]
            names = np.asarray(self._feature_names())[unfittable].tolist()
            why = (
                f"too few to hold rows out, and columns {names} are observed in too few of them to fit "
                "the models that would score each row without it"
            )
        elif len(values) < MIN_THRESHOLD_ROWS:
            why = (
                f"too few to set the threshold on rows its model did not fit (at least {MIN_THRESHOLD_ROWS})"
            )
        else:
            why = f"of which validation_fraction={fraction} would leave none to train on"
        warn(
            f"VAEAnomalyDetector was fitted on {len(values)} samples, {why}, so the threshold is set on "
            "the training scores: the model has fitted those, so expect more of new data to be flagged "
            "than contamination says.",
            UserWarning,
        )
        return None
