"""The parameters both detectors share: their constraints, their documentation, and the values that
models saved or pickled before a parameter existed were fitted with."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from sklearn.utils._param_validation import Interval, StrOptions

from vae_anomaly.scaling import no_binary_features

SHARED_PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    # These two have defaults of each detector's own (the time-series detector declares its own).
    "binary_features": [StrOptions({"keep", "standardize"})],
    "early_weight": [Interval(Real, 0, None, closed="left")],
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
    "gap_fill": [StrOptions({"reconstruction", "mean"})],
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
    gap_fill : {"reconstruction", "mean"}, default="reconstruction"
        What a missing value (NaN) enters the encoder as when a sample is scored. "mean": the
        feature's training mean. "reconstruction": the model's reconstruction of the sample filled
        with the means (one step of Donut's imputation), so that the code the encoder gives fits
        what was observed. A 10-point gap in one channel of a 4-channel sine raised its timestamps'
        scores by 1.75 nats with "mean", flagging 56% of them, and by 0.003 with "reconstruction"
        (4%, against 1.2% of complete timestamps); on tables trained with ``gap_injection`` the two
        score alike. Scoring samples with gaps costs one more pass of the model; complete data is
        scored as before. Models saved before this parameter existed load with "mean".
    validation_fraction : float, default=0.2 (0.1 for ``TimeSeriesVAEDetector``)
        Share of the samples held out of training for early stopping. ``VAEAnomalyDetector`` holds out
        random rows and sets its threshold on their scores, as new data's (see ``contamination``).
        Where the fraction comes to fewer than 16 rows, too few to validate on (under 78 at the
        default), a table of 10 rows or more trains on all of them and sets the threshold on
        out-of-fold scores, each row scored by one of five copies of the detector fitted on the
        other rows (five more fits), and trains every planned epoch; a table of under 10 rows (or
        one with a column observed in too few rows for those copies) sets it on its own training
        scores, with a warning (unless 0): expect more false alarms on new data then.
        ``TimeSeriesVAEDetector`` holds out blocks of two windows' length (at least two, spread
        evenly), and trains on no window within a window of them, so that early stopping sees the
        model fit its training windows too closely (a window shifted by a step is nearly the same
        window); a series too short for that (under about 10 windows' length with two blocks)
        validates on random training windows instead (none if fewer than 16), sets its threshold on
        the training timestamps' scores, and warns (``ShortSeriesWarning``): expect more false
        alarms on new data.
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
        Sets ``offset_``. ``VAEAnomalyDetector``: the share of new rows like the held-out ones
        (``validation_fraction``) to flag, the quantile of the held-out rows' scores (extrapolated from
        an exponential fit to their highest tenth where fewer than 5 would lie above it, a Pareto fit
        where fewer than 1 would); "auto" is 0.005. The rows the model trained on score lower than
        new ones, so fewer of them are flagged.
        ``TimeSeriesVAEDetector`` (and a table with too few rows to hold out): the share of the
        training timestamps to flag; "auto" flags those whose anomaly score lies above Tukey's upper
        fence, Q3 + 1.5 * IQR of the training scores. Where a series holds out blocks, the threshold is
        the higher of that and the same rule on the blocks' timestamps (each block scored as a series
        of its own), which the model did not train on. A series sets each rule on its timestamps
        scored with the windows at every phase of the ``stride`` and takes the highest, since new
        data is cut from its own first timestamp: ``predict`` on the training series flags at most
        that share of it.
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
        padded (on CUDA to one shape, on the CPU to a multiple of 16 rows), so a sample's score does
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
    "early_weight": 0.0,
    "gap_injection": 0.0,
    "gap_fill": "mean",
    "min_relative_scale": 0.0,
}


def detector_parameters(cls: type) -> type:
    """Class decorator: write a detector's ``__init__`` from its parameters, declared as annotated
    class attributes with their defaults (a dataclass's fields).

    Every argument is keyword-only and stored unchanged, as scikit-learn's ``get_params``, ``clone``
    and ``set_params`` need, and a subclass inherits the parameters declared above it; equality,
    hashing and ``repr`` stay scikit-learn's. The ``__init__``'s annotations are resolved where each
    parameter is declared, so that ``typing.get_type_hints`` reads them in any subclass's module.
    """
    cls = dataclass(eq=False, repr=False, kw_only=True)(cls)
    declared: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):  # a subclass's declaration replaces its base's
        if "__dataclass_fields__" in vars(klass):
            hints = typing.get_type_hints(klass)  # evaluated in klass's module; its own come last
            declared.update({name: hints[name] for name in vars(klass).get("__annotations__", {})})
    cls.__init__.__annotations__ = {  # type: ignore[misc]
        name: declared.get(name, annotation) for name, annotation in cls.__init__.__annotations__.items()
    }
    return cls


def document_shared_parameters(cls: type) -> type:
    """Class decorator: replace the docstring line ``    %(shared_parameters)s`` by their documentation."""
    if cls.__doc__ is None or _SHARED_PARAMETERS_MARKER not in cls.__doc__:
        raise TypeError(f"{cls.__name__}'s docstring lacks the line '{_SHARED_PARAMETERS_MARKER.strip()}'.")
    cls.__doc__ = cls.__doc__.replace(_SHARED_PARAMETERS_MARKER, SHARED_PARAMETERS_DOC)
    return cls


def with_old_model_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` completed as a detector saved or pickled before some parameters existed was fitted.

    The one place both unpickling and ``load`` fill in what an old model lacks: each later parameter
    takes the value that reproduces its old behaviour, not the new default, so that ``get_params`` and
    ``clone`` tell the truth about it; a fitted model without ``binary_features_`` scaled every feature,
    and one without ``early_module_`` scored with its final weights alone.

    Parameters
    ----------
    values : dict
        A pickled detector's state, or a saved model's parameters (with its fitted ``scale_``, if any).

    Returns
    -------
    dict
        A new dict; ``values`` is left as it is.
    """
    filled = {**_PARAMETERS_BEFORE_THEY_EXISTED, **values}
    if "module_" in filled and "early_module_" not in filled:
        filled.update(early_module_=None, early_share_=None)
    if "scale_" in filled and filled.get("binary_features_") is None:
        filled["binary_features_"] = no_binary_features(len(filled["scale_"]))
    return filled
