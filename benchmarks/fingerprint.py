"""Fingerprints of what the detectors compute, to show that a change to the code changes none of it.

Fits the README's examples, one ADBench table, one multivariate series and a table with missing
values, each with a fixed seed, and hashes (SHA-256) every output a user sees: both anomaly scores,
``score_samples``, ``decision_function``, ``predict``, ``predict_proba``, ``score_components``,
``explain`` (shares and parts), ``feature_frame``, the training history, the files ``save`` writes,
and the MLflow model (its artifacts, less the copied source and the lines that name the run or the
checkout, the skops file read past its time stamps and array names; and what the loaded pyfunc model
predicts). Run it on two checkouts and compare:

    python benchmarks/fingerprint.py --out /tmp/before.json         # in the old checkout
    python benchmarks/fingerprint.py --out /tmp/after.json --compare /tmp/before.json

ADBench: https://github.com/Minqi824/ADBench (``datasets/Classical/6_cardio.npz``); the multivariate
series: SKAB, https://github.com/waico/SKAB (``other/1.csv``), as a parquet file of its channels with a
``timestamp`` column (``DATA/multivariate/skab_other_1.parquet`` as ``../shared/data`` holds it).
Without them (``--data`` absent) those two cases are left out and say so.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"

from vae_anomaly import TimeSeriesVAEDetector, VAEAnomalyDetector, tracking  # noqa: E402
from vae_anomaly.pipelines import tabular_pipeline  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data"
# MLmodel lines that differ from run to run, or from checkout to checkout, whatever the models.
_RUN_LINES = (
    "run_id:",
    "utc_time_created:",
    "model_uuid:",
    "artifact_path:",
    "model_id:",
    "uri:",
    "model_code_path:",
    "model_size_bytes:",
)


def _digest(value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        payload = pd.util.hash_pandas_object(value, index=True).to_numpy().tobytes()
        payload += json.dumps([str(c) for c in value.columns]).encode()
    elif isinstance(value, np.ndarray):
        payload = np.ascontiguousarray(value).tobytes() + str(value.dtype).encode()
    else:
        payload = json.dumps(value, sort_keys=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def _folder_digests(folder: Path, skip: Callable[[Path], bool] = lambda path: False) -> dict[str, str]:
    digests = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not skip(p)):
        data = path.read_bytes()
        if path.suffix == ".skops":  # a zip file, time-stamped, naming objects by their id()
            with zipfile.ZipFile(path) as archive:
                members = [archive.read(name) for name in archive.namelist()]
            data = b"".join(sorted(re.sub(rb"\d{12,}", b"N", member) for member in members))
        elif path.name == "bundle.json":  # holds the checksum of the time-stamped skops file
            manifest = json.loads(data)
            manifest["files"] = {k: v for k, v in manifest["files"].items() if not k.endswith(".skops")}
            data = json.dumps({**manifest, "sha256": None}, sort_keys=True).encode()
        elif path.name == "MLmodel":
            lines = data.decode().splitlines()
            data = "\n".join(line for line in lines if not line.strip().startswith(_RUN_LINES)).encode()
        digests[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()[:16]
    return digests


def _outputs(model: Any, X: Any, work: Path, name: str) -> dict[str, Any]:
    detector = model[-1] if hasattr(model, "steps") else model
    found: dict[str, Any] = {}
    calls = {
        "score_samples": lambda: model.score_samples(X),
        "decision_function": lambda: model.decision_function(X),
        "predict": lambda: model.predict(X),
        "predict_proba": lambda: model.predict_proba(X),
    }
    if not hasattr(model, "steps"):
        calls |= {
            "anomaly_score elbo": lambda: model.anomaly_score(X, "elbo"),
            "anomaly_score reconstruction": lambda: model.anomaly_score(X, "reconstruction"),
            "score_components": lambda: model.score_components(X),
            "explain shares": lambda: model.explain(X),
            "explain parts": lambda: model.explain(X, shares=False),
            "feature_frame": lambda: model.feature_frame(X),
        }
    for call, compute in calls.items():
        found[call] = _digest(compute())
    found["history_"] = _digest(detector.history_)
    found["offset_"] = repr(detector.offset_)
    if not hasattr(model, "steps"):
        model.save(work / f"{name}.saved")
        found["saved files"] = _folder_digests(work / f"{name}.saved")
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X, columns=detector._feature_names())
    import mlflow

    with mlflow.start_run():
        info = tracking.log_model(
            model, name, input_example=frame.head(max(5, getattr(detector, "window_", 5)))
        )
    local = Path(mlflow.artifacts.download_artifacts(info.model_uri, dst_path=str(work / f"{name}.mlflow")))
    found["mlflow files"] = _folder_digests(local, skip=lambda path: "code" in path.relative_to(local).parts)
    served = mlflow.pyfunc.load_model(str(local))
    found["pyfunc predict"] = _digest(served.predict(frame))
    found["pyfunc contributions"] = _digest(served.predict(frame, params={"contributions": True}))
    return found


def _cases(data: Path) -> dict[str, Callable[[], tuple[Any, Any]]]:
    sample = pd.read_parquet(ROOT / "sample_data" / "tabular.parquet")

    def quickstart() -> tuple[Any, Any]:
        X = sample[["requests_per_s", "cpu_pct", "latency_ms"]]
        return VAEAnomalyDetector(contamination=0.02, random_state=0).fit(X), X

    def pipeline() -> tuple[Any, Any]:
        X = sample.drop(columns="is_anomaly")
        return tabular_pipeline(contamination=0.02, random_state=0).fit(X), X

    def series(**params: Any) -> Callable[[], tuple[Any, Any]]:
        def fitted() -> tuple[Any, Any]:
            index = pd.date_range("2024-01-01", periods=4000, freq="5min")
            noise = np.random.default_rng(0).normal(0, 0.05, 4000)
            cpu = pd.DataFrame({"cpu": np.sin(np.arange(4000) * 2 * np.pi / 288) + noise}, index=index)
            cpu.iloc[3500:3510] += 1.0
            cpu.iloc[1000:1020] = np.nan
            return TimeSeriesVAEDetector(random_state=0, **params).fit(cpu.iloc[:3000]), cpu

        return fitted

    def missing_table() -> tuple[Any, Any]:
        rng = np.random.default_rng(0)
        a, b, c = rng.normal(size=(3, 1200))
        x = np.column_stack([a, b, a + b + 0.01 * rng.normal(size=1200), c, 2 * c])
        x[rng.random(x.shape) < 0.05] = np.nan
        frame = pd.DataFrame(x, columns=list("abdce"))
        detector = VAEAnomalyDetector(missing="skip", mc_samples=4, random_state=0).fit(frame.iloc[:900])
        return detector, frame

    cases = {
        "readme quickstart": quickstart,
        "readme pipeline": pipeline,
        "readme series": series(),
        "readme series min": series(aggregation="min"),
        "table with missing values": missing_table,
    }
    cardio, skab = data / "adbench" / "6_cardio.npz", data / "multivariate" / "skab_other_1.parquet"
    if cardio.exists():

        def adbench() -> tuple[Any, Any]:
            x = np.load(cardio)["X"]
            return VAEAnomalyDetector(random_state=0).fit(x), x

        cases["adbench cardio"] = adbench
    else:
        print(f"left out: {cardio} is absent", file=sys.stderr)
    if skab.exists():

        def multivariate() -> tuple[Any, Any]:
            frame = pd.read_parquet(skab).set_index("timestamp").drop(columns=["label", "split"])
            return TimeSeriesVAEDetector(window=32, random_state=0).fit(frame.iloc[:400]), frame

        cases["multivariate skab_other_1"] = multivariate
    else:
        print(f"left out: {skab} is absent", file=sys.stderr)
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder with adbench/ and multivariate/"
    )
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write the fingerprints to")
    parser.add_argument("--compare", type=Path, help="fingerprints of another checkout to compare with")
    arguments = parser.parse_args()
    cases = _cases(arguments.data)
    found = {}
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = Path(folder)
        os.chdir(work)  # MLflow's artifacts go here
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{work / 'mlflow.db'}")
        for name, fit in cases.items():
            model, X = fit()
            found[name] = _outputs(model, X, work, name.replace(" ", "_"))
            print(f"{name}: {len(found[name])} outputs", file=sys.stderr)
    arguments.out.write_text(json.dumps(found, indent=1, sort_keys=True))
    if arguments.compare is None:
        return
    before = json.loads(arguments.compare.read_text())
    rows = []
    for name in sorted(set(before) | set(found)):
        for key in sorted(set(before.get(name, {})) | set(found.get(name, {}))):
            old, new = before.get(name, {}).get(key), found.get(name, {}).get(key)
            rows.append({"case": name, "output": key, "same": old == new})
    table = pd.DataFrame(rows)
    print(
        table.groupby("case")["same"]
        .agg(["sum", "count"])
        .rename(columns={"sum": "same", "count": "outputs"})
    )
    differ = table[~table["same"]]
    print("\nall identical" if differ.empty else f"\ndiffering:\n{differ.to_string(index=False)}")
    sys.exit(0 if differ.empty else 1)


if __name__ == "__main__":
    main()
