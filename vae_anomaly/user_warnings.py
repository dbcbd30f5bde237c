"""Warnings attributed to the user's line: the first caller outside this package and scikit-learn.

A fixed ``stacklevel`` cannot do it: the same warning is reached through ``fit`` (inside
scikit-learn's ``_fit_context`` wrapper), a Pipeline's ``fit``, or scoring, each at another depth,
and pointed into ``sklearn/base.py`` or this package instead of at the call that caused it.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings
from pathlib import Path


def _package_folder(name: str) -> str:
    """The folder of package ``name`` with a trailing separator (a sibling such as vae_anomaly_extra/
    is no part of it), found without importing the package: the numpy scorer never loads scikit-learn."""
    spec = importlib.util.find_spec(name)  # both are installed packages: never None
    return os.path.join(Path(spec.submodule_search_locations[0]).resolve(), "")


_INTERNAL = (_package_folder(__package__), _package_folder("sklearn"))


class ShortSeriesWarning(UserWarning):
    """A series was fitted on too few windows' length to hold out validation blocks (issue 31).

    Its threshold is then set on the training timestamps' scores, which the model fits closely, so
    more of new, normal data is flagged than ``contamination`` says. Filter it with
    ``warnings.filterwarnings("ignore", category=ShortSeriesWarning)`` where that is understood.
    """


def warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` at the first frame whose file lies outside vae_anomaly and scikit-learn.

    Parameters
    ----------
    message : str
    category : Warning subclass
    """
    level, frame = 2, sys._getframe(1)
    while frame.f_back is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(_INTERNAL):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
