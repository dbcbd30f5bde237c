"""Bundles: a detector or Pipeline as a folder that round-trips exactly and refuses untrusted code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from vae_anomaly import ModelFileError, VAEAnomalyDetector
from vae_anomaly.bundle import PREPROCESSING_FILE, load_bundle, save_bundle
from vae_anomaly.composition import model_parts
from vae_anomaly.frames import score_frame
from vae_anomaly.manifests import write_manifest
from vae_anomaly.model_folder import BUNDLE_FILE
from vae_anomaly.pipelines import tabular_pipeline

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "sample_data"


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return pd.read_parquet(SAMPLE_DATA / "tabular.parquet").drop(columns="is_anomaly").head(800)


def test_pipeline_bundle_round_trips_exactly(features, tmp_path):
    model = tabular_pipeline(epochs=3, random_state=0).fit(features)
    loaded = load_bundle(save_bundle(model, tmp_path / "bundle"))
    pd.testing.assert_frame_equal(score_frame(loaded, features), score_frame(model, features))
    assert [name for name, _ in loaded.steps] == ["features", "detector"]


def test_a_detector_alone_and_a_plain_save_folder_load(planted_frame, tmp_path):
    detector = VAEAnomalyDetector(epochs=2, random_state=0).fit(planted_frame)
    detector.save(tmp_path / "saved")
    save_bundle(detector, tmp_path / "bundle")
    for folder in ("saved", "bundle"):
        loaded = load_bundle(tmp_path / folder)
        np.testing.assert_array_equal(
            loaded.score_samples(planted_frame), detector.score_samples(planted_frame)
        )


def test_untrusted_preprocessing_is_refused_when_saving(planted_frame, tmp_path):
    model = make_pipeline(FunctionTransformer(np.round), VAEAnomalyDetector(epochs=1)).fit(planted_frame)
    with pytest.raises(ValueError, match=r"does not trust: \['numpy.round'\]"):
        save_bundle(model, tmp_path / "bundle")


def test_untrusted_preprocessing_is_refused_when_loading(planted_frame, tmp_path):
    model = make_pipeline(StandardScaler(), VAEAnomalyDetector(epochs=1, random_state=0)).fit(planted_frame)
    folder = save_bundle(model, tmp_path / "bundle")
    # Someone swaps in preprocessing that would call a function on load or transform, and rewrites
    # the manifest's checksums to match: the trusted-type check still refuses it.
    skops.io.dump(make_pipeline(FunctionTransformer(print)), folder / PREPROCESSING_FILE)
    manifest = json.loads((folder / BUNDLE_FILE).read_text())
    write_manifest(folder, BUNDLE_FILE, {k: v for k, v in manifest.items() if k not in ("files", "sha256")})
    with pytest.raises(ModelFileError, match="untrusted types"):
        load_bundle(folder)


def test_a_swapped_preprocessing_file_fails_its_checksum(planted_frame, tmp_path):
    model = make_pipeline(StandardScaler(), VAEAnomalyDetector(epochs=1, random_state=0)).fit(planted_frame)
    folder = save_bundle(model, tmp_path / "bundle")
    skops.io.dump(make_pipeline(StandardScaler()), folder / PREPROCESSING_FILE)
    with pytest.raises(ModelFileError, match=r"preprocessing\.skops does not match the checksum"):
        load_bundle(folder)


def test_saving_a_detector_over_a_bundle_leaves_only_the_detector(planted_frame, tmp_path):
    pipeline = make_pipeline(StandardScaler(), VAEAnomalyDetector(epochs=1, random_state=0)).fit(
        planted_frame
    )
    save_bundle(pipeline, tmp_path / "model")
    detector = VAEAnomalyDetector(epochs=2, random_state=1).fit(planted_frame)
    detector.save(tmp_path / "model")
    loaded = load_bundle(tmp_path / "model")
    assert isinstance(loaded, VAEAnomalyDetector)
    np.testing.assert_array_equal(loaded.score_samples(planted_frame), detector.score_samples(planted_frame))


def test_a_newer_bundle_format_asks_for_an_upgrade(planted_frame, tmp_path):
    folder = save_bundle(VAEAnomalyDetector(epochs=1).fit(planted_frame), tmp_path / "bundle")
    (folder / "bundle.json").write_text(
        '{"format_version": 99, "detector": "VAEAnomalyDetector", "steps": null}'
    )
    with pytest.raises(ModelFileError, match=r"version 99.*upgrade vae-anomaly"):
        load_bundle(folder)


def test_model_parts_names_what_it_got():
    with pytest.raises(TypeError, match="got Pipeline ending in StandardScaler"):
        model_parts(make_pipeline(StandardScaler()))
