"""Every Python block of the README runs as pasted, from a folder like the repository root, and prints
what the README says it prints."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
# What a block must print, by a line of its code; blocks absent here need only run.
EXPECTED_OUTPUT = {
    "print(pd.crosstab(": r"-1\s+\d+\s+53\b",  # "53 of the 80 planted anomalies"
    "rows flagged, {data.is_anomaly": r"79 rows flagged, (82|\d\d)% of them planted anomalies\n"
    r"0 of the 60 rows with a missing memory_gb flagged",
    ".sum())  # 20 missing points": r"\n20\n",
    "print(registration.version,": r"1 True no champion yet",
    "(8 clean points)": r"'2024-01-1(1 16:00|[1-3] \d\d:\d\d):00', '2024-01-13 (04:35|0[45]:\d\d):00'",
}
# The README shows what a CPU-trained model prints, and says a CUDA (bf16) fit flags a few other rows
# (another share of planted anomalies; Jan 11 16:20 rather than 16:00 as the time-series block's first
# flag on an H100), so there the alternatives after the first in each "(a|b)" are allowed.
ON_CPU = not (torch.cuda.is_available() or torch.backends.mps.is_available())
if ON_CPU:
    EXPECTED_OUTPUT = {k: re.sub(r"\(([^|()]+)\|[^()]*\)", r"\1", v) for k, v in EXPECTED_OUTPUT.items()}
# Blocks for software this project does not install by default; the Spark one is slow too.
NEEDS = {"from airflow": "airflow", "from pyspark.sql import": "pyspark"}


def _param(number: int, block: str) -> object:
    first = next(line for line in block.splitlines() if line.startswith(("from ", "import ")))
    needed = [module for fragment, module in NEEDS.items() if fragment in block]
    marks = [pytest.mark.slow] if "pyspark" in needed else []
    return pytest.param(block, needed, marks=marks, id=f"{number}:{first}")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder like the repository root: the sample data, and no tracking store yet."""
    folder = tmp_path_factory.mktemp("readme")
    (folder / "sample_data").symlink_to(ROOT / "sample_data")
    return folder


# The block that registers the sample model; a later block that loads it needs it to have run first.
REGISTERING = next(block for block in BLOCKS if "tracking.register_model(" in block)


def _run(block: str, workdir: Path) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", block],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=environment,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize(("block", "needed"), [_param(n, b) for n, b in enumerate(BLOCKS)])
def test_readme_block_runs_as_pasted(block, needed, workdir):
    for module in needed:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}, which this project does not install by default")
    loads_the_sample_model = "models:/sample-detector" in block and block is not REGISTERING
    if loads_the_sample_model and not (workdir / "mlflow.db").exists():
        _run(REGISTERING, workdir)  # run alone (-m slow), the block still finds the model it loads
    done = _run(block, workdir)
    for fragment, pattern in EXPECTED_OUTPUT.items():
        if fragment in block:
            assert re.search(pattern, done.stdout), done.stdout
