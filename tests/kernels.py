"""Both implementations of a kernel for the tests (STYLE.md: every test runs on the
compiled module and on its pure-Python twin). A missing compiled module skips its
tests, unless ``BRANCHLINE_REQUIRE_COMPILED=1`` (as ``make test`` sets) makes it a failure.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def compiled_or_none(kernel: str) -> ModuleType | None:
    """``cython_ext.K._K`` when it is built, else None."""
    try:
        return importlib.import_module(f"cython_ext.{kernel}._{kernel}")
    except ImportError:
        return None


def require_compiled(kernel: str) -> ModuleType:
    """The compiled module; skips (or fails, when it must be there) without it."""
    module = compiled_or_none(kernel)
    if module is None:
        name = f"cython_ext.{kernel}._{kernel}"
        if os.environ.get("BRANCHLINE_REQUIRE_COMPILED") == "1":
            pytest.fail(f"{name} is not built and BRANCHLINE_REQUIRE_COMPILED=1")
        pytest.skip(f"{name} is not built")
    return module
