"""Build the Cython kernels of ``cython_ext/``.

Every kernel ``K`` lives in ``cython_ext/K/_K.pyx`` and is found here by that name, so
adding a kernel needs no edit to this file. Each has a pure-Python twin beside it, so
an install without a compiler still runs -- but it says so (``branchline info``), and
``make test`` sets ``BRANCHLINE_REQUIRE_COMPILED=1`` so the suite fails when a compiled
kernel is missing.
"""

from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = Path(__file__).resolve().parent


def kernels() -> list[Extension]:
    found = []
    for pyx in sorted(HERE.glob("cython_ext/*/_*.pyx")):
        name = pyx.parent.name
        if pyx.stem != f"_{name}":
            continue  # helper .pyx files are cimported by their kernel, not built alone
        found.append(
            Extension(
                f"cython_ext.{name}._{name}",
                [str(pyx.relative_to(HERE))],
                extra_compile_args=["-O3"],
            )
        )
    return found


setup(
    ext_modules=cythonize(
        kernels(),
        language_level=3,
        compiler_directives={"embedsignature": True, "boundscheck": False, "wraparound": False},
        annotate=False,
    ),
)
