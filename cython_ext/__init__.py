"""Hot-path kernels: each a Cython module with a pure-Python twin of the same API.

Layout per kernel ``K``: ``cython_ext/K/_K.pyx`` (compiled), ``_K.pyi`` (its stub),
``K_py.py`` (the twin, the readable reference) and ``__init__.py``, which loads the
compiled module and falls back to the twin.  The fallback is never silent:
:func:`implementations` says what is loaded, ``branchline edge status`` prints it, and
``BRANCHLINE_REQUIRE_COMPILED=1`` turns a missing compiled kernel into an ImportError.
``BRANCHLINE_PURE_PYTHON=1`` forces the twins (for comparison runs).

Must not import anything outside the standard library.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

_loaded: dict[str, str] = {}


def load_kernel(name: str) -> ModuleType:
    """Import kernel ``name``: the compiled module, or its twin when that is allowed."""
    if os.environ.get("BRANCHLINE_PURE_PYTHON") == "1":
        _loaded[name] = "python"
        return importlib.import_module(f"cython_ext.{name}.{name}_py")
    try:
        module = importlib.import_module(f"cython_ext.{name}._{name}")
    except ImportError as exc:
        if os.environ.get("BRANCHLINE_REQUIRE_COMPILED") == "1":
            raise ImportError(
                f"compiled kernel cython_ext.{name} is missing and "
                "BRANCHLINE_REQUIRE_COMPILED=1; rebuild with `make venv`"
            ) from exc
        _loaded[name] = "python"
        return importlib.import_module(f"cython_ext.{name}.{name}_py")
    _loaded[name] = "cython"
    return module


def kernel_names() -> list[str]:
    """Every kernel package under ``cython_ext/`` (a folder with a ``K_py.py`` twin)."""
    here = Path(__file__).resolve().parent
    return sorted(p.parent.name for p in here.glob("*/*_py.py") if p.stem == f"{p.parent.name}_py")


def implementations() -> dict[str, str]:
    """Which implementation each kernel uses: ``{"sipparse": "cython", ...}``."""
    for name in kernel_names():
        if name not in _loaded:
            importlib.import_module(f"cython_ext.{name}")
    return dict(_loaded)
