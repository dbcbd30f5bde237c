"""What the VAE detectors share: parameters, input checks, training, thresholds and safe persistence.

The tabular and the time-series detector differ only in how they turn input into rows for the VAE and
how they map row scores back to the input; everything else lives here, once.
"""

from __future__ import annotations

import copy
import functools
import os
import warnings
import weakref
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.special
import torch
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from vae_anomaly.callbacks import registered_callbacks
from vae_anomaly.model import GaussianVAE
from vae_anomaly.persistence import ModelFileError, SavedModel, load_model, save_model
from vae_anomaly.scoring import SampleScores, score_rows, scoring_batch_rows
from vae_anomaly.threads import available_cpus, choose_threads, scoring_workers, torch_threads
from vae_anomaly.training import TrainingConfig, batch_size_for, resolve_device, train_vae

ScoreKind = Literal["elbo", "reconstruction"]
# Tukey's upper fence: contamination="auto" flags training scores above Q3 + 1.5 * IQR.
AUTO_FENCE_IQR_MULTIPLE = 1.5
_MAX_LISTED_PROBLEMS = 10
FLOAT32_MAX = float(np.finfo(np.float32).max)


def column_label(feature_names: np.ndarray | None, column: int) -> str:
    """How error messages name a column: its name when the input had names, else its position."""
    return repr(str(feature_names[column])) if feature_names is not None else f"{column}"


def check_numeric_columns(X: Any) -> None:
    """Name every non-numeric DataFrame column instead of failing on the first unparsable value."""
    if not isinstance(X, pd.DataFrame):
        return
    bad = [
        f"{name!r} ({dtype})"
        for name, dtype in X.dtypes.items()
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype))
    ]
    if bad:
        raise ValueError(
            f"X has non-numeric columns: {', '.join(bad)}. Encode them first, e.g. with a "
            "OneHotEncoder in a ColumnTransformer before the detector."
        )


def arrow_numbers_as_float(X: Any) -> Any:
    """X with its Arrow-backed numeric columns (decimals, ``int64[pyarrow]``, ...) as float64, nulls as
    NaN: scikit-learn's checks cannot read them. Any other X is returned as it is.

    Parameters
    ----------
    X : object
        Input as ``fit`` or scoring takes it.

    Returns
    -------
    object
        ``X``, or a copy of the DataFrame with those columns converted.
    """
    if not isinstance(X, pd.DataFrame):
        return X
    arrow = [
        name
        for name, dtype in X.dtypes.items()
        if isinstance(dtype, pd.ArrowDtype) and pd.api.types.is_numeric_dtype(dtype)
    ]
    if not arrow:
        return X
    converted = X.copy()
    for name in arrow:
        converted[name] = X[name].to_numpy(dtype=np.float64, na_value=np.nan)
    return converted


def _listed_columns(bad: np.ndarray, feature_names: np.ndarray | None, describe: Callable[[int], str]) -> str:
    """Each column with a bad value: what is wrong in it, in how many rows, and the first row."""
    problems = []
    for column in np.flatnonzero(bad.any(axis=0))[:_MAX_LISTED_PROBLEMS]:
        rows = np.flatnonzero(bad[:, column])
        problems.append(
            f"column {column_label(feature_names, column)}: {describe(column)} in {len(rows)} row(s), "
            f"first at row {rows[0]}"
        )
    return "; ".join(problems)


# From this many values the finiteness pass is worth starting torch's threads for.
THREADED_SUM_MIN_VALUES = 2**20


