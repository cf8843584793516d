"""Build the Cython kernels of ``cython_ext/``.

Every kernel has a pure-Python twin beside it, so an install without a compiler still
runs -- but it says so (``branchline edge status``), and ``make test`` sets
``BRANCHLINE_REQUIRE_COMPILED=1`` so the suite fails when a compiled kernel is missing.
"""

from Cython.Build import cythonize
from setuptools import Extension, setup

KERNELS = [
    Extension("cython_ext.sipparse._sipparse", ["cython_ext/sipparse/_sipparse.pyx"]),
]

setup(
    ext_modules=cythonize(
        KERNELS,
        language_level=3,
        compiler_directives={"embedsignature": True, "boundscheck": False, "wraparound": False},
        annotate=False,
    ),
)
