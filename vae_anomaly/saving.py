"""Saving a fitted detector to a folder and loading it back: JSON config plus safetensors, no pickle.

``SavedDetector`` gives both detectors ``save`` and ``load`` over the file format of ``persistence``;
each detector adds what it alone fits through ``_saved_attributes`` and ``_restore_attributes``.
"""

from __future__ import annotations

import os
from numbers import Integral
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from vae_anomaly.manifests import ModelFileError
from vae_anomaly.model import GaussianVAE
from vae_anomaly.parameters import with_old_model_defaults
from vae_anomaly.persistence import SavedModel, load_model, save_model


class SavedDetector:
    """``save`` and ``load`` for a detector; the detector gives ``_new_module`` and ``_hidden_dims``."""

    _module_dtype: ClassVar[torch.dtype]
    module_: GaussianVAE
    early_module_: GaussianVAE | None
    early_share_: dict[str, float] | None
    mean_: np.ndarray
    scale_: np.ndarray
    binary_features_: np.ndarray
    latent_noise_: np.ndarray | None

    def _saved_attributes(self) -> dict[str, Any]:
        """Fitted attributes besides the weights, as JSON values; subclasses add their own."""
        attributes: dict[str, Any] = {
            "n_features_in_": int(self.n_features_in_),
            "offset_": float(self.offset_),
            "score_scale_": float(self.score_scale_),
            "history_": self.history_,
            "early_share_": self.early_share_,
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
        self.early_share_ = attributes.get("early_share_")  # absent from models saved before it existed
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
        if self.early_module_ is not None:
            tensors.update({f"early_module.{k}": t for k, t in self.early_module_.state_dict().items()})
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
            params = with_old_model_defaults(saved.params)
            detector = cls(**{**params, "hidden_dims": tuple(params["hidden_dims"])})
            detector._validate_params()
            detector.module_ = detector._loaded_module(saved, "module.")
            early = any(name.startswith("early_module.") for name in saved.tensors)
            detector.early_module_ = detector._loaded_module(saved, "early_module.") if early else None
            detector._restore_attributes(saved.attributes)
            if early != (detector.early_share_ is not None):
                raise ValueError("the early module's weights and early_share_ must come together")
        except (TypeError, ValueError, KeyError, RuntimeError) as error:
            raise ModelFileError(f"{path} does not describe a valid {cls.__name__}: {error}") from error
        detector.mean_ = saved.tensors["mean_"].numpy()
        detector.scale_ = saved.tensors["scale_"].numpy()
        binary = saved.tensors.get("binary_features_")  # absent from models saved before it existed
        arrays = {"scale_": detector.scale_, "binary_features_": None if binary is None else binary.numpy()}
        detector.binary_features_ = with_old_model_defaults(arrays)["binary_features_"]
        noise = saved.tensors.get("latent_noise_")
        detector.latent_noise_ = None if noise is None else noise.numpy()
        detector._check_loaded_shapes(path)
        return detector

    def _loaded_module(self, saved: SavedModel, prefix: str) -> GaussianVAE:
        """The module whose weights ``saved`` holds under ``prefix``, in eval mode."""
        # Every weight is overwritten by the saved state, so the generator's seed is moot.
        module = self._new_module(saved.attributes["module_inputs"], torch.Generator())
        module.to(self._module_dtype).load_state_dict(
            {k[len(prefix) :]: v for k, v in saved.tensors.items() if k.startswith(prefix)}
        )
        return module.eval()

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
        if self.early_module_ is not None:
            expected["early module inputs"] = expected["module inputs"]
            found["early module inputs"] = (self.early_module_.n_features,)
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