def _read_only_view(x: np.ndarray) -> torch.Tensor:
    """``x`` as a CPU tensor sharing its memory, for reading: torch's warning that a read-only array
    (pandas may hand its values out so) could be written through the tensor does not apply."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.from_numpy(x)


def surely_finite(x: np.ndarray) -> bool:
    """True when a summing pass shows no NaN or inf in ``x``: one pass, no temporary the size of X.

    False means "check exactly": a NaN, an inf, or finite values whose sum overflows. A large ``x``
    is summed on torch's intra-op threads where torch can view it (numpy's sum takes one core).
    """
    if x.size >= THREADED_SUM_MIN_VALUES and x.dtype.isnative and min(x.strides) >= 0:
        return bool(_read_only_view(x).sum().isfinite())
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(np.add.reduce(x, axis=None)))


def has_no_nan(x: np.ndarray) -> bool:
    """True when ``x`` (already refused if it holds inf) has no missing value: the summing pass of
    :func:`surely_finite` first, the exact scan only when that is inconclusive."""
    return surely_finite(x) or not np.isnan(x).any()


def check_finite(x: np.ndarray, feature_names: np.ndarray | None, *, allow_nan: bool, advice: str) -> None:
    """Raise a ValueError naming each column with inf (and, unless allowed, NaN) values and its first row."""
    if surely_finite(x):
        return
    bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
    if not bad.any():
        return

    def kinds(column: int) -> str:
        values = x[:, column]
        found = [("NaN", np.isnan(values)), ("inf", np.isinf(values))]
        return " and ".join(k for k, f in found if f.any() and not (allow_nan and k == "NaN"))

    what = "infinite values" if allow_nan else "NaN or inf values"
    problems = _listed_columns(bad, feature_names, kinds)
    raise ValueError(f"X contains {what}, which the VAE cannot score: {problems}. {advice}")


def check_rows_observed(x: np.ndarray) -> None:
    """Raise a ValueError naming the rows of ``x`` in which every value is missing (NaN).

    Such a row holds no evidence either way: scored, it would come out as the most normal row there
    is, since nothing in it can be badly reconstructed.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Checked values, NaN where missing.

    Raises
    ------
    ValueError
        If a row has no observed value.
    """
    empty = np.flatnonzero(np.isnan(x).all(axis=1))
    if empty.size:
        listed = ", ".join(str(row) for row in empty[:_MAX_LISTED_PROBLEMS])
        more = f" and {empty.size - _MAX_LISTED_PROBLEMS} more" if empty.size > _MAX_LISTED_PROBLEMS else ""
        raise ValueError(
            f"X has {empty.size} row(s) with no observed value, every feature missing (row {listed}{more}): "
            "there is nothing in them to score. Drop them, or fill what is known."
        )


def check_float32_range(x: np.ndarray, feature_names: np.ndarray | None) -> None:
    """Raise a ValueError naming each column with values the float32 VAE cannot hold, and its first row.

    Such a value would make its column's scale infinite or its standardized values overflow, so
    training refuses it rather than learn a column it cannot see.
    """
    # Column extremes first (reductions, no temporary the size of X); the mask only when one is out.
    if len(x) == 0 or max(np.fmax.reduce(x, axis=0).max(), -np.fmin.reduce(x, axis=0).min()) <= FLOAT32_MAX:
        return
    with np.errstate(invalid="ignore"):
        bad = np.abs(x) > FLOAT32_MAX
    if bad.any():
        problems = _listed_columns(bad, feature_names, lambda column: f"|value| > {FLOAT32_MAX:.3g}")
        raise ValueError(
            f"X contains values beyond float32's range, which the VAE trains in: {problems}. Rescale "
            "those columns first (e.g. other units or a log transform) or drop the rows."
        )


# Rows standardized at a time: float64 temporaries of this many rows stay in cache.
STANDARDIZE_BLOCK_ROWS = 16_384


# Raw rows sent to a device at once by StandardizedRows.tensor: one large copy instead of one a batch,
# so the host does not wait on the device between batches.
DEVICE_CHUNK_BYTES = 256 * 2**20
_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class StandardizedRows:
    """X standardized to float32 a slice of rows at a time: a DeviceRowSource for ``score_rows``.

    Scoring reads it a batch at a time, so a scored X is never copied whole (2M x 32 rows saved a
    256 MB float32 copy and its page faults). Missing values become 0, the column mean. On CUDA the raw
    values cross to the device and are standardized there (``tensor``), which takes the host's
    arithmetic out of GPU scoring.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features), float64 or float32
        Checked values; NaN where missing.
    mean, scale : ndarray of shape (n_features,)
        The fitted standardization.
    complete : bool
        True when X has no NaN, so no slice needs its NaN replaced.
    """

    def __init__(self, x: np.ndarray, mean: np.ndarray, scale: np.ndarray, complete: bool) -> None:
        self._x, self._mean, self._scale, self._complete = x, mean, scale, complete
        # (device, first row, raw rows from there, mean, scale): the chunk ``tensor`` cuts batches from.
        self._chunk: tuple[torch.device, int, torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self._x)

    def __getitem__(self, rows: slice) -> np.ndarray:
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf and scores as such
            values = self._x[rows] - self._mean
            values /= self._scale
            if not self._complete:
                values[np.isnan(values)] = 0.0
            return values.astype(np.float32, order="C")  # a column-major X (pandas) too

    def tensor(self, rows: slice, device: torch.device) -> torch.Tensor:
        """``self[rows]`` made on ``device``: the same float64 arithmetic there, so the same float32 bits.

        The raw rows cross to the device ``DEVICE_CHUNK_BYTES`` at a time, and batches are cut from
        the chunk there; call it from one thread.

        Parameters
        ----------
        rows : slice
            Which rows, with step 1.
        device : torch.device
            Where the raw values go and are standardized.

        Returns
        -------
        Tensor of shape (n_rows, n_features), float32
        """
        start, stop, _ = rows.indices(len(self._x))
        chunk = self._chunk
        if chunk is None or chunk[0] != device or not chunk[1] <= start <= stop <= chunk[1] + len(chunk[2]):
            row_bytes = max(1, self._x.shape[1]) * self._x.itemsize
            end = min(len(self._x), start + max(stop - start, DEVICE_CHUNK_BYTES // row_bytes))
            chunk = self._chunk = (
                device,
                start,
                _on_device(self._x[start:end], device),
                torch.as_tensor(self._mean, dtype=torch.float64, device=device),
                torch.as_tensor(self._scale, dtype=torch.float64, device=device),
            )
        _, first, raw, mean, scale = chunk
        values = raw[start - first : stop - first].to(torch.float64) - mean
        values /= scale
        if not self._complete:
            values.masked_fill_(values.isnan(), 0.0)
        return values.to(torch.float32)


def _on_device(block: np.ndarray, device: torch.device) -> torch.Tensor:
    """``block`` copied to ``device`` as it is (its dtype, NaN kept)."""
    if block.flags.c_contiguous or block.strides[0] != block.itemsize:
        return _read_only_view(np.ascontiguousarray(block)).to(device)
    # A column-major X (as pandas holds it) crosses a column at a time, each a contiguous run.
    columns = torch.empty((block.shape[1], len(block)), dtype=_TORCH_DTYPES[block.dtype], device=device)
    for column, values in zip(columns, block.T, strict=True):
        column.copy_(_read_only_view(values))
    return columns.T


class ObservedRows:
    """The observed-value mask of X (1 observed, 0 missing) in float32, a slice of rows at a time."""

    def __init__(self, x: np.ndarray) -> None:
        self._x = x

    def __len__(self) -> int:
        return len(self._x)

    def __getitem__(self, rows: slice) -> np.ndarray:
        return (~np.isnan(self._x[rows])).astype(np.float32, order="C")


# Copies of fitted modules on a scoring device, kept as long as the module lives. They are kept outside
# the detector, so that scoring leaves it unchanged and a pickle of it never holds a GPU tensor.
_DEVICE_COPIES: weakref.WeakKeyDictionary[GaussianVAE, dict[torch.device, GaussianVAE]] = (
    weakref.WeakKeyDictionary()
)


def _column_std(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """``x.std(axis=0)`` given the column means, in blocks of rows: no temporary the size of X."""
    squares = np.zeros(x.shape[1])
    for start in range(0, len(x), STANDARDIZE_BLOCK_ROWS):
        deviations = x[start : start + STANDARDIZE_BLOCK_ROWS] - mean
        squares += np.square(deviations, out=deviations).sum(axis=0)
    return np.sqrt(squares / len(x))


def binary_columns(x: np.ndarray) -> np.ndarray:
    """Which columns hold only the values 0 and 1, both of them.

    Parameters
    ----------
    x : ndarray of shape (n_samples, n_features)
        Values; NaN is missing and ignored.

    Returns
    -------
    ndarray of bool, shape (n_features,)
    """
    with warnings.catch_warnings():  # a column of NaN alone is refused by the caller, not here
        warnings.simplefilter("ignore", RuntimeWarning)
        binary = (np.nanmin(x, axis=0) == 0) & (np.nanmax(x, axis=0) == 1)
    for column in np.flatnonzero(binary):  # the few candidates only: no temporary the size of X
        values = x[:, column]
        binary[column] = bool(np.all((values == 0) | (values == 1) | np.isnan(values)))
    return binary


def _no_binary_features(n_features: int) -> np.ndarray:
    """``binary_features_`` where every feature is scaled: none kept."""
    return np.zeros(n_features, dtype=bool)


def _robust_spread(scores: np.ndarray) -> float:
    """The spread of training scores as a standard deviation would be for normal data: IQR / 1.349,
    else their standard deviation, else 1 (all equal)."""
    finite = scores[np.isfinite(scores)]
    q1, q3 = np.percentile(finite, [25, 75]) if finite.size else (0.0, 0.0)
    for spread in ((q3 - q1) / 1.349, float(np.std(finite)) if finite.size else 0.0):
        if spread > 0:
            return float(spread)
    return 1.0


def _device_copy(module: GaussianVAE, device: torch.device) -> GaussianVAE:
    """A copy of the fitted ``module`` on ``device``, made once."""
    copies = _DEVICE_COPIES.setdefault(module, {})
    if device not in copies:
        copies[device] = copy.deepcopy(module).to(device).eval()
    return copies[device]


def contribution_shares(contributions: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Each column's share of its row's total; a row with total 0 gets equal shares, or all zeros where
    ``observed`` (one bool per row) says nothing in it was observed. In a row with infinite
    contributions (a value beyond what the model can represent) the infinite columns share it equally."""
    totals = contributions.sum(axis=1, keepdims=True)
    shares = np.full_like(contributions, 1.0 / contributions.shape[1])
    if observed is not None:
        shares[~observed] = 0.0
    np.divide(contributions, totals, out=shares, where=(totals > 0) & np.isfinite(totals))
    infinite = np.isinf(contributions)
    overflowed = infinite.any(axis=1)
    shares[overflowed] = infinite[overflowed] / infinite[overflowed].sum(axis=1, keepdims=True)
    return shares


