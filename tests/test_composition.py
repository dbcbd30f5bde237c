"""The detector composes with scikit-learn: clone, Pipeline, ColumnTransformer, GridSearchCV, pandas."""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from vae_anomaly import VAEAnomalyDetector, anomaly_average_precision_scorer, anomaly_roc_auc_scorer


def test_pipeline_with_scaler_scores_like_the_detector(planted):
    x, y = planted
    pipeline = make_pipeline(StandardScaler(), VAEAnomalyDetector(random_state=0)).fit(x)
    assert pipeline.predict(x).shape == (len(x),)
    assert set(np.unique(pipeline.predict(x))) == {-1, 1}
    assert anomaly_roc_auc_scorer(pipeline, x, y) > 0.95


def test_column_transformer_with_categoricals(planted_frame, planted):
    frame = planted_frame.assign(site=np.where(np.arange(len(planted_frame)) % 2, "a", "b"))
    numeric = list(planted_frame.columns)
    pipeline = Pipeline(
        [
            (
                "features",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), numeric),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["site"]),
                    ],
                    sparse_threshold=0,
                ),
            ),
            ("detector", VAEAnomalyDetector(random_state=0)),
        ]
    ).fit(frame)
    assert anomaly_roc_auc_scorer(pipeline, frame, planted[1]) > 0.95
    unseen = frame.head(5).assign(site="never seen")
    assert pipeline.score_samples(unseen).shape == (5,)


def test_scorers_orient_labels_as_one_is_anomaly(planted):
    x, y = planted
    detector = VAEAnomalyDetector(random_state=0).fit(x)
    assert anomaly_roc_auc_scorer(detector, x, y) > 0.95
    assert anomaly_average_precision_scorer(detector, x, y) > 0.8
    assert anomaly_roc_auc_scorer(detector, x, 1 - y) < 0.05


def test_scorers_rank_a_value_beyond_float32_as_the_most_anomalous(planted):
    x, y = planted
    detector = VAEAnomalyDetector(epochs=5, random_state=0).fit(x)
    beyond, labels = x.copy(), y.copy()
    beyond[0, 3], labels[0] = 1e39, 1  # score_samples gives -inf there
    assert detector.score_samples(beyond)[0] == -np.inf
    normal_only = labels == 0
    normal_only[0] = True
    assert anomaly_roc_auc_scorer(detector, beyond[normal_only], labels[normal_only]) == 1.0
    assert anomaly_average_precision_scorer(detector, beyond[normal_only], labels[normal_only]) == 1.0


def test_grid_search_picks_the_better_model_with_the_anomaly_scorer(planted):
    x, y = planted
    search = GridSearchCV(
        VAEAnomalyDetector(random_state=0),
        # latent_dim=1 cannot hold the 2-D manifold the normal rows lie on
        {"latent_dim": [1, 4]},
        scoring=anomaly_roc_auc_scorer,
        cv=KFold(3, shuffle=True, random_state=0),
    ).fit(x, y)
    assert search.best_params_ == {"latent_dim": 4}
    assert search.best_score_ > 0.95


def test_cross_val_score_with_builtin_roc_auc_is_inverted(planted):
    """Why the scorer exists: sklearn's "roc_auc" ranks by decision_function (high = normal)."""
    x, y = planted
    detector = VAEAnomalyDetector(epochs=5, random_state=0)
    builtin = cross_val_score(detector, x, y, scoring="roc_auc", cv=2)
    ours = cross_val_score(detector, x, y, scoring=anomaly_roc_auc_scorer, cv=2)
    np.testing.assert_allclose(builtin, 1 - ours)
