"""The package imports light and exports what it says it does."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import pytest

import vae_anomaly
import vae_anomaly.batch

# Exports that need an extra (pyproject's optional dependencies): the module they need.
OPTIONAL = {"sample_spark": "pyspark"}


@pytest.mark.parametrize("package", [vae_anomaly, vae_anomaly.batch], ids=lambda p: p.__name__)
def test_every_listed_name_is_exported_and_loads(package):
    assert set(package.__all__) - {"__version__"} == set(package._EXPORTS)
    for name, module in package._EXPORTS.items():
        if name in OPTIONAL and importlib.util.find_spec(OPTIONAL[name]) is None:
            with pytest.raises(ModuleNotFoundError, match=rf"needs {OPTIONAL[name]}.*pip install"):
                getattr(package, name)
            continue
        assert getattr(package, name) is getattr(sys.modules[module], name)


def test_a_name_whose_optional_dependency_is_missing_says_which_extra_to_install():
    script = (
        "import sys\n"
        "sys.modules['pyspark'] = None\n"  # pyspark made unimportable, installed or not
        "from vae_anomaly import sample_spark\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ModuleNotFoundError: vae_anomaly.sample_spark needs pyspark")
    assert "pip install 'vae-anomaly[spark]'" in done.stderr


def test_the_command_line_default_batch_size_is_the_scorer_s():
    from vae_anomaly import cli
    from vae_anomaly.batch import DEFAULT_BATCH_ROWS

    assert cli.DEFAULT_BATCH_ROWS == DEFAULT_BATCH_ROWS


def test_the_command_line_help_imports_neither_torch_nor_mlflow():
    script = (
        "import sys\n"
        "from vae_anomaly.cli import main\n"
        "try:\n"
        "    main(['score', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted({'torch', 'mlflow', 'sklearn', 'pyarrow'} & set(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_score_option_has_help(capsys):
    from vae_anomaly.cli import main

    with pytest.raises(SystemExit):
        main(["score", "--help"])
    lines = capsys.readouterr().out.split("options:")[1].splitlines()
    options = [line.split()[0] for line in lines if line.strip().startswith("--")]
    assert "--drop-columns" in options and "--progress" in options and "--no-progress" in options
    described = [line for line in lines if line.strip().startswith("--") and len(line.split()) > 2]
    undescribed = [o for o in options if not any(line.split()[0] == o for line in described)]
    # An option whose help starts on its own line is followed by an indented description.
    for option in undescribed:
        following = lines[[line.split()[0] if line.strip() else "" for line in lines].index(option) + 1]
        assert following.startswith(" " * 10) and not following.strip().startswith("--"), option


def test_the_batch_rows_help_shows_its_default(capsys):
    from vae_anomaly.cli import DEFAULT_BATCH_ROWS, main

    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert f"(default: {DEFAULT_BATCH_ROWS:,})" in " ".join(capsys.readouterr().out.split())


def test_the_program_exits_with_main_s_status_and_leaves_its_objects_to_the_system():
    # An exit handler registered before the program's runs after its gc.freeze (handlers run last in,
    # first out): the objects alive at exit are frozen, so Python's final collections skip them.
    script = (
        "import atexit, gc, runpy, sys\n"
        "atexit.register(lambda: print('frozen', gc.get_freeze_count() > 0))\n"
        "sys.argv = ['vae-anomaly', 'score', 'no-such-model', 'in.parquet', 'out']\n"
        "runpy.run_module('vae_anomaly.cli', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 2
    assert "no-such-model is not a model" in done.stderr
    assert done.stdout.strip().splitlines()[-1] == "frozen True"


def test_the_installed_program_is_the_one_that_leaves_its_objects_to_the_system():
    scripts = importlib.metadata.distribution("vae-anomaly").entry_points.select(group="console_scripts")
    assert {entry.name: entry.value for entry in scripts} == {"vae-anomaly": "vae_anomaly.cli:run"}