# The parameters every detector shares, documented once; ``document_shared_parameters`` puts them
# into each detector's docstring at the line ``    %(shared_parameters)s``.
SHARED_PARAMETERS_DOC = """\
    min_relative_scale : float, default=0.01
        Each feature (channel) is standardized by its training standard deviation, but by at least
        this fraction of its mean absolute training value: a reading with a large level and a tiny
        training spread (a thermocouple at 22.1 degrees moving by 0.02) would otherwise count a drift
        of a tenth of a degree as five standard deviations and drown every other feature. A constant
        feature keeps the scale 1. On SKAB's industrial series this lifted VUS-PR from 0.76 to 0.85
        (even half) and from 0.93 to 0.97 (odd); it changed none of the ADBench or NAB sets. Set 0
        for data whose level means nothing, such as values already normalized to a range, where a
        nearly constant feature should keep its own spread (one SMAP series lost to the floor).
    latent_dim : int, default=8
        Dimension of the latent code z.
    hidden_dims : tuple of int, default=(64, 32)
        Hidden layer widths of the encoder; the decoder mirrors them.
    beta : float, default=1.0
        Weight of the KL term in the training loss.
    kl_warmup_epochs : int, default=10
        Epochs over which the KL weight ramps linearly from beta / kl_warmup_epochs up to beta, to
        avoid posterior collapse; 0 trains at full beta from the first epoch.
    epochs : int or "auto", default="auto"
        Maximum number of passes over the training samples (rows; windows for a series). "auto"
        trains for about 1,250 optimiser steps: ceil(1250 / batches per epoch) epochs, at least 10
        and at most 500.
    batch_size : int or "auto", default="auto"
        Samples per optimisation step; smaller training sets use one batch of all samples. ``"auto"``
        takes 512, or for more than 262,144 training samples the smallest power of two that keeps an
        epoch within 512 steps (4,096 for 2M samples): on a GPU a step of 512 rows costs about as much
        as one of 8,192, so big tables train in fewer, larger steps. The learning rate is not scaled.
    learning_rate : float, default=1e-2
        Initial AdamW learning rate; it decays along a cosine to zero over the planned epochs.
    weight_decay : float, default=1e-5
        AdamW weight decay.
    gap_injection : float in [0, 1) or "auto", default="auto"
        Share of the observed values hidden from the model in each training step, a fresh draw each
        step (Donut's missing-data injection): they enter the encoder at the feature's mean, as a
        real gap does, and the reconstruction term skips them. The encoder so learns to code a sample
        from what was observed, and a sample with gaps at scoring is scored by its observed values
        rather than flagged for the gaps: without it, a table where d = a + b flagged 71% of the rows
        with d missing against 3% of complete ones (2.5% against 2.7% with it). "auto" hides 0.2 of
        the values for the tabular detector with ``missing="skip"``, chosen on the even half of
        ADBench's sets with 5% or 20% of the scored rows' cells blanked, and none otherwise: on
        series, points hidden at random did not carry to gaps of consecutive points
        (benchmarks/missing.py, benchmarks/RESULTS.md).
    validation_fraction : float, default=0.1
        Share of the training samples held out for early stopping. With fewer than 16 held-out
        samples (or 0) there is no early stopping and all samples train for ``epochs``.
    patience : int, default=30
        Epochs without a lower validation loss before training stops; the weights of the best
        epoch are kept.
    score_method : {"elbo", "reconstruction"}, default="elbo"
        Score behind ``score_samples``: the negative ELBO or the reconstruction error.
    mc_samples : int or None, default=None
        None scores at the posterior mean. An int averages the reconstruction terms over that many
        draws of z; the draws are fixed at fit and shared by all samples, so scores stay
        deterministic.
    contamination : "auto" or float in (0, 0.5], default="auto"
        Sets ``offset_`` from the scores of the training samples (rows, or timestamps for a series).
        A float flags that fraction of them; "auto" flags those whose anomaly score lies above
        Tukey's upper fence, Q3 + 1.5 * IQR of the training scores.
    device : str, default="auto"
        Training device: "auto" picks CUDA, then MPS, then CPU, except that fewer than 1,000 training
        samples train on the CPU (an epoch of one small batch costs a GPU more in launches than in
        arithmetic); or any torch device string. CUDA trains under bf16 autocast, each step replayed
        from a captured CUDA graph. The fitted model is kept and pickled on the CPU in float32;
        ``scoring_device`` says where it scores.
    scoring_device : str, default="auto"
        Device of the forward passes that score (``score_samples``, ``predict``, ``explain``, the
        MLflow model, ``vae-anomaly score``): "auto" picks CUDA, then MPS, then CPU, whatever the
        number of rows; or any torch device string. The fitted model itself stays on the CPU, so it
        pickles and loads anywhere; a copy goes to the scoring device when first needed. Batches are
        padded (on CUDA to one shape, on the CPU to a multiple of 4 rows), so a sample's score does
        not depend on the other samples or on how they are batched; on any device scores agree with
        the CPU's to float32 rounding.
    n_threads : int or "auto", default="auto"
        Torch CPU threads for training and scoring. "auto" gives one thread to a model whose batch
        pass takes under 1G multiply-adds (the defaults, up to 7,000-wide windows), which does not
        collapse when the cores are shared with other processes (several threads slowed 4-5x beside
        one busy process), and a larger model every CPU the process may use (its CPU affinity,
        capped by a cgroup or Kubernetes CPU limit). Under "auto" the one-thread model is scored a
        batch per CPU (at most 8) at once, each batch on a Python thread of its own: these threads
        never wait for each other, so a busy neighbour slows them by its share only. An int scores
        one batch at a time. An int above the CPUs the process may use is capped there (fit warns).
        Torch's own setting is restored afterwards.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, the validation split, shuffling and noise; an int makes fits
        repeatable.
    verbose : int, default=0
        1 shows a progress bar over epochs with the current losses.
"""
_SHARED_PARAMETERS_MARKER = "    %(shared_parameters)s\n"
# Values that reproduce how a detector saved or pickled before a parameter existed was fitted: such a
# detector loads with these, not the new defaults, so get_params and clone tell the truth about it.
_PARAMETERS_BEFORE_THEY_EXISTED: dict[str, Any] = {
    "binary_features": "standardize",
    "gap_injection": 0.0,
    "min_relative_scale": 0.0,
}


