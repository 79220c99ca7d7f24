"""Optional dependencies of the engine: a one-line error with the install command when missing.

``transformers`` (and ``accelerate``, which transformers needs to load a GGUF and for
``device_map``) come with the ``hf`` extra of the package: ``pip install 'nli-engine[hf]'``.
"""

from __future__ import annotations

import importlib

HF_INSTALL = "pip install 'nli-engine[hf]'"


class MissingDependencyError(ImportError, ValueError):
    """An optional package a feature needs is not installed (a ValueError too, so the CLI prints
    it as a one-line error with exit code 2)."""


def require(module: str, feature: str, install: str = HF_INSTALL):
    """Import and return ``module``; MissingDependencyError naming ``feature`` and ``install``
    if it cannot be imported."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{feature} needs the Python package {module!r}, which is not installed or does "
            f"not import; install it with: {install}"
        ) from None


def require_transformers(feature: str = "an hf: model"):
    return require("transformers", feature)


def require_accelerate(feature: str):
    return require("accelerate", feature)
