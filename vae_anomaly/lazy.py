"""Lazy package exports: a name is imported from its module on first use, so that importing a package
(e.g. for ``vae-anomaly --help``) does not import torch, scikit-learn or MLflow before they are needed."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of a package whose names load on first use (PEP 562).

    Parameters
    ----------
    package : str
        The package's ``__name__``.
    exports : dict of str to str
        Each exported name and the module that defines it.

    Returns
    -------
    getattr : callable
        Imports and returns an exported name; raises AttributeError for any other, so that
        ``from package import submodule`` still imports the submodule.
    dir : callable
        The exported names.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
