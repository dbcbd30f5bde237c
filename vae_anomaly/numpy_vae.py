"""``GaussianVAE``'s scoring pass in numpy: what the numpy scorer runs where torch is not loaded.

It reads the weights under the names ``GaussianVAE.state_dict`` gives them (``encoder.0.weight``,
``to_z_mean.bias``, ...) and computes what ``scoring.score_rows`` computes at the posterior mean (no
latent draws): the reconstruction error, the reconstruction term and the KL term, of rows with gaps
too (``missing="skip"``: the gaps refilled from the reconstruction where ``gap_fill`` says so, left
out of the reconstruction terms, which are scaled from the observed values to all of them).
It computes in float64, so a row's scores do not depend on the rows batched with it (numpy's float32
matrix products round a few rows differently from many); they agree with torch's float32 scores to
about 1e-6 relative (``tests/test_numpy_scorer.py`` holds them to it). The variance bounds are the
torch module's too: ``model`` imports them from here.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from vae_anomaly.cpus import choose_threads
from vae_anomaly.sample_scores import SampleScores, mixed_scores
from vae_anomaly.score_columns import scored_frame
from vae_anomaly.value_checks import FLOAT32_MAX

# The decoder variance is bounded below so the likelihood cannot collapse onto one feature (an
# unbounded variance lets the NLL of a nearly constant feature go to minus infinity).
MIN_DECODER_VARIANCE = 1e-3
# The encoder log-variance is clamped so exp() cannot overflow early in training.
ENCODER_LOG_VARIANCE_RANGE = (-12.0, 8.0)
LOG_2PI = math.log(2.0 * math.pi)
# Rows (a table's rows, a series' windows) scored in one pass: a few float64 arrays of this many rows,
# as wide as a layer, stay small however wide the input (the float64 pass makes a row's score the same
# in any pass).
ROWS_PER_PASS = 8192
_HEADS = ("to_z_mean", "to_z_log_var", "to_x_mean")


def module_input(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, complete: bool) -> np.ndarray:
    """Rows as the module takes them: standardized in float64, missing values (NaN) at 0, the column
    mean, then float32 (a value beyond float32 becomes inf and scores as such).

    Parameters
    ----------
    x : ndarray of shape (n_rows, n_features)
        Checked values, float64 or float32.
    mean, scale : ndarray of shape (n_features,)
        The detector's fitted ``mean_`` and ``scale_``.
    complete : bool
        True when ``x`` has no NaN: no pass looks for one.

    Returns
    -------
    ndarray of shape (n_rows, n_features), float32, C order
    """
    with np.errstate(over="ignore"):
        values = x - mean
        values /= scale
        if not complete:
            values[np.isnan(values)] = 0.0
        return values.astype(np.float32, order="C")  # a column-major X (pandas) too


def _silu(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) overflows for x < -709: silu is then -0, as in torch
        return x / (1.0 + np.exp(-x))


class NumpyVAE:
    """A trained ``GaussianVAE``'s weights and its scoring pass at the posterior mean, in numpy.

    Parameters
    ----------
    weights : mapping of str to ndarray
        The module's ``state_dict``, as numpy arrays (e.g. from ``safetensors.numpy``).
    n_hidden : int
        Hidden layers of the encoder (the decoder has as many): ``len(hidden_dims)``.

    Raises
    ------
    ValueError
        If ``weights`` holds other names than such a module has, naming them.
    """

    def __init__(self, weights: Mapping[str, np.ndarray], n_hidden: int) -> None:
        layers = [f"{mlp}.{2 * i}" for mlp in ("encoder", "decoder") for i in range(n_hidden)]
        expected = {f"{layer}.{part}" for layer in (*layers, *_HEADS) for part in ("weight", "bias")}
        expected.add("x_log_var_raw")
        if set(weights) != expected:
            raise ValueError(
                f"the weights are not those of a GaussianVAE with {n_hidden} hidden layers: missing "
                f"{sorted(expected - set(weights))}, unexpected {sorted(set(weights) - expected)}"
            )
        self._weights = {name: np.asarray(weights[name], dtype=np.float64) for name in expected}
        self._n_hidden = n_hidden

    @property
    def multiply_adds_per_row(self) -> int:
        """Multiply-adds of one row's pass: the weights of its linear layers."""
        return sum(w.size for name, w in self._weights.items() if name.endswith(".weight"))

    def _linear(self, layer: str, x: np.ndarray) -> np.ndarray:
        return x @ self._weights[f"{layer}.weight"].T + self._weights[f"{layer}.bias"]

    def _mlp(self, name: str, x: np.ndarray) -> np.ndarray:
        for i in range(self._n_hidden):
            x = _silu(self._linear(f"{name}.{2 * i}", x))
        return x

    def _encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hidden = self._mlp("encoder", x)
        z_log_var = np.clip(self._linear("to_z_log_var", hidden), *ENCODER_LOG_VARIANCE_RANGE)
        return self._linear("to_z_mean", hidden), z_log_var

    def _decode(self, z: np.ndarray) -> np.ndarray:
        return self._linear("to_x_mean", self._mlp("decoder", z))

    def scores(self, x: np.ndarray, observed: np.ndarray | None = None, refill: bool = False) -> SampleScores:
        """Score standardized rows at the posterior mean z = mu.

        Parameters
        ----------
        x : ndarray of shape (n_rows, n_features)
            Standardized rows (float32, as the torch module takes them), a missing value at 0.
        observed : ndarray of bool, shape (n_rows, n_features), or None, default=None
            Which values were observed; None: all of them.
        refill : bool, default=False
            Replace the missing values of a row by its reconstruction before scoring it
            (``GaussianVAE.fill_gaps``: ``gap_fill="reconstruction"``).

        Returns
        -------
        SampleScores
            Without feature parts, in float64. The reconstruction term is the Gaussian negative
            log-likelihood summed over features, the KL term KL(q(z|x) || N(0, I)) in closed form
            (see ``model.neg_elbo_terms``); over the observed values of a row with gaps, its data part
            scaled by n_features / n_observed, as ``scoring.score_rows`` scales it.
        """
        x = x.astype(np.float64)
        gapped = None if observed is None or not refill else ~observed.all(axis=1)
        if gapped is not None and gapped.any():
            given = x[gapped]
            x[gapped] = np.where(observed[gapped], given, self._decode(self._encode(given)[0]))
        z_mean, z_log_var = self._encode(x)
        x_log_var = np.logaddexp(self._weights["x_log_var_raw"], math.log(MIN_DECODER_VARIANCE))
        squared_error = np.square(x - self._decode(z_mean))
        n_features = x.shape[1]
        if observed is None:
            n_observed = np.full(len(x), float(n_features))
        else:
            squared_error *= observed
            n_observed = np.maximum(observed.sum(axis=1), 1).astype(np.float64)
        normalizer = (0.5 * (x_log_var + LOG_2PI)).sum()
        return SampleScores(
            reconstruction_error=squared_error.sum(axis=1) / n_observed,
            reconstruction_nll=(squared_error @ (0.5 * np.exp(-x_log_var))) * (n_features / n_observed)
            + normalizer,
            kl=0.5 * (np.square(z_mean) + np.exp(z_log_var) - 1.0 - z_log_var).sum(axis=1),
        )