def document_shared_parameters(cls: type) -> type:
    """Class decorator: replace the docstring line ``    %(shared_parameters)s`` by their documentation."""
    if cls.__doc__ is None or _SHARED_PARAMETERS_MARKER not in cls.__doc__:
        raise TypeError(f"{cls.__name__}'s docstring lacks the line '{_SHARED_PARAMETERS_MARKER.strip()}'.")
    cls.__doc__ = cls.__doc__.replace(_SHARED_PARAMETERS_MARKER, SHARED_PARAMETERS_DOC)
    return cls


class BaseVAEDetector(OutlierMixin, BaseEstimator, metaclass=ABCMeta):
    """Base class of the VAE detectors; not for direct use.

    It declares, validates and stores the parameters both detectors share (``SHARED_PARAMETERS_DOC``
    documents them); a subclass lists them in its own ``__init__`` signature, as scikit-learn needs,
    forwards them here, turns input into standardized rows, and implements ``anomaly_score``.

    References
    ----------
    .. [1] D. P. Kingma and M. Welling, "Auto-Encoding Variational Bayes", ICLR 2014.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        # Not in __init__ here: each detector declares it with a default of its own.
        "binary_features": [StrOptions({"keep", "standardize"})],
        "min_relative_scale": [Interval(Real, 0, None, closed="left")],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden_dims": ["array-like"],
        "beta": [Interval(Real, 0, None, closed="left")],
        "kl_warmup_epochs": [Interval(Integral, 0, None, closed="left")],
        "epochs": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "gap_injection": [StrOptions({"auto"}), Interval(Real, 0, 1, closed="left")],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "score_method": [StrOptions({"elbo", "reconstruction"})],
        "mc_samples": [None, Interval(Integral, 1, None, closed="left")],
        "contamination": [StrOptions({"auto"}), Interval(Real, 0, 0.5, closed="right")],
        "device": [str],
        "scoring_device": [str],
        "n_threads": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }
    #: The share of values ``gap_injection="auto"`` hides in training where missing values are taken.
    _auto_gap_injection: ClassVar[float] = 0.0
    # The dtype the fitted module is kept and scored in.
    _module_dtype: ClassVar[torch.dtype] = torch.float32
    #: Whether a sample's score depends on the samples around it, as a timestamp's does on its
    #: neighbours: such a detector must be given a whole series at once, never pieces of it.
    scores_whole_series: ClassVar[bool] = False
    #: The DataFrame column that holds the timestamps, if the detector reads one (a parameter of the
    #: time-series detector); None when timestamps, if any, come from the index.
    time_column: str | None = None
    #: What scaling does to features of 0s and 1s: "keep" or "standardize" (a parameter of each
    #: detector, whose defaults differ).
    binary_features: Literal["keep", "standardize"]

    def __init__(
        self,
        *,
        min_relative_scale: float = 0.01,
        latent_dim: int = 8,
        hidden_dims: tuple[int, ...] = (64, 32),
        beta: float = 1.0,
        kl_warmup_epochs: int = 10,
        epochs: int | Literal["auto"] = "auto",
        batch_size: int | Literal["auto"] = "auto",
        learning_rate: float = 1e-2,
        weight_decay: float = 1e-5,
        gap_injection: float | Literal["auto"] = "auto",
        validation_fraction: float = 0.1,
        patience: int = 30,
        score_method: ScoreKind = "elbo",
        mc_samples: int | None = None,
        contamination: float | Literal["auto"] = "auto",
        device: str = "auto",
        scoring_device: str = "auto",
        n_threads: int | Literal["auto"] = "auto",
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
    ) -> None:
        self.min_relative_scale = min_relative_scale
        self.latent_dim = latent_dim
        self.hidden_dims = hidden_dims
        self.beta = beta
        self.kl_warmup_epochs = kl_warmup_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.gap_injection = gap_injection
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.score_method = score_method
        self.mc_samples = mc_samples
        self.contamination = contamination
        self.device = device
        self.scoring_device = scoring_device
        self.n_threads = n_threads
        self.random_state = random_state
        self.verbose = verbose

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A detector pickled before a parameter existed was fitted with the behaviour it now turns on.
        state = {**_PARAMETERS_BEFORE_THEY_EXISTED, **state}
        if "scale_" in state and "binary_features_" not in state:  # fitted when every feature was scaled
            state["binary_features_"] = _no_binary_features(len(state["scale_"]))
        super().__setstate__(state)

    def _feature_names(self) -> list[str]:
        """Column names for outputs: ``feature_names_in_`` when fitted on names, else x0, x1, ..."""
        names = getattr(self, "feature_names_in_", [f"x{i}" for i in range(self.n_features_in_)])
        return [str(name) for name in names]

    def _checked_values(self, X: Any, *, reset: bool, allow_nan: bool, advice: str) -> np.ndarray:
        """The one place input values are checked: numeric columns, names and shape, then finiteness,
        and in training (``reset``) that values fit float32.

        ``advice`` ends the error message about non-finite values. Returns X as float64, or for scoring
        as float32 when it is float32: scoring standardizes a block of rows at a time in float64, so
        the scores are the same, and a float32 X of 2M x 32 rows is not copied into 512 MB first.
        """
        check_numeric_columns(X)
        X = arrow_numbers_as_float(X)
        if not reset:
            self._check_column_order(X)
        dtype = np.float64 if reset else (np.float64, np.float32)
        x = validate_data(self, X, reset=reset, dtype=dtype, ensure_all_finite=False)
        names = getattr(self, "feature_names_in_", None)
        check_finite(x, names, allow_nan=allow_nan, advice=advice)
        if reset:  # scoring takes any finite value: one beyond float32 scores as the most anomalous
            check_float32_range(x, names)
        return x

    def _checked_has_no_nan(self, x: np.ndarray) -> bool:
        """True when checked X (``_checked_values``) has no missing value. Where NaN is refused it
        holds none, and no pass over it is needed to find out."""
        return not self.__sklearn_tags__().input_tags.allow_nan or has_no_nan(x)

    def _fit_scaling(self, x: np.ndarray, noun: str) -> None:
        """Set ``mean_``, ``scale_`` and ``binary_features_`` from each column's observed values (NaN is
        missing); a column with none is refused, called ``noun`` ("Columns", "Channels") in the message."""
        # nanmean/nanstd copy X; without NaN the plain reductions give the same numbers 9x faster.
        complete = self._checked_has_no_nan(x)
        seen = np.ones(x.shape[1], dtype=bool) if complete else ~np.isnan(x).all(axis=0)
        if not seen.all():
            empty = [name for name, kept in zip(self._feature_names(), seen, strict=True) if not kept]
            raise ValueError(f"{noun} {empty} have no observed values in X; drop them or fill them.")
        self.mean_ = x.mean(axis=0) if complete else np.nanmean(x, axis=0)
        scale = _column_std(x, self.mean_) if complete else np.nanstd(x, axis=0)
        floored = np.maximum(scale, self.min_relative_scale * np.abs(self.mean_))
        keep = self.binary_features == "keep"
        self.binary_features_ = binary_columns(x) if keep else _no_binary_features(x.shape[1])
        self.scale_ = np.where((scale > 0) & ~self.binary_features_, floored, 1.0)

    def _standardized_rows(self, x: np.ndarray) -> tuple[StandardizedRows, ObservedRows | None]:
        """X standardized in float32 and its observed-value mask (None when nothing is missing), both
        read a slice of rows at a time, as scoring takes them."""
        complete = self._checked_has_no_nan(x)
        rows = StandardizedRows(x, self.mean_, self.scale_, complete)
        return rows, None if complete else ObservedRows(x)

    def _standardized(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """X standardized in float32, missing values at the column mean (0), and the observed-value
        mask as float32 (None when nothing is missing), as training takes them: whole arrays."""
        source, observed = self._standardized_rows(x)
        rows = np.empty(x.shape, dtype=np.float32)
        # In blocks of rows, so that the float64 temporaries stay small and in cache.
        for start in range(0, len(x), STANDARDIZE_BLOCK_ROWS):
            block = slice(start, start + STANDARDIZE_BLOCK_ROWS)
            rows[block] = source[block]
        return rows, None if observed is None else observed[:]

    def _check_column_order(self, X: Any) -> None:
        """Name the columns of a DataFrame that has the fitted columns in another order."""
        fitted = getattr(self, "feature_names_in_", None)
        if fitted is None or not isinstance(X, pd.DataFrame):
            return
        given = [str(name) for name in X.columns]
        expected = [str(name) for name in fitted]
        if given != expected and sorted(given) == sorted(expected):
            moved = [name for name, want in zip(given, expected, strict=True) if name != want]
            raise ValueError(
                f"X has the columns {type(self).__name__} was fitted on, but the feature names must be in "
                f"the same order as in fit: got {given}, expected {expected} ({moved} moved). Reorder "
                "them, e.g. X[detector.feature_names_in_]."
            )

    def _check_settings(self) -> None:
        """Check what the parameter constraints cannot before any work: hidden_dims, both devices, and
        n_threads against the CPUs the process may use (more are not used, with a warning)."""
        self._hidden_dims()
        resolve_device(self.device)
        resolve_device(self.scoring_device)
        cpus = available_cpus()
        if self.n_threads != "auto" and self.n_threads > cpus:
            warnings.warn(
                f"n_threads={self.n_threads} is more than the {cpus} CPU(s) this process may use; "
                f"{type(self).__name__} uses {cpus}.",
                UserWarning,
                stacklevel=3,
            )

    def _hidden_dims(self) -> tuple[int, ...]:
        dims = tuple(self.hidden_dims)
        if not all(isinstance(d, Integral) and not isinstance(d, bool) and d > 0 for d in dims):
            raise ValueError(f"hidden_dims must be positive integers, got {self.hidden_dims!r}.")
        return tuple(int(d) for d in dims)

    def _new_module(self, n_inputs: int, generator: torch.Generator) -> GaussianVAE:
        return GaussianVAE(n_inputs, self._hidden_dims(), self.latent_dim, generator)

    def _fit_and_threshold(
        self,
        X: Any,
        rows: np.ndarray,
        mask: np.ndarray | None,
        training_anomaly_scores: Callable[[], np.ndarray],
    ) -> None:
        """Train on ``rows``, set ``offset_`` from the training samples' scores and tell the callbacks.

        ``X`` is the raw training input, passed on to the callbacks; ``training_anomaly_scores`` scores
        the training samples once the module is fitted.
        """
        callbacks = registered_callbacks()
        for callback in callbacks:
            callback.on_fit_start(self)

        def epoch_ended(record: dict[str, float]) -> None:
            for callback in callbacks:
                callback.on_epoch_end(self, record)

        try:
            self._fit_vae(rows, mask, epoch_ended)
            scores = training_anomaly_scores()
            self.offset_ = self._offset_from(-scores)
            self.score_scale_ = _robust_spread(scores)
        except BaseException as error:
            for callback in callbacks:
                callback.on_fit_error(self, error)
            raise
        for callback in callbacks:
            callback.on_fit_end(self, X, scores)

    def _fit_vae(
        self, rows: np.ndarray, mask: np.ndarray | None, on_epoch_end: Callable[[dict[str, float]], None]
    ) -> None:
        """Train the VAE on standardized float32 ``rows``; sets module_, history_ and latent_noise_."""
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        generator = torch.Generator().manual_seed(seed)
        module = self._new_module(rows.shape[1], generator)
        config = self._training_config()
        work = batch_size_for(config, len(rows)) * module.multiply_adds_per_row()
        with torch_threads(choose_threads(self.n_threads, work)):
            self.history_ = train_vae(module, rows, config, seed, mask, on_epoch_end)
        self.module_ = module.to(self._module_dtype)
        self.latent_noise_ = (
            None
            if self.mc_samples is None
            else torch.randn(
                self.mc_samples, self.latent_dim, generator=generator, dtype=torch.float64
            ).numpy()
        )

    def _training_config(self) -> TrainingConfig:
        """The training settings among this detector's parameters."""
        settings = {name: getattr(self, name) for name in TrainingConfig.__dataclass_fields__}
        return TrainingConfig(**{**settings, "gap_injection": self._gap_injection_rate()})

    def _gap_injection_rate(self) -> float:
        """``gap_injection`` as a share: "auto" gives ``_auto_gap_injection`` where the detector takes
        missing values, else 0."""
        if self.gap_injection != "auto":
            return float(self.gap_injection)
        return self._auto_gap_injection if self.__sklearn_tags__().input_tags.allow_nan else 0.0

    def _offset_from(self, training_scores: np.ndarray) -> float:
        """Threshold on ``score_samples`` per ``contamination`` (see the class docstring)."""
        ordered = np.sort(training_scores)
        if self.contamination == "auto":
            q1, q3 = np.percentile(-ordered, [25, 75])
            return float(-(q3 + AUTO_FENCE_IQR_MULTIPLE * (q3 - q1)))
        n_flagged = min(max(1, round(self.contamination * len(ordered))), len(ordered))
        if n_flagged == len(ordered):
            return float(np.nextafter(ordered[-1], np.inf))
        # Midway between the last flagged and the first kept score: exactly n_flagged rows fall below.
        return float((ordered[n_flagged - 1] + ordered[n_flagged]) / 2)

    def feature_frame(self, X: Any) -> pd.DataFrame:
        """X as the detector reads it: one float column per feature, indexed like its outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input as ``fit`` takes it.

        Returns
        -------
        DataFrame of shape (n_samples, n_features_in_)
            Columns are the feature names (``x0, x1, ...`` without names); the index is X's index, or
            for a series its timestamps.
        """
        check_is_fitted(self, "n_features_in_")
        values, index = self._values_and_index(X)
        return pd.DataFrame(values, columns=self._feature_names(), index=index)

    @abstractmethod
    def _values_and_index(self, X: Any) -> tuple[np.ndarray, pd.Index]:
        """X's checked values (float64, NaN where missing) and the index its outputs carry."""

    @contextmanager
    def _row_scorer(self) -> Iterator[Callable[..., SampleScores]]:
        """``score_rows`` with the fitted module on the scoring device (``scoring_device``), its latent
        draws and its scoring workers; torch's threads are set inside the block."""
        device = resolve_device(self.scoring_device)
        module = self.module_ if device.type == "cpu" else _device_copy(self.module_, device)
        work = scoring_batch_rows(self.module_.n_features, device) * self.module_.multiply_adds_per_row()
        workers = scoring_workers(self.n_threads, work) if device.type == "cpu" else 1
        with torch_threads(choose_threads(self.n_threads, work)):
            yield functools.partial(score_rows, module, latent_noise=self.latent_noise_, workers=workers)

    @staticmethod
    def _select(scores: SampleScores, kind: str) -> np.ndarray:
        if kind not in ("elbo", "reconstruction"):
            raise ValueError(f"kind must be 'elbo' or 'reconstruction', got {kind!r}.")
        return scores.neg_elbo if kind == "elbo" else scores.reconstruction_error

    @property
    def anomaly_threshold_(self) -> float:
        """Samples whose ``anomaly_score`` is above this are predicted outliers (it is ``-offset_``)."""
        check_is_fitted(self, "offset_")
        return -self.offset_

    @abstractmethod
    def anomaly_score(self, X: Any, kind: ScoreKind | None = None) -> np.ndarray:
        """Anomaly score of each sample: higher is more anomalous (implemented by each detector)."""

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality score of each sample: higher is more normal (the negated ``anomaly_score``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return -self.anomaly_score(X)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """Label each sample +1 (inlier) or -1 (outlier).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to label: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples,), int
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probability that each sample is normal (column 0) and anomalous (column 1).

        The anomaly probability is Phi((s - t) / scale): s is the sample's ``anomaly_score``, t the
        ``anomaly_threshold_`` and ``scale`` the robust spread of the training scores (their IQR /
        1.349), Gaussian scaling as in Kriegel et al. (2011). It is 0.5 at the threshold, so it is
        above 0.5 exactly for the samples ``predict`` flags, and it grows with the score. Without
        labels it is calibrated to the training scores, not to how often a flagged sample really is
        an anomaly; with labels, check it (``sklearn.calibration.calibration_curve``) or recalibrate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples to score: rows, or timestamps for the time-series detector.

        Returns
        -------
        ndarray of shape (n_samples, 2), float64
            Rows sum to 1.

        References
        ----------
        .. [1] H.-P. Kriegel, P. Kroger, E. Schubert and A. Zimek, "Interpreting and Unifying Outlier
           Scores", SDM 2011.
        """
        outlier = self.probability_of_anomaly(self.anomaly_score(X))
        return np.column_stack([1.0 - outlier, outlier])

    def probability_of_anomaly(self, anomaly_scores: np.ndarray) -> np.ndarray:
        """The anomaly probability of ``predict_proba`` for scores already computed.

        Parameters
        ----------
        anomaly_scores : ndarray of shape (n_samples,)
            Scores from ``anomaly_score`` (the ``score_method`` kind).

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self, "score_scale_")
        standardized = (
            np.asarray(anomaly_scores, dtype=np.float64) - self.anomaly_threshold_
        ) / self.score_scale_
        return 0.5 * scipy.special.erfc(-standardized / np.sqrt(2.0))

    # ------------------------------------------------------------ persistence
    def _saved_attributes(self) -> dict[str, Any]:
        """Fitted attributes besides the weights, as JSON values; subclasses add their own."""
        attributes: dict[str, Any] = {
            "n_features_in_": int(self.n_features_in_),
            "offset_": float(self.offset_),
            "score_scale_": float(self.score_scale_),
            "history_": self.history_,
        }
        if hasattr(self, "feature_names_in_"):
            attributes["feature_names_in_"] = [str(name) for name in self.feature_names_in_]
        return attributes

    def _restore_attributes(self, attributes: dict[str, Any]) -> None:
        """Set what ``_saved_attributes`` wrote; subclasses restore their own too."""
        self.n_features_in_ = attributes["n_features_in_"]
        self.offset_ = attributes["offset_"]
        self.score_scale_ = attributes["score_scale_"]
        self.history_ = attributes["history_"]
        if "feature_names_in_" in attributes:
            self.feature_names_in_ = np.asarray(attributes["feature_names_in_"], dtype=object)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Save the fitted detector to a folder: a JSON config plus safetensors weights, no pickle.

        Parameters
        ----------
        path : str or PathLike
            Folder to write, atomically: an existing model folder there is replaced only once the new
            one is complete, and a path holding anything else is refused (``FileExistsError``).
        """
        check_is_fitted(self, "module_")
        params = self.get_params()
        params["hidden_dims"] = list(self._hidden_dims())
        if not isinstance(params["random_state"], Integral):
            params["random_state"] = None  # a RandomState instance is not JSON; the fit is done anyway
        attributes = {**self._saved_attributes(), "module_inputs": self.module_.to_x_mean.out_features}
        tensors = {f"module.{name}": t for name, t in self.module_.state_dict().items()}
        tensors["mean_"] = torch.from_numpy(self.mean_)
        tensors["scale_"] = torch.from_numpy(self.scale_)
        tensors["binary_features_"] = torch.from_numpy(self.binary_features_)
        if self.latent_noise_ is not None:
            tensors["latent_noise_"] = torch.from_numpy(self.latent_noise_)
        save_model(path, type(self).__name__, params, attributes, tensors)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Any:
        """Load a detector written by :meth:`save`.

        Parameters
        ----------
        path : str or PathLike
            Folder written by ``save``.

        Returns
        -------
        detector
            The fitted detector, on the CPU, of the class ``load`` was called on.

        Raises
        ------
        ModelFileError
            If the folder is missing, tampered with, corrupted, from a newer format version or holds
            another kind of detector.
        """
        saved: SavedModel = load_model(path, cls.__name__)
        try:
            params = {**_PARAMETERS_BEFORE_THEY_EXISTED, **saved.params}
            detector = cls(**{**params, "hidden_dims": tuple(params["hidden_dims"])})
            detector._validate_params()
            # Every weight is overwritten by the saved state below, so the generator's seed is moot.
            module = detector._new_module(saved.attributes["module_inputs"], torch.Generator())
            prefix = "module."
            module.to(cls._module_dtype).load_state_dict(
                {k[len(prefix) :]: v for k, v in saved.tensors.items() if k.startswith(prefix)}
            )
            detector._restore_attributes(saved.attributes)
        except (TypeError, ValueError, KeyError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid {cls.__name__}: {error}") from error
        detector.module_ = module.eval()
        detector.mean_ = saved.tensors["mean_"].numpy()
        detector.scale_ = saved.tensors["scale_"].numpy()
        binary = saved.tensors.get("binary_features_")  # absent from models saved before it existed
        n_features = len(detector.scale_)
        detector.binary_features_ = _no_binary_features(n_features) if binary is None else binary.numpy()
        noise = saved.tensors.get("latent_noise_")
        detector.latent_noise_ = None if noise is None else noise.numpy()
        detector._check_loaded_shapes(path)
        return detector

    def _module_inputs(self) -> int:
        """How many inputs the fitted module takes: one per feature (a series' windows: more)."""
        return int(self.n_features_in_)

    def _check_loaded_shapes(self, path: str | os.PathLike[str]) -> None:
        """Refuse a loaded model whose arrays do not fit its config, naming the array: they would
        fail at scoring with a broadcasting error, far from the cause."""
        n_features = int(self.n_features_in_)
        expected = {
            "mean_": (n_features,),
            "scale_": (n_features,),
            "binary_features_": (n_features,),
            "module inputs": (self._module_inputs(),),
        }
        found = {
            "mean_": self.mean_.shape,
            "scale_": self.scale_.shape,
            "binary_features_": self.binary_features_.shape,
            "module inputs": (self.module_.n_features,),
        }
        if self.latent_noise_ is not None:
            expected["latent_noise_"] = (self.mc_samples, self.latent_dim)
            found["latent_noise_"] = self.latent_noise_.shape
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            expected["feature_names_in_"], found["feature_names_in_"] = (n_features,), names.shape
        wrong = [
            f"{name} has shape {found[name]}, expected {shape}"
            for name, shape in expected.items()
            if found[name] != shape
        ]
        if wrong:
            raise ModelFileError(
                f"{path} does not describe a valid {type(self).__name__} with {n_features} features: "
                f"{'; '.join(wrong)}. Save the model again from the fitted detector."
            )