class NumpyScoringPass:
    """A saved detector's modules (its final weights and, where kept, its early checkpoint) scoring
    rows as the detector does: each at the posterior mean, mixed by ``early_share_``, its
    ``score_method`` score taken.

    Parameters
    ----------
    modules : sequence of NumpyVAE
        The final module, then the early checkpoint where one was kept.
    early_share : mapping of {"elbo", "reconstruction"} to float, or None
        ``early_share_`` (None without an early checkpoint).
    score_method : {"elbo", "reconstruction"}
    refill_gaps : bool, default=False
        Refill a row's missing values from each module's reconstruction before it scores the row
        (``gap_fill="reconstruction"``).
    """

    def __init__(
        self,
        modules: Sequence[NumpyVAE],
        early_share: Mapping[str, float] | None,
        score_method: str,
        refill_gaps: bool = False,
    ) -> None:
        self._modules, self._early_share, self._score_method = list(modules), early_share, score_method
        self._refill_gaps = refill_gaps

    @property
    def multiply_adds_per_row(self) -> int:
        """The work of scoring one row: the weights of every module's linear layers."""
        return sum(module.multiply_adds_per_row for module in self._modules)

    def scores(self, rows: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
        """The ``score_method`` score of module input rows (``module_input``; ``observed`` says which
        of their values were observed, None: all), float64; a score that overflows float32 (a value
        far beyond the training data) is +inf, as with the detector, which scores in float32."""
        with np.errstate(over="ignore", invalid="ignore"):
            final, *early = (module.scores(rows, observed, self._refill_gaps) for module in self._modules)
            mixed = final if not early else mixed_scores(final, early[0], self._early_share)
            score = mixed.of_kind(self._score_method)
        score[~(np.abs(score) <= FLOAT32_MAX)] = np.inf
        return score


@dataclass(frozen=True)
class SavedScoring:
    """What every numpy scorer reads of a saved detector: its columns, standardization, modules,
    threshold and threads.

    Parameters
    ----------
    feature_names : list of str
        The detector's ``feature_names_in_``, the columns it scores, in order.
    mean, scale : ndarray of shape (n_features,)
        Its fitted standardization.
    scoring_pass : NumpyScoringPass
        Its modules, mixed and scored as it scores.
    threshold : float
        ``anomaly_threshold_``: samples scoring above it are flagged.
    n_threads : int or "auto", default="auto"
        The detector's ``n_threads``: numpy's BLAS threads while it scores, as
        :func:`~vae_anomaly.cpus.choose_threads` gives them (an int at most the CPUs the process may
        use; "auto" one for a model of small work, else every CPU).
    """

    feature_names: list[str]
    mean: np.ndarray
    scale: np.ndarray
    scoring_pass: NumpyScoringPass
    threshold: float
    n_threads: int | Literal["auto"] = "auto"


class ScoredFrames(ABC):
    """The scored table of a numpy scorer (a saved detector's, or a Pipeline's): its ``anomaly_score``
    and the flags above its ``threshold``.

    Attributes
    ----------
    threshold : float
        The detector's ``anomaly_threshold_``: samples scoring above it are flagged.
    """

    threshold: float

    @abstractmethod
    def anomaly_score(self, frame: pd.DataFrame) -> np.ndarray:
        """The model's ``anomaly_score`` of each row of ``frame``: higher is more anomalous."""

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frames.score_frame`` of the model: ``anomaly_score`` and ``is_anomaly``, indexed like
        ``frame``.

        Parameters
        ----------
        frame : DataFrame
            As for ``anomaly_score``.

        Returns
        -------
        DataFrame
        """
        return scored_frame(self.anomaly_score(frame), self.threshold, frame.index)


class NumpyScorer(ScoredFrames):
    """What the numpy scorers of a saved detector share: its columns, standardization, modules and
    threshold, and the scored table.

    Parameters
    ----------
    saved : SavedScoring
        The saved detector's columns, standardization, modules, threshold and threads.

    Attributes
    ----------
    feature_names : list of str
        ``saved.feature_names``.
    threshold : float
        ``saved.threshold``.
    n_threads : int or "auto"
        ``saved.n_threads``.
    multiply_adds_per_row : int
        The work of scoring one input row (of a table: the weights of every module's linear layers).
    """

    def __init__(self, saved: SavedScoring) -> None:
        self.feature_names = saved.feature_names
        self._mean, self._scale, self._pass = saved.mean, saved.scale, saved.scoring_pass
        self.threshold, self.n_threads = saved.threshold, saved.n_threads
        self.multiply_adds_per_row = saved.scoring_pass.multiply_adds_per_row

    def _scores_in_passes(
        self,
        n_rows: int,
        rows_of: Callable[[slice], np.ndarray],
        observed_of: Callable[[slice], np.ndarray] | None = None,
    ) -> np.ndarray:
        """The scores of ``n_rows`` module input rows, ``ROWS_PER_PASS`` at a time (``rows_of`` gives
        the rows of each slice; ``observed_of``, None or which of their values were observed), on as
        many BLAS threads as torch would get for a pass (``choose_threads``): under "auto" one for a
        small model, whose BLAS threads otherwise spin against any busy neighbour (2x slower beside
        one busy process on 2 cores)."""
        work = min(n_rows, ROWS_PER_PASS) * self._pass.multiply_adds_per_row
        with threadpool_limits(limits=choose_threads(self.n_threads, work), user_api="blas"):
            return np.concatenate(
                [
                    self._pass.scores(rows_of(part), None if observed_of is None else observed_of(part))
                    for part in (
                        slice(start, start + ROWS_PER_PASS) for start in range(0, n_rows, ROWS_PER_PASS)
                    )
                ]
                or [np.empty(0)]
            )

    def _check_columns(self, frame: pd.DataFrame) -> None:
        columns = [str(name) for name in frame.columns]
        if columns != self.feature_names:
            raise ValueError(f"Expected the columns {self.feature_names}, got {columns}.")
